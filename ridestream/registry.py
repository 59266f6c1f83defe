"""MLflow Model Registry access: the champion, its reference data, promotion and rollback.

The predictor, the monitor and the retrainer all go through `ModelRegistry`; models are only
ever loaded from the registry (`models:/<name>/<version>`), never from a path. Nothing
connects at import time, and mlflow itself is imported on first use, so importing this module
stays cheap.

Aliases: `champion` is the version that serves; `promote` moves it and points `previous` at
the version it replaced, so a rollback is one more `promote`; `challenger` is the version
under live evaluation, if any.
"""

from __future__ import annotations

import dataclasses
import logging
import os
import tempfile
import threading
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

import pandas as pd

from ridestream.settings import MlflowSettings

if TYPE_CHECKING:
    from mlflow.entities.model_registry import ModelVersion
    from mlflow.tracking import MlflowClient

log = logging.getLogger(__name__)

CHAMPION = "champion"
PREVIOUS = "previous"
# The version under live evaluation (the retrainer's gate), cleared by every decision; its
# version tags say how it is evaluated, so a restarted predictor shadows it the same way.
CHALLENGER = "challenger"
TAG_GATE = "gate"
TAG_CANARY_FRACTION = "canary_fraction"
# Where, inside a version's run, the monitor's reference frame lives.
REFERENCE_ARTIFACT_DIR = "reference"
REFERENCE_FILE = "reference.parquet"
MODEL_ARTIFACT = "model"
MLFLOW_HTTP_RETRIES_ENV = "MLFLOW_HTTP_REQUEST_MAX_RETRIES"

# mlflow's fluent API (load_model, log_model) reads process-wide tracking/registry URIs:
# registries with different stores in one process (tests) take turns.
_URI_LOCK = threading.RLock()


def disable_mlflow_http_retries() -> None:
    """Turn MLflow's own HTTP retries off in this process, unless MLFLOW_HTTP_REQUEST_MAX_RETRIES
    is set: its default (7 retries with doubling waits) spends ~4 minutes silently inside one
    call to a tracking server that is down. Services retry registry calls themselves, and log
    it (the retrainer's backoff, the predictor's next alias check)."""
    os.environ.setdefault(MLFLOW_HTTP_RETRIES_ENV, "0")


class ModelNotFoundError(LookupError):
    """The registry has no such model version (or no version under that alias)."""


@dataclass(frozen=True)
class ModelInfo:
    """One registered model version: where it came from and how it scored."""

    name: str
    version: str
    run_id: str | None
    metrics: dict[str, float] = field(default_factory=dict)
    tags: dict[str, str] = field(default_factory=dict)
    aliases: tuple[str, ...] = ()
    created_at_ms: int | None = None

    @property
    def uri(self) -> str:
        """The registry URI that loads this version."""
        return f"models:/{self.name}/{self.version}"


def sqlite_path(tracking_uri: str) -> Path | None:
    """The database file of a `sqlite:///` tracking URI (None for other stores)."""
    prefix = "sqlite:///"
    return Path(tracking_uri[len(prefix) :]) if tracking_uri.startswith(prefix) else None


def artifact_root_uri(artifact_location: str) -> str:
    """A local folder becomes an absolute file URI; URIs (s3://, mlflow-artifacts:/) stay."""
    if "://" in artifact_location or artifact_location.startswith("mlflow-artifacts:"):
        return artifact_location
    return Path(artifact_location).expanduser().resolve().as_uri()


