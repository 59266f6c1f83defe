"""Replay logic: rows → events, skips by reason, event-time merge order, ids, pacing."""

from __future__ import annotations

from collections.abc import Iterator
from datetime import datetime
from pathlib import Path

import numpy as np
import pytest
from pydantic import ValidationError

from producer.replay import (
    COMPLETED,
    REQUESTED,
    Clock,
    Encoded,
    EventTimeMerger,
    Pacer,
    ReplayOptions,
    classify_rows,
    replay,
    rides_of,
)
from ridestream.events import (
    MAX_DURATION_MIN,
    MAX_PASSENGER_COUNT,
    MAX_TRIP_DISTANCE_MI,
    MAX_VENDOR_ID,
    RideCompleted,
    RideRequested,
    decode,
    encode,
)
from ridestream.trips import TripBatch, iter_trip_batches, month_path


class FakeClock(Clock):
    """A clock that only moves when the replay sleeps (or a test advances it)."""

    def __init__(self) -> None:
        self.t = 1_000.0
        self.slept = 0.0

    def now(self) -> float:
        return self.t

    def sleep(self, seconds: float) -> None:
        self.t += seconds
        self.slept += seconds


class Recorder:
    """A `send` that keeps what it was given, with the clock reading at send time."""

    def __init__(self, clock: Clock | None = None) -> None:
        self.clock = clock
        self.kinds: list[int] = []
        self.keys: list[bytes] = []
        self.values: list[bytes] = []
        self.sent_at: list[float] = []

    def __call__(self, encoded: Encoded, start: int, stop: int) -> None:
        self.kinds += encoded.kinds[start:stop]
        self.keys += encoded.keys[start:stop]
        self.values += encoded.values[start:stop]
        if self.clock is not None:
            self.sent_at += [self.clock.now()] * (stop - start)

    def events(self) -> list[RideRequested | RideCompleted]:
        return [
            decode(RideRequested if kind == REQUESTED else RideCompleted, value)
            for kind, value in zip(self.kinds, self.values, strict=True)
        ]


def batch(
    pickups: list[str | None],
    durations_s: list[float | None],
    *,
    source: str = "src",
    first_row: int = 0,
    pu: list[float] | None = None,
    distance: list[float] | None = None,
    vendor: list[float] | None = None,
    passengers: list[float] | None = None,
) -> TripBatch:
    n = len(pickups)
    pickup = np.array([p if p else "NaT" for p in pickups], dtype="datetime64[us]")
    dropoff = np.array(
        [
            (np.datetime64(p, "us") + np.timedelta64(int(d * 1e6), "us"))
            if p and d is not None
            else np.datetime64("NaT", "us")
            for p, d in zip(pickups, durations_s, strict=True)
        ],
        dtype="datetime64[us]",
    )
    return TripBatch(
        source=source,
        first_row=first_row,
        pickup=pickup,
        dropoff=dropoff,
        pu_location_id=np.array(pu or [41.0] * n),
        do_location_id=np.full(n, 42.0),
        trip_distance=np.array(distance or [1.5] * n),
        vendor_id=np.array(vendor or [2.0] * n),
        passenger_count=np.array(passengers or [1.0] * n),
    )


def real_batches(data_dir: Path, rows: int) -> Iterator[TripBatch]:
    left = rows
    for chunk in iter_trip_batches(month_path(data_dir, "2021-01"), batch_rows=4_096):
        yield chunk.head(left)
        left -= len(chunk)
        if left <= 0:
            return


def test_each_ride_becomes_a_request_at_pickup_and_a_completion_at_dropoff() -> None:
    send = Recorder()

    stats = replay(
        [batch(["2021-01-01T10:00:00"], [600.5], vendor=[float("nan")])], send, ReplayOptions()
    )

    requested, completed = send.events()
    assert requested == RideRequested(
        ride_id="src:0",
        event_time=datetime(2021, 1, 1, 10),
        pu_location_id=41,
        do_location_id=42,
        trip_distance=1.5,
        vendor_id=None,
        passenger_count=1,
    )
    assert completed == RideCompleted(
        ride_id="src:0",
        event_time=datetime(2021, 1, 1, 10, 10, 0, 500_000),
        pickup_time=datetime(2021, 1, 1, 10),
        duration_min=600.5 / 60,
        pu_location_id=41,
        do_location_id=42,
        trip_distance=1.5,
        vendor_id=None,
        passenger_count=1,
    )
    assert send.keys == [b"src:0", b"src:0"]
    assert (stats.rides, stats.requested, stats.completed) == (1, 1, 1)


