"""The calendar: hour-of-week cells, and drift against the reference reweighted to a window."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from monitor.calendar import (
    SATURDAY,
    SUNDAY,
    WEEKDAY,
    CalendarOptions,
    build_cells,
    pickup_cells,
    pickup_day_types,
    reference_weights,
    window_mix,
)
from monitor.drift import (
    DriftOptions,
    column_drift,
    prepare_reference,
    reweighted_frame,
    window_drift,
)
from ridestream.features import PICKUP_TIME, PREDICTION, TARGET

WEEKDAY_ZONES = [str(z) for z in range(1, 41)]
WEEKEND_ZONES = [str(z) for z in range(31, 71)]


def rides(start: str, days: int, per_day: int, seed: int, weekend_zones=WEEKEND_ZONES):
    """Rides whose zones and durations depend on the day type, like green taxis."""
    rng = np.random.default_rng(seed)
    frames = []
    for day in pd.date_range(start, periods=days, freq="D"):
        weekend = day.weekday() >= 5
        zones = weekend_zones if weekend else WEEKDAY_ZONES
        pickup = day + pd.to_timedelta(rng.uniform(0, 24, per_day), unit="h")
        distance = rng.exponential(2.0 if weekend else 3.0, per_day)
        duration = np.clip(3 + 3 * distance + rng.normal(0, 3, per_day), 1, 60)
        frames.append(
            pd.DataFrame(
                {
                    PICKUP_TIME: pickup,
                    "pickup_hour": pickup.hour + pickup.minute / 60,
                    "pickup_weekday": pickup.weekday,
                    "trip_distance": distance,
                    "PULocationID": rng.choice(zones, per_day),
                    "DOLocationID": rng.choice(zones, per_day),
                    PREDICTION: 3 + 3 * distance,
                    TARGET: duration,
                }
            )
        )
    return pd.concat(frames, ignore_index=True)


def current(frame: pd.DataFrame, with_times: bool = True) -> dict:
    values = {c: frame[c].to_numpy() for c in ("trip_distance", PREDICTION)}
    values.update({c: frame[c].tolist() for c in ("PULocationID", "DOLocationID")})
    if with_times:
        values[PICKUP_TIME] = pd.DatetimeIndex(frame[PICKUP_TIME])
    return values


def test_a_normal_weekend_does_not_drift_against_the_reweighted_reference():
    reference = prepare_reference(rides("2021-02-01", 28, 700, seed=0), "1", 5.0)
    saturday = rides("2021-03-06", 1, 1500, seed=1)
    whole = window_drift(reference, current(saturday, with_times=False))
    by_kind = window_drift(reference, current(saturday))
    assert whole.drifted_share == 1.0  # the weekend's zones against a whole-month reference
    assert whole.prediction_drift is not None and whole.prediction_drift.drifted
    assert by_kind.drifted_share == 0.0
    assert by_kind.prediction_drift is not None and not by_kind.prediction_drift.drifted


def test_a_real_shift_on_a_weekend_still_drifts():
    reference = prepare_reference(rides("2021-02-01", 28, 700, seed=0), "1", 5.0)
    moved = [str(z) for z in range(100, 140)]
    saturday = rides("2021-03-06", 1, 1500, seed=2, weekend_zones=moved)
    drift = window_drift(reference, current(saturday))
    assert [c.drifted for c in drift.columns] == [False, True, True]


def test_uniform_weights_give_the_unweighted_scores():
    frame = rides("2021-02-01", 28, 700, seed=0)
    reference = prepare_reference(frame, "1", 5.0)
    assert reference.cells is not None
    # The reference's own mix: every reference row weighs the same.
    mix = reference.cells.reference_rows / reference.cells.reference_rows.sum()
    window = current(rides("2021-03-01", 3, 1000, seed=3))
    for kind_options in (DriftOptions(), DriftOptions(num_method="ks", cat_method="chisquare")):
        for column in (*reference.columns, reference.prediction):
            values = window[column.column]
            plain = column_drift(column, values, kind_options)
            weighted = column_drift(column, values, kind_options, mix)
            assert weighted.method == plain.method
            assert weighted.score == pytest.approx(plain.score, rel=1e-9, abs=1e-12)
            assert weighted.drifted == plain.drifted


def test_cells_hold_enough_reference_rows_and_cover_every_hour_of_the_week():
    frame = rides("2021-02-01", 28, 700, seed=0)
    days = pickup_day_types(pd.DatetimeIndex(frame[PICKUP_TIME]), holidays_as_sunday=False)
    hours = pd.DatetimeIndex(frame[PICKUP_TIME]).hour.to_numpy()
    cells, row_cells = build_cells(days, hours, CalendarOptions(min_cell_rows=200))
    assert cells.cell_of_hour.shape == (3, 24)
    assert set(np.unique(cells.cell_of_hour)) == set(range(cells.count))
    assert (cells.reference_rows >= 200).all()
    assert cells.reference_rows.sum() == len(frame)
    # Weekday, Saturday and Sunday never share a cell when each has enough rows.
    weekday, saturday, sunday = (set(cells.cell_of_hour[d]) for d in (WEEKDAY, SATURDAY, SUNDAY))
    assert not (weekday & saturday) and not (saturday & sunday)
    assert np.bincount(row_cells).tolist() == cells.reference_rows.tolist()


def test_a_day_type_with_too_few_rows_merges_with_its_neighbour():
    days = np.array([WEEKDAY] * 5000 + [SATURDAY] * 300 + [SUNDAY] * 50)
    hours = np.arange(len(days)) % 24
    cells, _ = build_cells(days, hours, CalendarOptions(min_cell_rows=200))
    assert set(cells.cell_of_hour[SATURDAY]) == set(cells.cell_of_hour[SUNDAY])
    assert not set(cells.cell_of_hour[WEEKDAY]) & set(cells.cell_of_hour[SATURDAY])


def test_a_federal_holiday_is_a_sunday_and_weights_follow_the_window_mix():
    times = pd.DatetimeIndex(["2021-01-18 09:00", "2021-01-19 09:00", "2021-01-23 09:00"])
    assert pickup_day_types(times).tolist() == [SUNDAY, WEEKDAY, SATURDAY]  # MLK Day
    assert pickup_day_types(times, holidays_as_sunday=False).tolist() == [0, 0, SATURDAY]
    days = np.array([WEEKDAY] * 300 + [SATURDAY] * 300 + [SUNDAY] * 300)
    cells, row_cells = build_cells(days, np.zeros(900, dtype=int), CalendarOptions(300))
    mix = window_mix(cells, pickup_cells(cells, times[:1]))  # one holiday ride
    weights = reference_weights(mix, row_cells)
    assert weights.sum() == pytest.approx(1.0)
    assert weights[600:].sum() == pytest.approx(1.0)  # all on the Sunday rows


def test_the_evidently_snapshot_compares_a_saturday_with_the_reference_saturdays():
    from monitor.snapshots import build_snapshot
    from ridestream.events import DriftWindowClosed, WindowQuality

    reference = prepare_reference(rides("2021-02-01", 28, 700, seed=0), "1", 5.0)
    saturday = rides("2021-03-06", 1, 1500, seed=1)
    baseline = reweighted_frame(reference, pd.DatetimeIndex(saturday[PICKUP_TIME]))
    assert len(baseline) == len(reference.frame)
    assert set(baseline["PULocationID"]) <= set(WEEKEND_ZONES)  # Saturday rows only
    event = DriftWindowClosed(
        window_id="1d:2021-03-06T00:00",
        window_start=pd.Timestamp("2021-03-06"),
        event_time=pd.Timestamp("2021-03-07"),
        reference_version="1",
        model_versions=["1"],
        rides=len(saturday),
        labelled=len(saturday),
        late=0,
        expired=0,
        columns=[],
        drifted_share=0.0,
        prediction_drift=None,
        quality=WindowQuality(count=0, rmse=None, mae=None, mean_error=None),
    )
    report = build_snapshot(event, saturday, reference).dict()
    failed = [t["name"] for t in report["tests"] if t["status"].endswith("FAIL")]
    assert not [name for name in failed if name.startswith("Value Drift for column")]
