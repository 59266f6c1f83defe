"""Training into a real MLflow store (SQLite in tmp_path) and the registry's view of it."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from ridestream.features import FEATURES, PICKUP_TIME, PREDICTION, TARGET
from ridestream.model import predict
from ridestream.registry import ModelNotFoundError, ModelRegistry
from ridestream.settings import MlflowSettings
from ridestream.training import reference_frame, train_and_register

# A real MLflow store: creating its SQLite schema takes seconds, so the module shares one.
pytestmark = pytest.mark.slow


@pytest.fixture(scope="module")
def store(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return tmp_path_factory.mktemp("mlflow")


@pytest.fixture
def mlflow_settings(store: Path, request: pytest.FixtureRequest) -> MlflowSettings:
    """Settings of the shared store with a model (and experiment) of the test's own."""
    name = request.node.name[:60]
    return MlflowSettings(
        tracking_uri=f"sqlite:///{store}/mlflow.db",
        artifact_location=str(store / "artifacts" / name),
        experiment=name,
        model_name=name,
    )


def test_empty_registry_has_no_champion_and_no_versions(mlflow_settings: MlflowSettings) -> None:
    registry = ModelRegistry(mlflow_settings)
    assert registry.champion() is None
    assert registry.versions() == []
    with pytest.raises(ModelNotFoundError):
        registry.version(1)


def test_first_version_becomes_champion_and_later_ones_only_when_promoted(
    mlflow_settings: MlflowSettings,
    train_rides: pd.DataFrame,
    val_rides: pd.DataFrame,
    store: Path,
) -> None:
    registry = ModelRegistry(mlflow_settings)
    first = train_and_register(mlflow_settings, train_rides, val_rides, "linear", {"trigger": "t"})
    assert first.promoted and first.previous_version is None
    second = train_and_register(mlflow_settings, train_rides, val_rides, "gbm", {})
    assert not second.promoted

    champion = registry.champion()
    assert champion is not None and champion.version == first.info.version == "1"
    assert champion.metrics["val_rmse"] == pytest.approx(first.metrics["val_rmse"])
    assert champion.tags["trigger"] == "t" and champion.tags["model_kind"] == "linear"

    assert registry.promote(second.info.version) == "1"
    assert [(v.version, v.aliases) for v in registry.versions()] == [
        ("1", ("previous",)),
        ("2", ("champion",)),
    ]
    # Rollback is one more promote.
    assert registry.promote("1") == "2"
    assert registry.champion().version == "1"  # type: ignore[union-attr]

    loaded = registry.load_model(second.info.version)
    np.testing.assert_allclose(
        predict(loaded, val_rides.head(20)), predict(second.model, val_rides.head(20))
    )
    # Artifacts go to the configured folder, not ./mlruns.
    assert any(Path(mlflow_settings.artifact_location).rglob("*.pkl"))
    assert not Path("mlruns").exists() or not any(Path("mlruns").rglob("*.pkl"))


def test_reference_data_is_stored_with_the_version(
    mlflow_settings: MlflowSettings, train_rides: pd.DataFrame, val_rides: pd.DataFrame
) -> None:
    trained = train_and_register(mlflow_settings, train_rides, val_rides, "linear", {})
    reference = ModelRegistry(mlflow_settings).load_reference(trained.info.version)
    # The pickup times: the monitor's calendar (holidays, day-to-day variance of the error).
    assert list(reference.columns) == [*FEATURES, PREDICTION, TARGET, PICKUP_TIME]
    assert len(reference) == int(trained.metrics["val_count"])
    assert reference["PULocationID"].map(type).eq(str).all()


def test_reference_is_a_sample_of_at_most_max_rows(
    train_rides: pd.DataFrame, val_rides: pd.DataFrame
) -> None:
    from ridestream.model import fit

    model = fit("linear", train_rides)
    reference = reference_frame(model, val_rides, max_rows=100)
    assert len(reference) == 100
    assert reference[TARGET].between(1, 60).all()
    np.testing.assert_allclose(reference[PREDICTION], model.predict(reference[list(FEATURES)]))


def test_promoting_a_missing_version_fails_and_keeps_the_champion(
    mlflow_settings: MlflowSettings, train_rides: pd.DataFrame, val_rides: pd.DataFrame
) -> None:
    train_and_register(mlflow_settings, train_rides, val_rides, "linear", {})
    registry = ModelRegistry(mlflow_settings)
    with pytest.raises(ModelNotFoundError):
        registry.promote("7")
    assert registry.champion().version == "1"  # type: ignore[union-attr]