def test_rows_that_cannot_form_an_event_are_skipped_and_counted_by_reason() -> None:
    rows = batch(
        [
            "2021-01-01T10:00:00",
            None,
            "2021-01-01T10:00:00",
            "2021-01-01T10:00:00",
            "2021-01-01T10:00:00",
            "2021-01-01T10:00:00",
            "2008-12-31T00:00:00",
            "2021-01-01T10:00:00",
            "2021-01-01T10:00:00",
        ],
        [60, 60, -5, 60, 60, 60, 60, 8 * 86_400, 120],
        pu=[41, 41, 41, 0, 266, 41, 41, 41, 41],
        distance=[1, 1, 1, 1, 1, 244_152.0, 1, 1, 1],
        passengers=[1, 1, 1, 1, 1, 1, 1, 1, 99],
    )

    mask, skipped = classify_rows(rows)

    assert mask.tolist() == [True] + [False] * 8
    assert skipped == {
        "missing_time": 1,
        "dropoff_before_pickup": 1,
        "bad_zone": 2,
        "bad_distance": 1,
        "time_out_of_range": 1,
        "duration_too_long": 1,
        "bad_passenger_count": 1,
    }


def test_the_skip_rules_are_the_event_models_rules(shared_data_dir: Path) -> None:
    """Every row passes exactly when pydantic accepts both of its events (real data)."""
    rows = next(iter_trip_batches(month_path(shared_data_dir, "2021-01"), batch_rows=20_000))
    mask, _ = classify_rows(rows)
    assert 0 < mask.sum() < len(rows)  # this slice holds rows of both kinds
    for i in range(len(rows)):
        pickup = rows.pickup[i].astype(datetime) if not np.isnat(rows.pickup[i]) else None
        dropoff = rows.dropoff[i].astype(datetime) if not np.isnat(rows.dropoff[i]) else None
        fields = {
            "ride_id": f"x:{i}",
            "pu_location_id": rows.pu_location_id[i],
            "do_location_id": rows.do_location_id[i],
            "trip_distance": rows.trip_distance[i],
            "vendor_id": None if np.isnan(rows.vendor_id[i]) else rows.vendor_id[i],
            "passenger_count": (
                None if np.isnan(rows.passenger_count[i]) else rows.passenger_count[i]
            ),
        }
        try:
            RideRequested(event_time=pickup, **fields)
            duration = (dropoff - pickup).total_seconds() / 60 if pickup and dropoff else None
            RideCompleted(event_time=dropoff, pickup_time=pickup, duration_min=duration, **fields)
            accepted = True
        except (ValidationError, TypeError):
            accepted = False
        assert accepted == mask[i], f"row {i}"


def test_events_leave_in_event_time_order_and_completion_never_precedes_request(
    shared_data_dir: Path,
) -> None:
    send = Recorder()

    stats = replay(real_batches(shared_data_dir, 12_000), send, ReplayOptions())

    events = send.events()
    times = [e.event_time for e in events]
    assert times == sorted(times)
    seen: set[str] = set()
    for event in events:
        if isinstance(event, RideRequested):
            seen.add(event.ride_id)
        else:
            assert event.ride_id in seen, f"{event.ride_id} completed before it was requested"
    assert len(seen) == stats.rides == stats.requested == stats.completed
    assert stats.rides + sum(stats.skipped.values()) == stats.rows_read == 12_000
    assert stats.late_rides == 0


def test_a_zero_minute_ride_is_requested_before_it_completes() -> None:
    send = Recorder()

    replay(
        [batch(["2021-01-01T10:00:00", "2021-01-01T09:00:00"], [0, 3_600])], send, ReplayOptions()
    )

    assert send.keys == [b"src:1", b"src:0", b"src:0", b"src:1"]
    assert send.kinds == [REQUESTED, REQUESTED, COMPLETED, COMPLETED]


def test_a_small_buffer_still_never_sends_a_completion_before_its_request() -> None:
    rng = np.random.default_rng(3)
    starts = np.datetime64("2021-01-01T00:00:00") + rng.integers(0, 86_400, 500).astype(
        "timedelta64[s]"
    )
    rows = batch([str(s) for s in starts], rng.integers(0, 7_200, 500).tolist())
    chunks = [rows.head(500)]  # one chunk, but the merger holds only 64 events
    merger = EventTimeMerger(capacity_events=64)
    order: list[tuple[int, int]] = []
    mask, _ = classify_rows(chunks[0])
    for start in range(0, 500, 50):
        part = np.zeros(500, dtype=bool)
        part[start : start + 50] = mask[start : start + 50]
        out = merger.push(rides_of(chunks[0], part, 0))
        if out is not None:
            order += list(zip(out.rides.row.tolist(), out.kind.tolist(), strict=True))
    out = merger.drain()
    assert out is not None
    order += list(zip(out.rides.row.tolist(), out.kind.tolist(), strict=True))

    assert len(order) == 1_000
    position = {event: i for i, event in enumerate(order)}
    assert all(position[(row, REQUESTED)] < position[(row, COMPLETED)] for row in range(500))
    assert merger.late_rides > 0  # this input is more out of order than 64 events can fix


