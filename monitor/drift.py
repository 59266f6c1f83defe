"""Data drift of a window against the champion's reference, with Evidently's own stat tests.

A full Evidently `Report` with `DataDriftPreset` costs ~0.35 s per window, mostly rendering.
This module gives the same numbers in milliseconds: it picks the stat test exactly as Evidently
does (`evidently.legacy.calculations.stattests.registry._get_default_stattest`: by reference
size and number of distinct values), takes its name and default threshold from Evidently's
registry, and computes the two tests Evidently picks for large references (normed Wasserstein
for numerical columns, Jensen-Shannon for categorical ones) from reference statistics prepared
once per champion (sorted distinct values, category counts). Any other test (small references:
K-S, chi-square, Z; or a method chosen in the settings) runs through Evidently's own function.
`tests/unit/monitor/test_drift.py` checks scores and verdicts against a full Report on real
windows (`test_drift_numbers_equal_a_full_evidently_report_on_real_windows`).

The calendar (see `monitor.calendar`): when the window gives its pickup times, the reference is
reweighted to the window's hour-of-week mix before the tests, with the same test definitions and
thresholds: Wasserstein on the weighted CDF (normed by the reference's std), Jensen-Shannon on the
weighted category shares, and any test run through Evidently's own function on a deterministic
weighted resample of the reference (as many rows as the reference has). With all weights equal
this is the unweighted test, number for number.

Zone ids are categories: strings here and in the reference, never numbers.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any, Literal

import numpy as np
import pandas as pd
from evidently.legacy.calculations import stattests
from evidently.legacy.calculations.stattests.registry import StatTest, get_registered_stattest
from evidently.legacy.core import ColumnType
from scipy.spatial import distance

from monitor.calendar import (
    CalendarOptions,
    Cells,
    build_cells,
    pickup_cells,
    reference_calendar,
    reference_weights,
    window_mix,
)
from monitor.quality import ExpectedErrors, expected_errors
from ridestream.events import ColumnDrift
from ridestream.features import (
    DRIFT_CATEGORICAL,
    DRIFT_NUMERICAL,
    PICKUP_TIME,
    PREDICTION,
    TARGET,
)

ColumnKind = Literal["numerical", "categorical"]
# Evidently switches from tests to distances above this many reference rows.
SMALL_REFERENCE_ROWS = 1000
DEFAULT_CALENDAR = CalendarOptions()
# Evidently's Wasserstein norm: max(std(reference), 0.001).
MIN_WASSERSTEIN_NORM = 0.001


@dataclass(frozen=True)
class DriftOptions:
    """Evidently's knobs (None = Evidently's default, picked by data size)."""

    num_method: str | None = None
    cat_method: str | None = None
    num_threshold: float | None = None
    cat_threshold: float | None = None


@dataclass(frozen=True)
class ColumnReference:
    """One column of the reference, prepared once per champion."""

    column: str
    kind: ColumnKind
    series: pd.Series  # cleaned values, for the tests that run through Evidently's function
    # numerical: distinct sorted values, and how many reference values are <= each
    distinct: np.ndarray
    cumulative: np.ndarray
    std: float
    # categorical: count per category
    counts: dict[str, int]
    # the calendar cell of each value of `series` (empty without a calendar)
    cells: np.ndarray
    # numerical: the order that sorts `series`; categorical: each value's index in `categories`
    order: np.ndarray
    categories: tuple[str, ...] = ()

    @property
    def rows(self) -> int:
        return len(self.series)


@dataclass(frozen=True)
class Reference:
    """The champion's reference data, ready for drift tests and the quality rule."""

    version: str | None
    rmse: float | None  # the champion's validation RMSE (quality rule)
    columns: tuple[ColumnReference, ...]
    prediction: ColumnReference
    frame: pd.DataFrame  # the drift columns, for the Evidently snapshot
    cells: Cells | None  # the hour-of-week cells (None: the reference has no pickup times)
    row_cells: np.ndarray | None  # the cell of each row of `frame`
    errors: ExpectedErrors | None  # the champion's squared errors per cell (quality test)


