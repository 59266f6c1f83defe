"""The quality test: a window's MSE against what the champion makes on such rides."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from monitor.calendar import CalendarOptions, build_cells, pickup_day_types
from monitor.quality import expected_errors, window_quality

RNG_SEED = 7


def errors_frame(days: int, per_day: int, seed: int, scale: float = 1.0, hour_shock: float = 0.0):
    """Rides with heavy-tailed errors; `hour_shock` gives every clock hour a shared slowdown."""
    rng = np.random.default_rng(seed)
    pickup = pd.Timestamp("2021-02-01") + pd.to_timedelta(
        np.sort(rng.uniform(0, 24 * days, days * per_day)), unit="h"
    )
    actual = rng.uniform(5, 40, len(pickup))
    hour = (pickup - pickup[0]).total_seconds().to_numpy() // 3600
    shock = rng.normal(0, hour_shock, int(hour.max()) + 1)[hour.astype(int)] if hour_shock else 0
    error = scale * rng.standard_t(4, len(pickup)) * 3 + shock
    predicted = actual + error
    return pickup, predicted, actual


def expected_of(pickup, predicted, actual, min_cell_rows=200):
    times = pd.DatetimeIndex(pickup)
    days = pickup_day_types(times)
    cells, row_cells = build_cells(days, times.hour.to_numpy(), CalendarOptions(min_cell_rows))
    dates = times.normalize().to_numpy(dtype="datetime64[D]")
    return expected_errors(predicted, actual, cells, row_cells, dates)


@pytest.fixture(scope="module")
def expected():
    return expected_of(*errors_frame(28, 700, seed=0))


def test_windows_like_the_reference_rarely_fire(expected):
    p_values = []
    for seed in range(1, 41):
        pickup, predicted, actual = errors_frame(1, 2500, seed=seed)
        quality = window_quality(predicted, actual, pickup, expected)
        assert quality.p_value is not None
        p_values.append(quality.p_value)
    assert sum(p <= 0.01 for p in p_values) <= 2  # 40 windows at alpha 1 %: ~0.4 by chance


def test_a_window_30_percent_worse_fires_with_its_evidence(expected):
    pickup, predicted, actual = errors_frame(1, 2500, seed=99, scale=1.3)
    quality = window_quality(predicted, actual, pickup, expected)
    assert quality.p_value is not None and quality.p_value < 1e-3
    assert quality.rmse is not None and quality.expected_rmse is not None
    assert quality.rmse / quality.expected_rmse == pytest.approx(1.3, rel=0.1)
    assert quality.blocks == 24 and quality.z is not None and quality.z > 3


def test_a_small_window_does_not_fire_on_a_few_bad_rides(expected):
    pickup, predicted, actual = errors_frame(1, 40, seed=5, scale=1.3)
    quality = window_quality(predicted, actual, pickup, expected)
    assert quality.p_value is not None and quality.p_value > 0.01


def test_rides_sharing_an_hour_inflate_the_variance_by_the_design_effect(expected):
    independent = window_quality(*_reordered(errors_frame(1, 2500, seed=11)), expected)
    shocked = window_quality(*_reordered(errors_frame(1, 2500, seed=11, hour_shock=3.0)), expected)
    assert independent.design_effect is not None and shocked.design_effect is not None
    assert shocked.design_effect > 2 * independent.design_effect


def test_the_test_depends_on_the_rides_not_on_their_order(expected):
    pickup, predicted, actual = errors_frame(1, 2500, seed=12, scale=1.1)
    order = np.random.default_rng(0).permutation(len(pickup))
    first = window_quality(predicted, actual, pickup, expected)
    shuffled = window_quality(predicted[order], actual[order], pickup[order], expected)
    assert shuffled.p_value == pytest.approx(first.p_value, rel=1e-9)
    assert shuffled.z == pytest.approx(first.z, rel=1e-9)


def test_the_reference_days_spread_is_in_the_expectation():
    steady = expected_of(*errors_frame(28, 700, seed=0))
    pickup, predicted, actual = errors_frame(28, 700, seed=0)
    # Every reference day off by its own factor: weather, events.
    day = (pd.DatetimeIndex(pickup) - pd.Timestamp("2021-02-01")).days.to_numpy()
    factor = np.random.default_rng(3).lognormal(0, 0.3, 28)[day]
    stormy = expected_of(pickup, actual + (predicted - actual) * factor, actual)
    assert steady is not None and stormy is not None
    assert stormy.day_variance > 5 * max(steady.day_variance, 1e-3)


def _reordered(frame):
    pickup, predicted, actual = frame
    return predicted, actual, pickup
