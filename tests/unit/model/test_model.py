"""Model pipelines: both kinds fit, predict and score; the label rule applies to both."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from ridestream.features import TARGET
from ridestream.model import build_pipeline, evaluate, fit, predict, score


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