def prepare_column(
    column: str, kind: ColumnKind, values: pd.Series, cells: np.ndarray | None = None
) -> ColumnReference:
    """Reference statistics of one column (drops NaN and infinities, as Evidently does)."""
    row_cells = np.zeros(len(values), dtype="int64") if cells is None else np.asarray(cells)
    if kind == "numerical":
        numbers = pd.Series(values, dtype="float64").replace([np.inf, -np.inf], np.nan)
        keep = numbers.notna().to_numpy()
        series = numbers[keep]
        array = series.to_numpy()
        distinct, counts = np.unique(array, return_counts=True)
        return ColumnReference(
            column,
            kind,
            series.reset_index(drop=True),
            distinct,
            np.cumsum(counts),
            float(np.std(array)) if len(array) else 0.0,
            {},
            row_cells[keep] if cells is not None else np.empty(0, dtype="int64"),
            np.argsort(array, kind="stable"),
        )
    keep = values.notna().to_numpy()
    series = values[keep].astype(str).reset_index(drop=True)
    categories, codes = np.unique(series.to_numpy(dtype=str), return_inverse=True)
    return ColumnReference(
        column,
        kind,
        series,
        np.empty(0),
        np.empty(0),
        0.0,
        dict(Counter(series.tolist())),
        row_cells[keep] if cells is not None else np.empty(0, dtype="int64"),
        codes.astype("int64"),
        tuple(str(c) for c in categories),
    )


def prepare_reference(
    frame: pd.DataFrame,
    version: str | None,
    rmse: float | None,
    calendar: CalendarOptions | None = DEFAULT_CALENDAR,
) -> Reference:
    """Prepare a champion's reference frame (`FEATURES` + `PREDICTION` + `TARGET`) once.

    `calendar`: how to cut the week into cells (None, or a frame without pickup times nor
    `pickup_hour` and `pickup_weekday`: no calendar, every window is compared with the whole
    reference).
    """
    cells: Cells | None = None
    row_cells: np.ndarray | None = None
    dates: np.ndarray | None = None
    known = None if calendar is None else reference_calendar(frame, calendar.holidays_as_sunday)
    if calendar is not None and known is not None:
        days, hours, dates = known
        cells, row_cells = build_cells(days, hours, calendar)
    columns = tuple(
        [prepare_column(c, "numerical", frame[c], row_cells) for c in DRIFT_NUMERICAL]
        + [prepare_column(c, "categorical", frame[c], row_cells) for c in DRIFT_CATEGORICAL]
    )
    prediction = prepare_column(PREDICTION, "numerical", frame[PREDICTION], row_cells)
    drift_columns = [*DRIFT_NUMERICAL, *DRIFT_CATEGORICAL, PREDICTION]
    snapshot_frame = frame[drift_columns].copy()
    for column in DRIFT_CATEGORICAL:
        snapshot_frame[column] = snapshot_frame[column].astype(str)
    errors = None
    if TARGET in frame:
        snapshot_frame[TARGET] = frame[TARGET]
        errors = expected_errors(
            frame[PREDICTION].to_numpy(dtype="float64"),
            frame[TARGET].to_numpy(dtype="float64"),
            cells,
            row_cells,
            dates,
        )
    return Reference(
        version,
        rmse,
        columns,
        prediction,
        snapshot_frame.reset_index(drop=True),
        cells,
        row_cells,
        errors,
    )


def reference_rmse(frame: pd.DataFrame) -> float | None:
    """RMSE of the reference's own predictions (a fallback when the registry has no val_rmse)."""
    if PREDICTION not in frame or TARGET not in frame or frame.empty:
        return None
    error = frame[PREDICTION].to_numpy(dtype="float64") - frame[TARGET].to_numpy(dtype="float64")
    return float(np.sqrt(np.mean(error**2)))


