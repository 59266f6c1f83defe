"""`ridestream train`: fit a model on one month, score it on the next, register it in MLflow.

`train_and_register` is the reusable part (the retrainer calls it with its recent rides):
it fits with `ridestream.model`, logs params, metrics and the model to MLflow, registers the
version under `settings.mlflow.model_name`, stores the monitor's reference frame with it,
and moves the `champion` alias when asked (or when there is no champion yet).
"""

from __future__ import annotations

import argparse
import logging
import sys
import tempfile
import time
import warnings
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from ridestream.cli import CommandParser
from ridestream.features import FEATURES, PICKUP_TIME, PREDICTION, TARGET, build_features
from ridestream.model import (
    DEFAULT_KIND,
    GBM,
    GBM_PARAMS,
    MODEL_KINDS,
    fit,
    labelled,
    predict_features,
    score,
)
from ridestream.registry import (
    MODEL_ARTIFACT,
    REFERENCE_ARTIFACT_DIR,
    REFERENCE_FILE,
    ModelInfo,
    ModelRegistry,
)
from ridestream.settings import MlflowSettings, Settings

log = logging.getLogger(__name__)

# The monitor compares windows of a few thousand rides with this sample: 20,000 rides keep
# the drift tests' own noise low and the artifact small (~0.5 MB).
REFERENCE_ROWS = 20_000


@dataclass(frozen=True)
class TrainedModel:
    """A registered version, its fitted pipeline, and whether it became champion."""

    info: ModelInfo
    model: Any
    metrics: dict[str, float]
    promoted: bool
    previous_version: str | None


def reference_frame(
    model: Any, val_rides: pd.DataFrame, max_rows: int = REFERENCE_ROWS
) -> pd.DataFrame:
    """The monitor's reference: a sample of labelled validation rides' features, prediction
    and label (columns `FEATURES` + `PREDICTION` + `TARGET`), and their pickup times (the
    monitor's calendar: holidays, and how much the error varies from day to day)."""
    rides = labelled(val_rides)
    if len(rides) > max_rows:
        rides = rides.sample(n=max_rows, random_state=0).sort_index()
    features = build_features(rides)
    reference = features[list(FEATURES)].copy()
    reference[PREDICTION] = predict_features(model, features)
    reference[TARGET] = rides[TARGET].to_numpy(dtype="float64")
    reference[PICKUP_TIME] = pd.to_datetime(rides[PICKUP_TIME]).to_numpy()
    return reference.reset_index(drop=True)


def _time_range(rides: pd.DataFrame) -> str:
    if rides.empty:
        return ""
    pickup = pd.to_datetime(rides[PICKUP_TIME])
    return f"{pickup.min():%Y-%m-%dT%H:%M}..{pickup.max():%Y-%m-%dT%H:%M}"


def _pip_requirements() -> list[str]:
    # Pinned by hand: mlflow's own inference loads the model in a subprocess (seconds).
    import sklearn

    return [f"scikit-learn=={sklearn.__version__}", f"pandas=={pd.__version__}", "numpy"]


def train_and_register(
    settings: Settings | MlflowSettings,
    train_rides: pd.DataFrame,
    val_rides: pd.DataFrame,
    kind: str = DEFAULT_KIND,
    tags: Mapping[str, str] | None = None,
    promote: bool | None = None,
) -> TrainedModel:
    """Fit `kind` on `train_rides`, score it on `val_rides`, log and register it in MLflow.

    Metrics logged: `val_rmse`, `val_mae`, `val_count`, `train_count`, `train_seconds`.
    `promote`: True moves `champion` to the new version, False never does, None (default)
    only when there is no champion yet. `tags` go on the run and on the model version.
    """
    import mlflow
    import mlflow.sklearn
    from mlflow.models import infer_signature

    from ridestream.registry import _URI_LOCK

    mlflow_settings = settings.mlflow if isinstance(settings, Settings) else settings
    registry = ModelRegistry(mlflow_settings)

    started = time.perf_counter()
    model = fit(kind, train_rides)
    train_seconds = time.perf_counter() - started
    scored = labelled(val_rides)
    val_features = build_features(scored)
    val_predictions = predict_features(model, val_features)
    val = score(scored[TARGET].to_numpy(), val_predictions)
    metrics = {
        "val_rmse": val["rmse"],
        "val_mae": val["mae"],
        "val_count": val["count"],
        "train_count": float(len(labelled(train_rides))),
        "train_seconds": train_seconds,
    }
    version_tags = {
        "model_kind": kind,
        "train_range": _time_range(train_rides),
        "val_range": _time_range(val_rides),
        **{str(k): str(v) for k, v in (tags or {}).items()},
    }
    params: dict[str, Any] = {"model_kind": kind, "features": ",".join(FEATURES)}
    if kind == GBM:
        params.update({f"gbm_{k}": v for k, v in GBM_PARAMS.items()})

    with _URI_LOCK:
        registry.use_store()
        experiment_id = registry.experiment_id()
        with mlflow.start_run(experiment_id=experiment_id, tags=version_tags) as run:
            mlflow.log_params(params)
            mlflow.log_metrics({k: v for k, v in metrics.items() if np.isfinite(v)})
            sample = val_features.head(100)
            with warnings.catch_warnings():
                # "integer columns cannot hold missing values": ours never miss (validated).
                warnings.simplefilter("ignore", UserWarning)
                signature = (
                    infer_signature(sample, predict_features(model, sample))
                    if len(sample)
                    else None
                )
            logged = mlflow.sklearn.log_model(
                model,
                name=MODEL_ARTIFACT,
                serialization_format="pickle",
                signature=signature,
                pip_requirements=_pip_requirements(),
                registered_model_name=mlflow_settings.model_name,
            )
            with tempfile.TemporaryDirectory(prefix="ridestream-reference-") as tmp:
                path = Path(tmp) / REFERENCE_FILE
                reference_frame(model, val_rides).to_parquet(path, index=False)
                mlflow.log_artifact(str(path), artifact_path=REFERENCE_ARTIFACT_DIR)
            run_id = run.info.run_id

    version = str(logged.registered_model_version)
    registry.set_version_tags(version, version_tags)
    champion = registry.champion()
    promoted = bool(promote) or (promote is None and champion is None)
    previous = registry.promote(version) if promoted else None
    log.info(
        "registered %s version %s (run %s, val_rmse %.3f)%s",
        mlflow_settings.model_name,
        version,
        run_id,
        metrics["val_rmse"],
        " as champion" if promoted else "",
    )
    return TrainedModel(registry.version(version), model, metrics, promoted, previous)


