"""Model pipelines: both kinds fit, predict and score; the label rule applies to both."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest
from sklearn.preprocessing import TargetEncoder

from ridestream.features import TARGET, build_features
from ridestream.model import build_pipeline, evaluate, fit, predict, predict_features, score


@pytest.mark.parametrize("kind", ["gbm", "linear"])
def test_model_learns_the_synthetic_durations(
    kind: str, train_rides: pd.DataFrame, val_rides: pd.DataFrame
) -> None:
    model = fit(kind, train_rides)
    metrics = evaluate(model, val_rides)
    spread = float(val_rides[TARGET].std())
    assert metrics["count"] == len(val_rides[(val_rides[TARGET] >= 1) & (val_rides[TARGET] <= 60)])
    assert metrics["rmse"] < 0.6 * spread


def test_gbm_beats_the_linear_baseline(train_rides: pd.DataFrame, val_rides: pd.DataFrame) -> None:
    gbm = evaluate(fit("gbm", train_rides), val_rides)
    linear = evaluate(fit("linear", train_rides), val_rides)
    assert gbm["rmse"] < linear["rmse"]


def test_training_ignores_rides_outside_the_label_rule(train_rides: pd.DataFrame) -> None:
    noisy = train_rides.copy()
    noisy.loc[noisy.index[:300], TARGET] = 500.0  # would drag every prediction up
    clean = train_rides[train_rides.index >= 300]
    a = predict(fit("gbm", noisy), clean.head(50))
    b = predict(fit("gbm", clean), clean.head(50))
    np.testing.assert_allclose(a, b)


def test_unknown_model_kind_is_refused() -> None:
    with pytest.raises(ValueError, match="unknown model kind 'xgb'"):
        build_pipeline("xgb")


def test_fit_without_labelled_rides_is_refused(train_rides: pd.DataFrame) -> None:
    with pytest.raises(ValueError, match="no labelled rides"):
        fit("linear", train_rides.assign(**{TARGET: 0.0}))


def test_score_reports_rmse_mae_and_count() -> None:
    metrics = score(np.array([10.0, 20.0]), np.array([13.0, 16.0]))
    assert metrics == {"rmse": pytest.approx(np.sqrt(12.5)), "mae": 3.5, "count": 2.0}


def test_predict_on_no_rides_is_empty(train_rides: pd.DataFrame) -> None:
    model = fit("linear", train_rides)
    assert predict(model, train_rides.head(0)).shape == (0,)


def test_gbm_predictions_equal_the_pipelines_own_predict(
    train_rides: pd.DataFrame, val_rides: pd.DataFrame
) -> None:
    # predict_features skips the ColumnTransformer for gbm pipelines; the numbers must not move,
    # zones never seen in training (the target mean) included.
    model = fit("gbm", train_rides.head(500))
    features = build_features(val_rides)
    assert set(features["PU_DO"]) - set(build_features(train_rides.head(500))["PU_DO"])

    assert np.array_equal(predict_features(model, features), model.predict(features))
    one = features.head(1)
    assert np.array_equal(predict_features(model, one), model.predict(one))


def test_zone_encoder_encodes_as_sklearns_target_encoder(
    train_rides: pd.DataFrame, val_rides: pd.DataFrame
) -> None:
    model = fit("gbm", train_rides.head(500))
    encoder = model[0].named_transformers_["zones"]
    zones = build_features(val_rides)[list(encoder.feature_names_in_)]
    zones.iloc[0, 0] = "no such zone"

    assert np.array_equal(encoder.transform(zones), TargetEncoder.transform(encoder, zones))