def _distinct_values(reference: ColumnReference, current: np.ndarray | list[str]) -> int:
    """How many distinct values reference and current hold together (Evidently's n_values)."""
    if reference.kind == "categorical":
        return len(set(reference.counts) | set(current))
    current_distinct = np.unique(np.asarray(current, dtype="float64"))
    positions = np.searchsorted(reference.distinct, current_distinct)
    positions = np.minimum(positions, max(len(reference.distinct) - 1, 0))
    known = (
        reference.distinct[positions] == current_distinct
        if len(reference.distinct)
        else np.zeros(len(current_distinct), dtype=bool)
    )
    return len(reference.distinct) + int((~known).sum())


def choose_stattest(
    reference: ColumnReference, current: np.ndarray | list[str], options: DriftOptions
) -> StatTest:
    """The stat test Evidently uses for this column (its registry, its default by size)."""
    column_type = ColumnType.Numerical if reference.kind == "numerical" else ColumnType.Categorical
    method = options.num_method if reference.kind == "numerical" else options.cat_method
    if method:
        return get_registered_stattest(method, column_type)
    n_values = _distinct_values(reference, current)
    if reference.rows <= SMALL_REFERENCE_ROWS:
        if reference.kind == "numerical" and n_values > 5:
            return stattests.ks_stat_test
        return stattests.chi_stat_test if n_values > 2 else stattests.z_stat_test
    if reference.kind == "numerical":
        return (
            stattests.jensenshannon_stat_test if n_values <= 5 else stattests.wasserstein_stat_test
        )
    return stattests.jensenshannon_stat_test


def wasserstein_norm(
    reference: ColumnReference, current: np.ndarray, weights: np.ndarray | None = None
) -> float:
    """Evidently's normed Wasserstein distance, from the reference's prepared distinct values.

    The 1-D first Wasserstein distance is the area between the two empirical CDFs (what
    scipy.stats.wasserstein_distance integrates); both CDFs are step functions that only move
    at the distinct values, so it is computed over those instead of all the raw values.
    `weights` (one per reference value, summing to 1) give the reweighted reference's CDF;
    None: every value weighs the same (Evidently's own test).
    """
    current_distinct, current_counts = np.unique(current, return_counts=True)
    points = np.union1d(reference.distinct, current_distinct)
    if weights is None:
        ref_cdf = np.concatenate(([0], reference.cumulative))[
            np.searchsorted(reference.distinct, points[:-1], side="right")
        ] / float(reference.rows)
    else:
        values = reference.series.to_numpy()
        ordered = values[reference.order]
        ref_cdf = np.concatenate(([0.0], np.cumsum(weights[reference.order])))[
            np.searchsorted(ordered, points[:-1], side="right")
        ]
    cur_cdf = np.concatenate(([0], np.cumsum(current_counts)))[
        np.searchsorted(current_distinct, points[:-1], side="right")
    ] / float(len(current))
    wasserstein = float(np.sum(np.abs(ref_cdf - cur_cdf) * np.diff(points)))
    # Also when weighted, the norm is the whole reference's std: the column's scale, not the
    # window's mix. A cell-weighted std swings with the rare outlier a cell happens to hold
    # (trip_distance: the Sunday cells' std without the reference's far outliers made one
    # outlier ride of 2021-02-28 score 9.0).
    return wasserstein / max(reference.std, MIN_WASSERSTEIN_NORM)


def jensenshannon_categorical(
    reference: ColumnReference, current: Sequence[str], weights: np.ndarray | None = None
) -> float:
    """Evidently's Jensen-Shannon distance of a categorical column (category shares, no bins);
    `weights` as in `wasserstein_norm`."""
    current_counts = Counter(current)
    keys = list(set(reference.counts) | set(current_counts))
    if weights is None:
        ref_share = np.array([reference.counts.get(k, 0) for k in keys]) / reference.rows
    else:
        shares = np.bincount(reference.order, weights=weights, minlength=len(reference.categories))
        share_of = dict(zip(reference.categories, shares.tolist(), strict=True))
        ref_share = np.array([share_of.get(k, 0.0) for k in keys])
    cur_share = np.array([current_counts.get(k, 0) for k in keys]) / len(current)
    return float(distance.jensenshannon(ref_share, cur_share))


