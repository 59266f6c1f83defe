"""The scorecard: does a retraining policy predict better than the obvious alternatives?

Pure numbers in, numbers out, so the backtest, the demo and the report score runs the same way:

- served RMSE / MAE: over the labelled rides (1-60 min, the training rule) of the windows with
  at least `MIN_SCORED_WINDOW_RIDES` rides (smaller ones are a few stray rides years off their
  month, as in the monitor's alert rules), of what the model in service predicted for them;
- a harmful promotion: a promoted model whose RMSE, on the labelled rides it then served, is
  more than `HARMFUL_RMSE_MARGIN` above the RMSE of the model it replaced on the SAME rides;
- alert precision: the share of drift alerts whose retraining produced a promotion that was
  not harmful. Alerts coalesced into one retraining share its outcome; an alert that trained
  nothing (too few rides) counts as not useful.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass

import numpy as np

from ridestream.features import is_labelled

# The monitor's alert rules judge nothing below 200 rides (monitor.alerts.AlertRules).
MIN_SCORED_WINDOW_RIDES = 200
# More than 1 % worse than the replaced model on the same rides: a promotion that hurt.
HARMFUL_RMSE_MARGIN = 0.01


@dataclass(frozen=True)
class ServedError:
    """Error totals of served predictions on labelled rides; they add up across windows."""

    count: int = 0
    squared_sum: float = 0.0
    absolute_sum: float = 0.0

    def __add__(self, other: ServedError) -> ServedError:
        return ServedError(
            self.count + other.count,
            self.squared_sum + other.squared_sum,
            self.absolute_sum + other.absolute_sum,
        )

    @property
    def rmse(self) -> float | None:
        """Root mean squared error in minutes (None without labelled rides)."""
        return float(np.sqrt(self.squared_sum / self.count)) if self.count else None

    @property
    def mae(self) -> float | None:
        """Mean absolute error in minutes (None without labelled rides)."""
        return self.absolute_sum / self.count if self.count else None


def is_scored_window(window_rides: int) -> bool:
    """Whether a window counts in the scorecard (it holds enough rides to judge anything)."""
    return window_rides >= MIN_SCORED_WINDOW_RIDES


def served_error(predicted_min: np.ndarray, actual_min: np.ndarray) -> ServedError:
    """The error totals of predictions against outcomes, over the labelled rides among them."""
    predicted = np.asarray(predicted_min, dtype="float64")
    actual = np.asarray(actual_min, dtype="float64")
    keep = is_labelled(actual)
    error = predicted[keep] - actual[keep]
    return ServedError(int(error.size), float(np.sum(error**2)), float(np.sum(np.abs(error))))


def window_served_error(
    window_rides: int, predicted_min: np.ndarray, actual_min: np.ndarray
) -> ServedError:
    """A window's contribution to the scorecard: its labelled rides, or nothing when it is
    too small to count (`is_scored_window`)."""
    if not is_scored_window(window_rides):
        return ServedError()
    return served_error(predicted_min, actual_min)


def published_window_error(
    window_rides: int, labelled: int, rmse: float | None, mae: float | None
) -> ServedError:
    """A window's contribution from the numbers the monitor publishes for it
    (`DriftWindowClosed.rides` and `.quality`), for a run read back from its topics: the same
    totals as `window_served_error` on its rides, up to rounding."""
    if not is_scored_window(window_rides) or not labelled or rmse is None or mae is None:
        return ServedError()
    return ServedError(labelled, rmse * rmse * labelled, mae * labelled)


def is_harmful(promoted_rmse: float | None, replaced_rmse: float | None) -> bool:
    """A promotion is harmful when the promoted model's RMSE on the rides it served is more
    than `HARMFUL_RMSE_MARGIN` above the replaced model's on the same rides (no rides: not)."""
    if promoted_rmse is None or replaced_rmse is None:
        return False
    return promoted_rmse > replaced_rmse * (1 + HARMFUL_RMSE_MARGIN)


@dataclass(frozen=True)
class RetrainingOutcome:
    """One retraining triggered by alerts: how many alerts it answered, and what came of it."""

    alerts: int
    promoted: bool
    harmful: bool = False

    @property
    def useful(self) -> bool:
        """A promotion that did not hurt."""
        return self.promoted and not self.harmful


def alert_precision(alerts: int, retrainings: Iterable[RetrainingOutcome]) -> float | None:
    """The share of `alerts` whose retraining produced a non-harmful promotion (None without
    alerts). Each retraining lends its outcome to every alert it answered."""
    if alerts <= 0:
        return None
    useful = sum(r.alerts for r in retrainings if r.useful)
    return useful / alerts
