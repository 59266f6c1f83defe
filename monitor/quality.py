"""Prediction quality of a window on its labelled rides, and whether it is worse than expected.

The champion's reference holds its prediction and the label of ~20,000 validation rides: their
squared errors say what mean squared error (MSE) to expect from it, and how much one ride's
squared error varies, in each hour-of-week cell (`monitor.calendar`: weekend nights are not
weekday mornings). A window's expected MSE is the reference's per-cell MSE weighted by the
window's own rides per cell.

The test works on the window's aggregates per clock hour (rides, sum of squared errors, sum of
their squares): they add up across monitors, and no ride's order matters. One-sided, at the
window's ride count:

    z = (MSE_window - MSE_expected) / sqrt(deff × max(V_reference, V_window) / n)

- V_reference: the reference's per-cell variance of squared errors, weighted like the mean
  (the variance under "nothing changed"); V_window: the window's own, around its fitted profile
  (whichever is larger: a window with a few huge errors is noisier than the reference says).
- deff, the design effect: rides of one hour share traffic and weather, so their errors are not
  independent. It is the variance of the hourly sums around the profile, scaled by what
  independent rides would give (a cluster-robust variance over the hourly blocks), never below 1.
- p = Student t with (hourly blocks - 1) degrees of freedom: the variance is estimated from
  that many blocks (a normal p-value with one block).

What makes it fail: squared errors are heavy-tailed (a 60-minute error weighs 3,600), so the
mean of a few hundred of them is skewed to the right and the one-sided p-value is somewhat too
small for small windows (the minimum rides and the effect size keep those quiet); a dependence
across hours (a whole day of snow) is not in the design effect; a reference whose own month was
unusual sets the wrong expectation.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import pandas as pd
from scipy import stats

from monitor.calendar import Cells, pickup_cells
from ridestream.events import WindowQuality
from ridestream.features import is_labelled

# A reference day counts for the day-to-day variance with at least this many rides: its MSE is
# then near-normal (DerSimonian-Laird's assumption), and the stray rides the TLC files date
# years off their month (a few per date) are no day of the month.
MIN_DAY_ROWS = 100


@dataclass(frozen=True)
class ExpectedErrors:
    """The champion's squared errors on its reference, per calendar cell."""

    cells: Cells | None  # None: one cell, the whole reference
    mse: np.ndarray  # mean squared error per cell
    variance: np.ndarray  # variance of one ride's squared error per cell
    rows: np.ndarray  # labelled reference rows per cell
    # Day to day: the variance of a day's MSE relative to its expected one, beyond the rides'
    # own noise (0 when the reference has no dates), and the reference days behind each cell.
    day_variance: float
    days: np.ndarray


def expected_errors(
    predicted_min: np.ndarray,
    actual_min: np.ndarray,
    cells: Cells | None,
    row_cells: np.ndarray | None,
    dates: np.ndarray | None = None,
) -> ExpectedErrors | None:
    """Per-cell MSE and variance of squared errors of the reference's labelled rides, and
    (with each row's date) how much a whole day's MSE varies around what its cells expect."""
    keep = is_labelled(actual_min)
    squared = (np.asarray(predicted_min, dtype="float64")[keep] - actual_min[keep]) ** 2
    if squared.size < 2:
        return None
    count = 1 if cells is None else cells.count
    row = np.zeros(squared.size, dtype="int64") if row_cells is None else row_cells[keep]
    rows = np.bincount(row, minlength=count).astype("float64")
    sums = np.bincount(row, weights=squared, minlength=count)
    squares = np.bincount(row, weights=squared**2, minlength=count)
    mse = np.divide(sums, rows, out=np.full(count, squared.mean()), where=rows > 1)
    variance = np.divide(
        squares - rows * mse**2, rows - 1, out=np.full(count, squared.var(ddof=1)), where=rows > 1
    )
    if dates is None:
        return ExpectedErrors(cells, mse, variance, rows, 0.0, np.ones(count))
    day_variance, days = _day_variance(squared, row, np.asarray(dates)[keep], mse)
    return ExpectedErrors(cells, mse, variance, rows, day_variance, days)


def _day_variance(
    squared: np.ndarray, row: np.ndarray, dates: np.ndarray, mse: np.ndarray
) -> tuple[float, np.ndarray]:
    """The between-day variance of a day's relative excess MSE, by DerSimonian-Laird (the
    random-effects estimate of meta-analysis): each reference day is one study of "how far off
    is this day", with its own rides' noise as its within-study variance, so a day with a few
    huge errors counts for little. Never below 0."""
    _, day = np.unique(dates, return_inverse=True)
    expected_row = mse[row]
    expected = np.bincount(day, weights=expected_row)
    ratio = np.bincount(day, weights=squared) / expected
    # Each day's squared errors around its own level (ratio x the cells' MSE), per ride.
    spread = (
        np.bincount(day, weights=squared**2)
        - 2 * ratio * np.bincount(day, weights=squared * expected_row)
        + ratio**2 * np.bincount(day, weights=expected_row**2)
    )
    noise = spread / expected**2
    usable = (np.bincount(day) >= MIN_DAY_ROWS) & (noise > 0)
    day_variance = 0.0
    if usable.sum() >= 2:
        weight = 1 / noise[usable]
        excess = ratio[usable] - 1
        mean = float(np.dot(weight, excess) / weight.sum())
        q = float(np.dot(weight, (excess - mean) ** 2))
        scale = float(weight.sum() - np.dot(weight, weight) / weight.sum())
        day_variance = max(0.0, (q - (usable.sum() - 1)) / scale)
    # Distinct reference days behind each cell (a Saturday cell: the month's 4 Saturdays).
    full = (np.bincount(day) >= MIN_DAY_ROWS)[day]
    pairs = np.unique(np.stack([row[full], day[full]]), axis=1)
    days = np.bincount(pairs[0], minlength=len(mse)).astype("float64")
    return day_variance, np.maximum(days, 1.0)