def _parser() -> argparse.ArgumentParser:
    parser = CommandParser(
        prog="ridestream train",
        description=(
            "Train a ride-duration model on TLC trip files, score it on a validation month, "
            "and register it in the MLflow Model Registry (with the monitor's reference data). "
            "The first version becomes champion; later ones only with --promote."
        ),
    )
    parser.add_argument(
        "--train",
        required=True,
        action="append",
        metavar="YYYY-MM",
        help="month to train on (repeat for several), read from the data dir",
    )
    parser.add_argument("--val", required=True, metavar="YYYY-MM", help="validation month")
    parser.add_argument(
        "--model",
        default=DEFAULT_KIND,
        choices=MODEL_KINDS,
        help="gbm: gradient boosting on zones, borough pair, pickup time and distance "
        "(default); linear: the course baseline (DictVectorizer + LinearRegression)",
    )
    parser.add_argument(
        "--promote",
        action="store_true",
        help="make the new version champion in any case (moves the alias only: running "
        "predictors switch at their next alias check; `ridestream promote VERSION` also "
        "announces it on models.updates, for an immediate switch)",
    )
    parser.add_argument(
        "--data-dir",
        type=Path,
        default=None,
        help="folder of <color>_tripdata_YYYY-MM.parquet files (default: RIDESTREAM_DATA_DIR)",
    )
    parser.add_argument("--color", default="green", choices=("green", "yellow"), help="taxi colour")
    parser.add_argument(
        "--tag",
        action="append",
        default=[],
        metavar="KEY=VALUE",
        help="tag for the run and the model version (repeatable)",
    )
    return parser


def _read_months(data_dir: Path, months: list[str], color: str) -> pd.DataFrame:
    from ridestream.trips import month_path, read_trips

    frames = []
    for month in months:
        path = month_path(data_dir, month, color)
        if not path.is_file():
            raise FileNotFoundError(f"no trip file for {month}: {path} does not exist")
        frames.append(read_trips(path))
    return pd.concat(frames, ignore_index=True) if len(frames) > 1 else frames[0]


def main(argv: list[str] | None = None) -> int:
    """Run `ridestream train ...`; returns the exit code."""
    from ridestream.observability import configure_logging

    args = _parser().parse_args(argv)
    tags: dict[str, str] = {}
    for tag in args.tag:
        key, sep, value = tag.partition("=")
        if not sep or not key:
            print(f"ridestream train: --tag needs KEY=VALUE, got {tag!r}", file=sys.stderr)
            return 2
        tags[key] = value
    settings = Settings()
    configure_logging(settings.log_level)
    data_dir = args.data_dir or settings.data_dir
    try:
        train = _read_months(data_dir, args.train, args.color)
        val = _read_months(data_dir, [args.val], args.color)
    except (FileNotFoundError, ValueError) as error:
        print(f"ridestream train: {' '.join(str(error).split())}", file=sys.stderr)
        return 2
    tags.setdefault("trigger", "manual")
    tags.setdefault("train_months", ",".join(args.train))
    tags.setdefault("val_month", args.val)
    result = train_and_register(settings, train, val, args.model, tags, args.promote or None)
    m = result.metrics
    print(
        f"{result.info.name} version {result.info.version} ({args.model}): "
        f"validation RMSE {m['val_rmse']:.4f}  MAE {m['val_mae']:.4f} "
        f"on {int(m['val_count']):,} rides (trained on {int(m['train_count']):,} rides "
        f"in {m['train_seconds']:.1f} s)"
    )
    if result.promoted:
        previous = result.previous_version or "none"
        print(
            f"champion: version {result.info.version} (previous: {previous}); running "
            "predictors switch at their next alias check"
        )
    else:
        champion = ModelRegistry(settings.mlflow).champion()
        print(
            f"champion stays version {champion.version if champion else '?'} "
            "(use --promote or `ridestream promote` to move it)"
        )
    return 0


if __name__ == "__main__":
    sys.exit(main())