class ModelRegistry:
    """The registered model `settings.model_name` in the MLflow store of `settings`."""

    def __init__(self, settings: MlflowSettings) -> None:
        self.settings = settings
        self.name = settings.model_name
        self._client: MlflowClient | None = None

    # -- connection ---------------------------------------------------------------------

    @property
    def client(self) -> MlflowClient:
        """The MLflow client, built on first use (creates the SQLite folder if needed)."""
        if self._client is None:
            # A progress bar per reference download is noise in a service's log.
            os.environ.setdefault("MLFLOW_ENABLE_ARTIFACTS_PROGRESS_BAR", "false")
            from mlflow.tracking import MlflowClient

            db = sqlite_path(self.settings.tracking_uri)
            if db is not None:
                db.parent.mkdir(parents=True, exist_ok=True)
            uri = self.settings.tracking_uri
            self._client = MlflowClient(tracking_uri=uri, registry_uri=uri)
        return self._client

    def use_store(self) -> None:
        """Point mlflow's process-wide fluent API at this store (call under `_URI_LOCK`)."""
        import mlflow

        mlflow.set_tracking_uri(self.settings.tracking_uri)
        mlflow.set_registry_uri(self.settings.tracking_uri)

    def experiment_id(self) -> str:
        """The id of the experiment `settings.experiment`, created with its artifact folder."""
        experiment = self.client.get_experiment_by_name(self.settings.experiment)
        if experiment is not None:
            return str(experiment.experiment_id)
        location = artifact_root_uri(self.settings.artifact_location)
        log.info(
            "creating MLflow experiment %r (artifacts in %s)", self.settings.experiment, location
        )
        return str(
            self.client.create_experiment(self.settings.experiment, artifact_location=location)
        )

    # -- reading ------------------------------------------------------------------------

    def _info(self, version: ModelVersion) -> ModelInfo:
        metrics: dict[str, float] = {}
        if version.run_id:
            metrics = dict(self.client.get_run(version.run_id).data.metrics)
        return ModelInfo(
            name=version.name,
            version=str(version.version),
            run_id=version.run_id or None,
            metrics=metrics,
            tags=dict(version.tags or {}),
            aliases=tuple(getattr(version, "aliases", ()) or ()),
            created_at_ms=version.creation_timestamp,
        )

    def alias(self, alias: str) -> ModelInfo | None:
        """The version under `alias`, or None when the model or the alias does not exist."""
        from mlflow.exceptions import MlflowException

        try:
            version = self.client.get_model_version_by_alias(self.name, alias)
        except MlflowException as error:
            if error.error_code in ("RESOURCE_DOES_NOT_EXIST", "INVALID_PARAMETER_VALUE"):
                return None
            raise
        return self._info(version)

    def champion(self) -> ModelInfo | None:
        """The serving version (alias `champion`), with its metrics (`val_rmse`, ...)."""
        return self.alias(CHAMPION)

    def version(self, version: str | int) -> ModelInfo:
        """One version; raises ModelNotFoundError when it does not exist."""
        from mlflow.exceptions import MlflowException

        try:
            found = self.client.get_model_version(self.name, str(version))
        except MlflowException as error:
            if error.error_code in ("RESOURCE_DOES_NOT_EXIST", "INVALID_PARAMETER_VALUE"):
                raise ModelNotFoundError(f"{self.name} version {version} not found") from error
            raise  # the store did not answer: that is not a missing version
        return self._info(found)

    def versions(self) -> list[ModelInfo]:
        """Every version of the model, oldest first (empty when it is not registered)."""
        found = self.client.search_model_versions(f"name = '{self.name}'")
        if not found:
            return []
        # search results carry no aliases: take them from the registered model.
        aliases = self.client.get_registered_model(self.name).aliases or {}
        infos = []
        for version in sorted(found, key=lambda v: int(v.version)):
            info = self._info(version)
            named = tuple(a for a, v in aliases.items() if str(v) == info.version)
            infos.append(dataclasses.replace(info, aliases=named))
        return infos

    def load_model(self, version: str | int) -> Any:
        """Load a version's fitted pipeline through the registry (`models:/<name>/<version>`)."""
        import mlflow.sklearn

        with _URI_LOCK:
            self.use_store()
            return mlflow.sklearn.load_model(f"models:/{self.name}/{version}")

    def load_reference(self, version: str | int) -> pd.DataFrame:
        """The reference frame stored with a version (`FEATURES` + `PREDICTION` + `TARGET`, and
        `PICKUP_TIME` in references logged since the monitor's calendar)."""
        info = self.version(version)
        if info.run_id is None:
            raise ModelNotFoundError(f"{self.name} version {version} has no run")
        with tempfile.TemporaryDirectory(prefix="ridestream-reference-") as tmp:
            path = self.client.download_artifacts(
                info.run_id, f"{REFERENCE_ARTIFACT_DIR}/{REFERENCE_FILE}", tmp
            )
            return pd.read_parquet(path)

    # -- writing ------------------------------------------------------------------------

    def set_alias(self, alias: str, version: str | int) -> None:
        """Point `alias` at `version`."""
        self.version(version)  # fail clearly on a version that does not exist
        self.client.set_registered_model_alias(self.name, alias, str(version))

    def delete_alias(self, alias: str) -> None:
        """Remove `alias` (nothing happens when it does not exist: a retried call is harmless)."""
        from mlflow.exceptions import MlflowException

        try:
            self.client.delete_registered_model_alias(self.name, alias)
        except MlflowException as error:
            if error.error_code not in ("RESOURCE_DOES_NOT_EXIST", "INVALID_PARAMETER_VALUE"):
                raise

    def promote(self, version: str | int) -> str | None:
        """Make `version` champion; the replaced champion becomes `previous` and is returned."""
        current = self.champion()
        self.set_alias(CHAMPION, version)
        if current is None or current.version == str(version):
            return None
        self.client.set_registered_model_alias(self.name, PREVIOUS, current.version)
        log.info("%s: champion %s -> %s", self.name, current.version, version)
        return current.version

    def set_version_tags(self, version: str | int, tags: dict[str, str]) -> None:
        """Add tags (lineage: trigger, data range, ...) to a version."""
        for key, value in tags.items():
            self.client.set_model_version_tag(self.name, str(version), key, str(value))
