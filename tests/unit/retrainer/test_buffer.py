"""The ride buffer: bounded by event time and rows, labelled rides only, duplicates removed."""

from __future__ import annotations

from datetime import datetime, timedelta

import numpy as np
import pandas as pd
import pytest

from retrainer.buffer import RideBuffer
from ridestream.features import DROPOFF_TIME, PICKUP_TIME, RIDE_ID, TARGET

START = datetime(2021, 1, 1)


def rides(first: int, count: int, *, every: timedelta = timedelta(hours=1), duration_min=10.0):
    """`count` rides numbered from `first`, one drop-off every `every`."""
    numbers = np.arange(first, first + count)
    dropoff = pd.to_datetime([START + every * int(n) for n in numbers])
    durations = np.full(count, duration_min, dtype="float64")
    return pd.DataFrame(
        {
            RIDE_ID: [f"ride-{n}" for n in numbers],
            PICKUP_TIME: dropoff - pd.to_timedelta(durations, unit="min"),
            DROPOFF_TIME: dropoff,
            "PULocationID": 1 + numbers % 265,
            "DOLocationID": 1 + (numbers * 7) % 265,
            "trip_distance": numbers % 20 / 2,
            TARGET: durations,
        }
    )


def test_rides_older_than_max_age_before_newest_dropoff_are_evicted():
    buffer = RideBuffer(max_age=timedelta(days=2), max_rows=10_000)
    buffer.append(rides(0, 24 * 5))  # five days, one ride an hour
    snapshot = buffer.snapshot()
    newest = pd.Timestamp(START + timedelta(hours=24 * 5 - 1))
    assert snapshot[DROPOFF_TIME].max() == newest
    assert snapshot[DROPOFF_TIME].min() == newest - pd.Timedelta(days=2)
    assert len(buffer) == 2 * 24 + 1
    assert buffer.stats().evicted_by_time == 24 * 5 - (2 * 24 + 1)


def test_time_bound_follows_event_time_not_arrival_or_wall_clock():
    buffer = RideBuffer(max_age=timedelta(days=1), max_rows=10_000)
    buffer.append(rides(100, 10))  # newest drop-off: hour 109
    buffer.append(rides(0, 10))  # late arrivals from 4 days earlier: already too old
    assert len(buffer) == 10
    assert buffer.snapshot()[DROPOFF_TIME].min() == pd.Timestamp(START + timedelta(hours=100))
    assert buffer.newest_dropoff == pd.Timestamp(START + timedelta(hours=109))


def test_row_bound_drops_the_oldest_arrivals_first():
    buffer = RideBuffer(max_age=timedelta(days=365), max_rows=100, chunk_rows=32)
    for first in range(0, 250, 25):
        buffer.append(rides(first, 25))
    snapshot = buffer.snapshot()
    assert len(buffer) == 100
    assert len(snapshot) == 100
    assert snapshot[DROPOFF_TIME].min() == pd.Timestamp(START + timedelta(hours=150))
    assert buffer.stats().evicted_by_rows == 150


def test_unlabelled_rides_are_not_stored_but_still_advance_the_clock():
    buffer = RideBuffer(max_age=timedelta(days=1), max_rows=1_000)
    buffer.append(rides(0, 10))
    buffer.append(rides(100, 5, duration_min=0.5))  # under a minute: not labelled
    assert len(buffer) == 0  # all ten earlier rides are > 1 day before hour 104
    assert buffer.stats().unlabelled_skipped == 5
    assert buffer.newest_dropoff == pd.Timestamp(START + timedelta(hours=104))


def test_snapshot_removes_replayed_rides_and_is_sorted_by_pickup():
    buffer = RideBuffer(max_age=timedelta(days=30), max_rows=1_000)
    buffer.append(rides(10, 10))
    buffer.append(rides(0, 15))  # rides 10..14 delivered twice
    snapshot = buffer.snapshot()
    assert len(snapshot) == 20
    assert snapshot[PICKUP_TIME].is_monotonic_increasing
    assert snapshot["PULocationID"].dtype == "int64"


def test_many_small_appends_are_merged_into_few_chunks():
    buffer = RideBuffer(max_age=timedelta(days=365), max_rows=10_000, chunk_rows=1_000)
    for first in range(0, 5_000, 50):
        buffer.append(rides(first, 50, every=timedelta(minutes=1)))
    assert buffer.stats().chunks == 5
    assert len(buffer.snapshot()) == 5_000


def test_empty_buffer_snapshot_has_the_rides_columns():
    snapshot = RideBuffer().snapshot()
    assert snapshot.empty
    assert {PICKUP_TIME, "PULocationID", "trip_distance", TARGET} <= set(snapshot.columns)


@pytest.mark.parametrize("kwargs", [{"max_rows": 0}, {"max_age": timedelta(0)}])
def test_bounds_must_be_positive(kwargs):
    with pytest.raises(ValueError):
        RideBuffer(**kwargs)
