"""Prediction quality of a window on its labelled rides (the 1-60 min rule used in training)."""

from __future__ import annotations

import numpy as np

from ridestream.events import WindowQuality
from ridestream.features import is_labelled


def window_quality(predicted_min: np.ndarray, actual_min: np.ndarray) -> WindowQuality:
    """RMSE, MAE and mean error (predicted - actual) over the labelled rides among those given."""
    predicted = np.asarray(predicted_min, dtype="float64")
    actual = np.asarray(actual_min, dtype="float64")
    keep = is_labelled(actual)
    error = predicted[keep] - actual[keep]
    if error.size == 0:
        return WindowQuality(count=0, rmse=None, mae=None, mean_error=None)
    return WindowQuality(
        count=int(error.size),
        rmse=float(np.sqrt(np.mean(error**2))),
        mae=float(np.mean(np.abs(error))),
        mean_error=float(np.mean(error)),
    )