def test_two_replays_of_the_same_file_give_the_same_ids_and_bytes(shared_data_dir: Path) -> None:
    first, second = Recorder(), Recorder()

    stats = replay(real_batches(shared_data_dir, 5_000), first, ReplayOptions())
    replay(real_batches(shared_data_dir, 5_000), second, ReplayOptions())

    assert first.keys == second.keys
    assert first.values == second.values
    expected = set()
    for rows in real_batches(shared_data_dir, 5_000):
        mask, _ = classify_rows(rows)
        expected |= {f"green_tripdata_2021-01:{row}".encode() for row in rows.rows[mask]}
    assert set(first.keys) == expected
    assert len(first.keys) == 2 * stats.rides


def test_limit_counts_rides_read_and_start_end_select_by_pickup() -> None:
    rows = batch(
        [
            "2021-01-01T10:00:00",
            "2021-01-01T11:00:00",
            "2021-01-01T12:00:00",
            None,
            "2021-01-01T13:00:00",
        ],
        [60] * 5,
    )
    send = Recorder()

    stats = replay(
        [rows],
        send,
        ReplayOptions(
            limit_rides=4, start=datetime(2021, 1, 1, 10, 30), end=datetime(2021, 1, 1, 12)
        ),
    )

    assert stats.rows_read == 4
    assert set(send.keys) == {b"src:1"}
    assert stats.outside_range == 2
    assert stats.skipped == {"missing_time": 1}


def test_pacing_at_speed_60_sends_each_event_at_its_scaled_time() -> None:
    # One ride a minute of event time for an hour: at speed 60, one request a second.
    pickups = [
        str(np.datetime64("2021-01-01T10:00:00") + np.timedelta64(60 * i, "s")) for i in range(60)
    ]
    clock = FakeClock()
    send = Recorder(clock)
    started = clock.now()

    stats = replay([batch(pickups, [30] * 60)], send, ReplayOptions(speed=60.0), clock=clock)

    events = send.events()
    for event, sent_at in zip(events, send.sent_at, strict=True):
        target_s = (event.event_time - datetime(2021, 1, 1, 10)).total_seconds() / 60
        assert sent_at - started == pytest.approx(target_s, abs=0.01)
    assert stats.wall_s == pytest.approx((59 * 60 + 30) / 60, abs=0.01)


def test_pacing_jumps_over_long_event_time_gaps() -> None:
    clock = FakeClock()
    send = Recorder(clock)

    stats = replay(
        [batch(["2009-01-01T00:00:00", "2021-01-01T10:00:00", "2021-01-01T10:01:00"], [0, 0, 0])],
        send,
        ReplayOptions(speed=60.0, max_gap_s=3_600),
        clock=clock,
    )

    assert stats.gaps_jumped == 1
    assert clock.slept == pytest.approx(1.0, abs=0.01)  # only the one minute at speed 60


def test_pacer_at_max_speed_never_waits() -> None:
    clock = FakeClock()
    pacer = Pacer(None, clock)

    assert pacer.due(np.array([0, 10**12], dtype=np.int64), 0) == 2
    assert clock.slept == 0


def test_events_are_byte_identical_to_what_pydantic_encodes(shared_data_dir: Path) -> None:
    send = Recorder()

    replay(real_batches(shared_data_dir, 10_000), send, ReplayOptions())

    for event, value in zip(send.events(), send.values, strict=True):
        assert encode(event) == value
    assert len(send.values) > 19_900


def test_events_written_from_templates_are_what_pydantic_encodes_at_every_bound() -> None:
    # No data files needed: nulls, fractions, microseconds and each bound of the models (the
    # replay's templates and skip rules are written apart from ridestream.events).
    send = Recorder()
    pickups = ["2021-01-01T00:00:00.000001", "2021-01-01T00:01:00", "2021-01-01T00:02:00"]
    stats = replay(
        [
            batch(
                pickups * 2,
                [60.5, 0.0, MAX_DURATION_MIN * 60] * 2,
                pu=[1.0, 265.0, 7.0, 1.0, 266.0, 7.0],
                distance=[0.0, 0.1, MAX_TRIP_DISTANCE_MI, 0.0, 0.1, MAX_TRIP_DISTANCE_MI + 1],
                vendor=[np.nan, 0.0, MAX_VENDOR_ID, MAX_VENDOR_ID + 1, 0.0, 0.0],
                passengers=[MAX_PASSENGER_COUNT, np.nan, 0.0, 0.0, 0.0, MAX_PASSENGER_COUNT + 1],
            )
        ],
        send,
        ReplayOptions(),
    )

    assert len(send.values) == 6  # the first three rides: one event each way
    for event, value in zip(send.events(), send.values, strict=True):
        assert encode(event) == value
    assert sum(stats.skipped.values()) == 3  # each bound + 1 is refused, as pydantic refuses it
    with pytest.raises(ValidationError):
        RideRequested.model_validate(
            {**send.events()[0].model_dump(), "vendor_id": MAX_VENDOR_ID + 1}
        )