@dataclass(frozen=True)
class QualityTest:
    """The window's MSE against the expected one."""

    expected_mse: float
    z: float
    p_value: float
    design_effect: float
    blocks: int


def hourly_blocks(
    errors: np.ndarray, pickup: pd.DatetimeIndex
) -> tuple[pd.DatetimeIndex, np.ndarray, np.ndarray, np.ndarray]:
    """Per clock hour of pickup: its start, rides, sum of squared errors, sum of their squares."""
    hours = pickup.floor("h")
    starts, block = np.unique(hours.to_numpy(dtype="datetime64[ns]"), return_inverse=True)
    squared = errors**2
    return (
        pd.DatetimeIndex(starts),
        np.bincount(block).astype("float64"),
        np.bincount(block, weights=squared),
        np.bincount(block, weights=squared**2),
    )


def quality_test(
    rides: np.ndarray,
    sums: np.ndarray,
    squares: np.ndarray,
    block_cells: np.ndarray,
    expected: ExpectedErrors,
    window_days: int = 1,
) -> QualityTest | None:
    """The one-sided test of the module docstring, on hourly block aggregates (None when the
    reference expects no error at all: nothing to compare with)."""
    n = float(rides.sum())
    mse = float(sums.sum()) / n
    cell_mse, cell_variance = expected.mse[block_cells], expected.variance[block_cells]
    expected_mse = float(np.dot(rides, cell_mse)) / n
    if expected_mse <= 0:
        return None
    reference_variance = float(np.dot(rides, cell_variance)) / n
    # The window's own profile: the expected per-cell MSE scaled to the window's level, so a
    # rise of the whole window is not mistaken for variation between its hours.
    fitted = cell_mse * (mse / expected_mse)
    window_variance = float(np.sum(squares - 2 * fitted * sums + rides * fitted**2)) / n
    blocks = len(rides)
    design_effect = 1.0
    if blocks >= 2 and window_variance > 0:
        clustered = blocks / (blocks - 1) * float(np.sum((sums - rides * fitted) ** 2)) / n
        design_effect = max(1.0, clustered / window_variance)
    # The expected MSE is itself an estimate: its rides' noise (per cell, weighted by the
    # window's share) and its days' (a Saturday expectation rests on a month's 4 Saturdays).
    share = np.bincount(block_cells, weights=rides, minlength=len(expected.mse)) / n
    used = share > 0
    expected_noise = float(
        np.sum(share[used] ** 2 * expected.variance[used] / np.maximum(expected.rows[used], 1))
    )
    reference_days = 1.0 / float(np.sum(share[used] / expected.days[used]))
    day_noise = expected.day_variance * expected_mse**2 * (1 / window_days + 1 / reference_days)
    variance = (
        design_effect * max(reference_variance, window_variance) / n + expected_noise + day_noise
    )
    z = (mse - expected_mse) / float(np.sqrt(variance)) if variance > 0 else 0.0
    p_value = float(stats.t.sf(z, df=blocks - 1) if blocks >= 2 else stats.norm.sf(z))
    return QualityTest(expected_mse, float(z), p_value, design_effect, blocks)


def window_quality(
    predicted_min: np.ndarray,
    actual_min: np.ndarray,
    pickup: pd.DatetimeIndex | np.ndarray | None = None,
    expected: ExpectedErrors | None = None,
) -> WindowQuality:
    """RMSE, MAE and mean error (predicted - actual) over the labelled rides among those given,
    and, with their pickup times and the champion's expected errors, the quality test."""
    predicted = np.asarray(predicted_min, dtype="float64")
    actual = np.asarray(actual_min, dtype="float64")
    keep = is_labelled(actual)
    error = predicted[keep] - actual[keep]
    if error.size == 0:
        return WindowQuality(count=0, rmse=None, mae=None, mean_error=None)
    quality = WindowQuality(
        count=int(error.size),
        rmse=float(np.sqrt(np.mean(error**2))),
        mae=float(np.mean(np.abs(error))),
        mean_error=float(np.mean(error)),
    )
    if pickup is None or expected is None:
        return quality
    starts, rides, sums, squares = hourly_blocks(error, pd.DatetimeIndex(pickup)[keep])
    cells = (
        np.zeros(len(starts), dtype="int64")
        if expected.cells is None
        else pickup_cells(expected.cells, starts)
    )
    window_days = len(np.unique(starts.normalize()))
    test = quality_test(rides, sums, squares, cells, expected, window_days)
    if test is None:
        return quality
    return quality.model_copy(
        update={
            "expected_rmse": float(np.sqrt(test.expected_mse)),
            "z": test.z,
            "p_value": test.p_value,
            "design_effect": test.design_effect,
            "blocks": test.blocks,
        }
    )