def resample_positions(weights: np.ndarray) -> np.ndarray:
    """As many row positions as `weights` has, drawn by systematic resampling (weights sum 1).

    Deterministic (no random draw): position i is the row where the weights' running sum first
    passes (i + 0.5) / n, so each row appears about n × its weight times.
    """
    n = len(weights)
    positions = np.searchsorted(np.cumsum(weights), (np.arange(n) + 0.5) / n, side="right")
    return np.minimum(positions, n - 1)


def weighted_resample(series: pd.Series, weights: np.ndarray) -> pd.Series:
    """`series` resampled with `weights` (see `resample_positions`)."""
    return series.iloc[resample_positions(weights)].reset_index(drop=True)


def reweighted_frame(reference: Reference, pickup: pd.DatetimeIndex) -> pd.DataFrame:
    """The reference frame resampled to the hour-of-week mix of rides picked up at `pickup`
    (the frame as it is without calendar cells): what the Evidently snapshot compares with."""
    if reference.cells is None or reference.row_cells is None or len(pickup) == 0:
        return reference.frame
    mix = window_mix(reference.cells, pickup_cells(reference.cells, pickup))
    positions = resample_positions(reference_weights(mix, reference.row_cells))
    return reference.frame.iloc[positions].reset_index(drop=True)


def column_drift(
    reference: ColumnReference,
    current: np.ndarray | list[str],
    options: DriftOptions,
    mix: np.ndarray | None = None,
) -> ColumnDrift:
    """One column's drift: Evidently's method, score, threshold and verdict.

    `mix`: the window's share of rides per calendar cell (None: the whole reference as it is).
    """
    stattest = choose_stattest(reference, current, options)
    override = options.num_threshold if reference.kind == "numerical" else options.cat_threshold
    threshold = stattest.default_threshold if override is None else override
    weights = (
        None if mix is None or not len(reference.cells) else reference_weights(mix, reference.cells)
    )
    if stattest is stattests.wasserstein_stat_test and reference.kind == "numerical":
        score = wasserstein_norm(reference, np.asarray(current, dtype="float64"), weights)
        drifted = score >= threshold
    elif stattest is stattests.jensenshannon_stat_test and reference.kind == "categorical":
        score = jensenshannon_categorical(reference, list(current), weights)
        drifted = score >= threshold
    else:
        column_type = (
            ColumnType.Numerical if reference.kind == "numerical" else ColumnType.Categorical
        )
        dtype = "float64" if reference.kind == "numerical" else "object"
        series = (
            reference.series if weights is None else weighted_resample(reference.series, weights)
        )
        result = stattest(series, pd.Series(current, dtype=dtype), column_type, threshold)
        score, drifted = float(result.drift_score), bool(result.drifted)
    return ColumnDrift(
        column=reference.column,
        column_type=reference.kind,
        method=stattest.display_name,
        score=float(score),
        threshold=float(threshold),
        drifted=bool(drifted),
    )


@dataclass(frozen=True)
class WindowDrift:
    """The drift part of a closed window."""

    columns: list[ColumnDrift]
    drifted_share: float | None
    prediction_drift: ColumnDrift | None


def window_drift(
    reference: Reference,
    current: Mapping[str, Any],
    options: DriftOptions = DriftOptions(),
) -> WindowDrift:
    """Drift of the window's columns (`current`: column → values) and of the prediction.

    With the rides' pickup times in `current[PICKUP_TIME]` and a reference with calendar cells,
    the reference is reweighted to the window's hour-of-week mix (see `monitor.calendar`).
    """
    if len(current[PREDICTION]) == 0:
        return WindowDrift([], None, None)
    mix = None
    if reference.cells is not None and PICKUP_TIME in current:
        pickup = pd.DatetimeIndex(current[PICKUP_TIME])
        mix = window_mix(reference.cells, pickup_cells(reference.cells, pickup))
    columns = [column_drift(ref, current[ref.column], options, mix) for ref in reference.columns]
    share = sum(c.drifted for c in columns) / len(columns)
    prediction = column_drift(reference.prediction, current[PREDICTION], options, mix)
    return WindowDrift(columns, share, prediction)
