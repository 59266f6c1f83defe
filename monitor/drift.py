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

Zone ids are categories: strings here and in the reference, never numbers.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Literal

import numpy as np
import pandas as pd
from evidently.legacy.calculations import stattests
from evidently.legacy.calculations.stattests.registry import StatTest, get_registered_stattest
from evidently.legacy.core import ColumnType
from scipy.spatial import distance

from ridestream.events import ColumnDrift
from ridestream.features import DRIFT_CATEGORICAL, DRIFT_NUMERICAL, PREDICTION, TARGET

ColumnKind = Literal["numerical", "categorical"]
# Evidently switches from tests to distances above this many reference rows.
SMALL_REFERENCE_ROWS = 1000
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


def prepare_column(column: str, kind: ColumnKind, values: pd.Series) -> ColumnReference:
    """Reference statistics of one column (drops NaN and infinities, as Evidently does)."""
    if kind == "numerical":
        series = pd.Series(values, dtype="float64").replace([np.inf, -np.inf], np.nan).dropna()
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
        )
    series = values.dropna().astype(str).reset_index(drop=True)
    return ColumnReference(
        column, kind, series, np.empty(0), np.empty(0), 0.0, dict(Counter(series.tolist()))
    )


def prepare_reference(frame: pd.DataFrame, version: str | None, rmse: float | None) -> Reference:
    """Prepare a champion's reference frame (`FEATURES` + `PREDICTION` + `TARGET`) once."""
    columns = tuple(
        [prepare_column(c, "numerical", frame[c]) for c in DRIFT_NUMERICAL]
        + [prepare_column(c, "categorical", frame[c]) for c in DRIFT_CATEGORICAL]
    )
    prediction = prepare_column(PREDICTION, "numerical", frame[PREDICTION])
    drift_columns = [*DRIFT_NUMERICAL, *DRIFT_CATEGORICAL, PREDICTION]
    snapshot_frame = frame[drift_columns].copy()
    for column in DRIFT_CATEGORICAL:
        snapshot_frame[column] = snapshot_frame[column].astype(str)
    if TARGET in frame:
        snapshot_frame[TARGET] = frame[TARGET]
    return Reference(version, rmse, columns, prediction, snapshot_frame.reset_index(drop=True))


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


def wasserstein_norm(reference: ColumnReference, current: np.ndarray) -> float:
    """Evidently's normed Wasserstein distance, from the reference's prepared distinct values.

    The 1-D first Wasserstein distance is the area between the two empirical CDFs (what
    scipy.stats.wasserstein_distance integrates); both CDFs are step functions that only move
    at the distinct values, so it is computed over those instead of all the raw values.
    """
    current_distinct, current_counts = np.unique(current, return_counts=True)
    points = np.union1d(reference.distinct, current_distinct)
    ref_cdf = np.concatenate(([0], reference.cumulative))[
        np.searchsorted(reference.distinct, points[:-1], side="right")
    ] / float(reference.rows)
    cur_cdf = np.concatenate(([0], np.cumsum(current_counts)))[
        np.searchsorted(current_distinct, points[:-1], side="right")
    ] / float(len(current))
    wasserstein = float(np.sum(np.abs(ref_cdf - cur_cdf) * np.diff(points)))
    return wasserstein / max(reference.std, MIN_WASSERSTEIN_NORM)


def jensenshannon_categorical(reference: ColumnReference, current: Sequence[str]) -> float:
    """Evidently's Jensen-Shannon distance of a categorical column (category shares, no bins)."""
    current_counts = Counter(current)
    keys = list(set(reference.counts) | set(current_counts))
    ref_share = np.array([reference.counts.get(k, 0) for k in keys]) / reference.rows
    cur_share = np.array([current_counts.get(k, 0) for k in keys]) / len(current)
    return float(distance.jensenshannon(ref_share, cur_share))


def column_drift(
    reference: ColumnReference, current: np.ndarray | list[str], options: DriftOptions
) -> ColumnDrift:
    """One column's drift: Evidently's method, score, threshold and verdict."""
    stattest = choose_stattest(reference, current, options)
    override = options.num_threshold if reference.kind == "numerical" else options.cat_threshold
    threshold = stattest.default_threshold if override is None else override
    if stattest is stattests.wasserstein_stat_test and reference.kind == "numerical":
        score = wasserstein_norm(reference, np.asarray(current, dtype="float64"))
        drifted = score >= threshold
    elif stattest is stattests.jensenshannon_stat_test and reference.kind == "categorical":
        score = jensenshannon_categorical(reference, list(current))
        drifted = score >= threshold
    else:
        column_type = (
            ColumnType.Numerical if reference.kind == "numerical" else ColumnType.Categorical
        )
        dtype = "float64" if reference.kind == "numerical" else "object"
        result = stattest(reference.series, pd.Series(current, dtype=dtype), column_type, threshold)
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
    current: dict[str, np.ndarray | list[str]],
    options: DriftOptions = DriftOptions(),
) -> WindowDrift:
    """Drift of the window's columns (`current`: column → values) and of the prediction."""
    if len(current[PREDICTION]) == 0:
        return WindowDrift([], None, None)
    columns = [column_drift(ref, current[ref.column], options) for ref in reference.columns]
    share = sum(c.drifted for c in columns) / len(columns)
    prediction = column_drift(reference.prediction, current[PREDICTION], options)
    return WindowDrift(columns, share, prediction)
