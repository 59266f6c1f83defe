"""Pure replay logic: trip rows → ride events, merged in event-time order, paced by a clock.

Each trip becomes two events: `RideRequested` at pickup and `RideCompleted` at drop-off. Rows
are replayed as they are; a row that cannot form an event (missing times, drop-off before
pickup, a value the event models refuse) is skipped and counted by reason.

Event-time order: TLC files are not sorted (green 2021-01 has rows 4 days out of order), so
events pass through a reorder buffer (`EventTimeMerger`) of a bounded number of events: when it
is full, the earliest events leave it in (event time, requested-before-completed, file order)
order. A whole green month fits in the default buffer, so it is replayed in exact event-time
order; a row that arrives after later events already left (possible only when a file is more
out of order than the buffer holds) is sent at once and counted as `late`. A ride's completion
never precedes its request: both enter the buffer together and sort request-first.

Events are built from whole column arrays and written as JSON with the field order and values
pydantic gives (`ridestream.events.encode`), without building a model per row; the unit tests
check that the bytes are identical to pydantic's and that the skip rules are the models' rules.

No Kafka, no environment here: `replay` takes a `send` function and a clock.
"""

from __future__ import annotations

import json
import logging
import threading
import time
from collections import Counter
from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass, field
from datetime import datetime

import numpy as np

from ridestream.events import (
    EARLIEST_EVENT_TIME,
    LATEST_EVENT_TIME,
    MAX_DURATION_MIN,
    MAX_PASSENGER_COUNT,
    MAX_TRIP_DISTANCE_MI,
    MAX_VENDOR_ID,
    MAX_ZONE_ID,
    MIN_ZONE_ID,
)
from ridestream.trips import TripBatch

log = logging.getLogger(__name__)

REQUESTED, COMPLETED = 0, 1  # event kinds; also the tie-break order at equal event times
US_PER_S = 1_000_000
# 300k events (150k rides, ~60 bytes an event, ~2.5x that while merging: ~45 MB) hold any green
# month (88k rows at most) in exact event-time order; yellow months are bigger, but only how far
# rows stray matters (late ones are counted).
DEFAULT_REORDER_EVENTS = 300_000
# In paced replays an event-time gap longer than this (stray 2009 rows before a 2021 month) is
# jumped over instead of slept through.
DEFAULT_MAX_GAP_S = 3_600.0

# Skip reasons, in the order they are checked (a row counts under its first reason).
SKIP_MISSING_TIME = "missing_time"
SKIP_TIME_OUT_OF_RANGE = "time_out_of_range"
SKIP_DROPOFF_BEFORE_PICKUP = "dropoff_before_pickup"
SKIP_DURATION_TOO_LONG = "duration_too_long"
SKIP_BAD_ZONE = "bad_zone"
SKIP_BAD_DISTANCE = "bad_distance"
SKIP_BAD_VENDOR = "bad_vendor_id"
SKIP_BAD_PASSENGERS = "bad_passenger_count"

_EARLIEST_US = int(np.datetime64(EARLIEST_EVENT_TIME, "us").astype(np.int64))
_LATEST_US = int(np.datetime64(LATEST_EVENT_TIME, "us").astype(np.int64))
_NAT = np.datetime64("NaT").astype("datetime64[us]").astype(np.int64)

# The JSON that `ridestream.events.encode` writes for each event, field for field in the models'
# order, filled with %-formatting (~10x faster than pydantic per event);
# tests/unit/producer/test_replay.py fails when a model and its template drift apart.
_REQUESTED_JSON = (
    '{"schema_version":1,"event_time":"%s","ride_id":"%s:%d","pu_location_id":%d,'
    '"do_location_id":%d,"trip_distance":%r,"vendor_id":%s,"passenger_count":%s}'
)
_COMPLETED_JSON = (
    '{"schema_version":1,"event_time":"%s","ride_id":"%s:%d","pickup_time":"%s",'
    '"duration_min":%r,"pu_location_id":%d,"do_location_id":%d,"trip_distance":%r,'
    '"vendor_id":%s,"passenger_count":%s}'
)


# ---------------------------------------------------------------------------------------------
# rows → rides


@dataclass
class Rides:
    """Columns of rides that can form valid events (times in µs since the epoch, naive TLC)."""

    pickup_us: np.ndarray
    dropoff_us: np.ndarray
    pu_location_id: np.ndarray
    do_location_id: np.ndarray
    trip_distance: np.ndarray
    vendor_id: np.ndarray  # float32, NaN = null
    passenger_count: np.ndarray  # float32, NaN = null
    source: np.ndarray  # int32 index into the replay's list of sources
    row: np.ndarray  # int64 file row

    def __len__(self) -> int:
        return len(self.pickup_us)


def _in_range_or_null(values: np.ndarray, low: float, high: float) -> np.ndarray:
    integral = np.isnan(values) | (values == np.floor(values))
    return np.isnan(values) | ((values >= low) & (values <= high) & integral)


def _is_zone(values: np.ndarray) -> np.ndarray:
    with np.errstate(invalid="ignore"):
        return (values >= MIN_ZONE_ID) & (values <= MAX_ZONE_ID) & (values == np.floor(values))


def classify_rows(batch: TripBatch) -> tuple[np.ndarray, Counter[str]]:
    """Which rows can form events (a bool mask), and why the others cannot (counts by reason).

    The rules are the event models' own (`ridestream.events`): a row passes here exactly when
    pydantic accepts both its events.
    """
    pickup = batch.pickup.astype(np.int64)
    dropoff = batch.dropoff.astype(np.int64)
    with np.errstate(invalid="ignore"):
        checks = [
            (SKIP_MISSING_TIME, (pickup != _NAT) & (dropoff != _NAT)),
            (
                SKIP_TIME_OUT_OF_RANGE,
                (pickup >= _EARLIEST_US)
                & (pickup < _LATEST_US)
                & (dropoff >= _EARLIEST_US)
                & (dropoff < _LATEST_US),
            ),
            (SKIP_DROPOFF_BEFORE_PICKUP, dropoff >= pickup),
            (
                SKIP_DURATION_TOO_LONG,
                (dropoff - pickup) / US_PER_S / 60.0 <= MAX_DURATION_MIN,
            ),
            (SKIP_BAD_ZONE, _is_zone(batch.pu_location_id) & _is_zone(batch.do_location_id)),
            (
                SKIP_BAD_DISTANCE,
                (batch.trip_distance >= 0) & (batch.trip_distance <= MAX_TRIP_DISTANCE_MI),
            ),
            (SKIP_BAD_VENDOR, _in_range_or_null(batch.vendor_id, 0, MAX_VENDOR_ID)),
            (SKIP_BAD_PASSENGERS, _in_range_or_null(batch.passenger_count, 0, MAX_PASSENGER_COUNT)),
        ]
    ok = np.ones(len(batch), dtype=bool)
    skipped: Counter[str] = Counter()
    for reason, passes in checks:
        failing = ok & ~passes
        count = int(failing.sum())
        if count:
            skipped[reason] += count
            ok &= passes
    return ok, skipped


def rides_of(batch: TripBatch, mask: np.ndarray, source_index: int) -> Rides:
    """The rides of the rows selected by `mask`."""
    return Rides(
        pickup_us=batch.pickup.astype(np.int64)[mask],
        dropoff_us=batch.dropoff.astype(np.int64)[mask],
        # Compact dtypes (zones 1-265, vendor 0-100, passengers 0-20 and NaN fit exactly): the
        # reorder buffer holds up to a million of these.
        pu_location_id=batch.pu_location_id[mask].astype(np.int16),
        do_location_id=batch.do_location_id[mask].astype(np.int16),
        trip_distance=batch.trip_distance[mask],
        vendor_id=batch.vendor_id[mask].astype(np.float32),
        passenger_count=batch.passenger_count[mask].astype(np.float32),
        source=np.full(int(mask.sum()), source_index, dtype=np.int32),
        row=batch.rows[mask],
    )


# ---------------------------------------------------------------------------------------------
# rides → events in event-time order


@dataclass
class Events:
    """Ride events as columns, in the order they are to be sent."""

    time_us: np.ndarray
    kind: np.ndarray  # REQUESTED or COMPLETED
    rides: Rides

    def __len__(self) -> int:
        return len(self.time_us)

    @classmethod
    def of(cls, rides: Rides) -> Events:
        """Both events of every ride (unsorted: requests first, then completions)."""
        doubled = Rides(**{name: np.concatenate([v, v]) for name, v in vars(rides).items()})
        kind = np.repeat(np.array([REQUESTED, COMPLETED], dtype=np.int8), len(rides))
        return cls(np.concatenate([rides.pickup_us, rides.dropoff_us]), kind, doubled)

    def take(self, index: np.ndarray | slice) -> Events:
        """The events at `index` (an index array or a slice)."""
        return Events(
            self.time_us[index],
            self.kind[index],
            Rides(**{name: v[index] for name, v in vars(self.rides).items()}),
        )

    @classmethod
    def merge(cls, first: Events, second: Events, order: np.ndarray) -> Events:
        """`first` then `second`, reordered by `order`, one column at a time (less memory)."""

        def column(a: np.ndarray, b: np.ndarray) -> np.ndarray:
            return np.concatenate([a, b])[order]

        rides = Rides(
            **{
                name: column(vars(first.rides)[name], vars(second.rides)[name])
                for name in vars(first.rides)
            }
        )
        return cls(column(first.time_us, second.time_us), column(first.kind, second.kind), rides)


def _sort_key(events: Events) -> np.ndarray:
    # Event time, then requested before completed (a zero-minute ride keeps its order).
    return events.time_us * 2 + events.kind


class EventTimeMerger:
    """A bounded reorder buffer: rides go in, events come out in event-time order.

    `push` returns the events that must leave because the buffer is over `capacity_events`
    (the earliest ones); `drain` returns the rest at the end of the input.
    """

    def __init__(self, capacity_events: int = DEFAULT_REORDER_EVENTS) -> None:
        self.capacity_events = capacity_events
        self._pending: Events | None = None
        self._last_sent_key: int | None = None
        self.late_rides = 0

    def __len__(self) -> int:
        return 0 if self._pending is None else len(self._pending)

    def push(self, rides: Rides) -> Events | None:
        """Add rides; return the events that have to leave the buffer now (or None)."""
        if len(rides) == 0:
            return None
        new = Events.of(rides)
        if self._last_sent_key is not None:
            late = _sort_key(new)[: len(rides)] < self._last_sent_key
            self.late_rides += int(late.sum())
        pending, self._pending = self._pending, None
        if pending is None:
            merged = new.take(np.argsort(_sort_key(new), kind="stable"))
        else:
            # Stable: equal keys keep file order. Timsort finds the sorted pending run fast.
            order = np.argsort(np.concatenate([_sort_key(pending), _sort_key(new)]), kind="stable")
            merged = Events.merge(pending, new, order)
            del pending
        overflow = len(merged) - self.capacity_events
        if overflow <= 0:
            self._pending = merged
            return None
        self._pending = merged.take(slice(overflow, None))
        return self._release(merged.take(slice(0, overflow)))

    def drain(self) -> Events | None:
        """Every event still in the buffer, in order."""
        pending, self._pending = self._pending, None
        return None if pending is None else self._release(pending)

    def _release(self, events: Events) -> Events:
        if len(events):
            self._last_sent_key = int(_sort_key(events)[-1])
        return events


# ---------------------------------------------------------------------------------------------
# events → JSON


def _iso_times(time_us: np.ndarray) -> list[str]:
    """ISO strings as pydantic writes naive datetimes: seconds, or 6 digits when µs ≠ 0."""
    values = time_us.astype("datetime64[us]")
    text = np.datetime_as_string(values, unit="s")
    fractional = (time_us % US_PER_S) != 0
    if fractional.any():
        text = text.astype(object)
        text[fractional] = np.datetime_as_string(values[fractional], unit="us")
    return text.tolist()


def _optional_ints(values: np.ndarray) -> list[str]:
    text = np.full(len(values), "null", dtype=object)
    present = ~np.isnan(values)
    text[present] = values[present].astype(np.int64).astype(str)
    return text.tolist()


@dataclass
class Encoded:
    """Events ready to produce: kind (REQUESTED/COMPLETED), key and JSON value, in send order."""

    kinds: list[int]
    keys: list[bytes]
    values: list[bytes]
    time_us: np.ndarray

    def __len__(self) -> int:
        return len(self.keys)


def encode_events(events: Events, sources: list[str]) -> Encoded:
    """The message key (the ride id) and JSON value of every event, from whole columns."""
    rides = events.rides
    names = [json.dumps(s)[1:-1] for s in sources]  # escaped once per source, not per row
    source_names = [names[i] for i in rides.source.tolist()]
    rows = rides.row.tolist()
    keys = [f"{s}:{r}".encode() for s, r in zip(source_names, rows, strict=True)]
    kinds = events.kind.tolist()
    values: list[bytes] = [b""] * len(events)
    requested = np.flatnonzero(events.kind == REQUESTED)
    completed = np.flatnonzero(events.kind == COMPLETED)

    def pick(values_list: list, index: np.ndarray) -> list:
        return [values_list[i] for i in index.tolist()]

    pu = rides.pu_location_id.tolist()
    do = rides.do_location_id.tolist()
    distance = rides.trip_distance.tolist()
    vendor = _optional_ints(rides.vendor_id)
    passengers = _optional_ints(rides.passenger_count)
    if len(requested):
        times = _iso_times(events.time_us[requested])
        for i, t in zip(requested.tolist(), times, strict=True):
            values[i] = (
                _REQUESTED_JSON
                % (t, source_names[i], rows[i], pu[i], do[i], distance[i], vendor[i], passengers[i])
            ).encode()
    if len(completed):
        times = _iso_times(events.time_us[completed])
        pickups = _iso_times(rides.pickup_us[completed])
        # As pandas' total_seconds() / 60 computes it in training, so the labels agree.
        duration = (rides.dropoff_us[completed] - rides.pickup_us[completed]) / US_PER_S / 60.0
        for i, t, p, d in zip(completed.tolist(), times, pickups, duration.tolist(), strict=True):
            values[i] = (
                _COMPLETED_JSON
                % (
                    t,
                    source_names[i],
                    rows[i],
                    p,
                    d,
                    pu[i],
                    do[i],
                    distance[i],
                    vendor[i],
                    passengers[i],
                )
            ).encode()
    return Encoded(kinds, keys, values, events.time_us)


# ---------------------------------------------------------------------------------------------
# pacing


class Clock:
    """Wall clock and sleep; tests pass a fake one."""

    def now(self) -> float:
        """Seconds on a monotonic clock."""
        return time.monotonic()

    def sleep(self, seconds: float) -> None:
        """Wait `seconds`."""
        time.sleep(seconds)


class Pacer:
    """Maps event time to wall time: event time runs `speed` times faster than the clock.

    `speed=None` is as fast as possible. The first event anchors the mapping; an event-time gap
    longer than `max_gap_s` re-anchors it (the gap is jumped, not slept through).
    """

    def __init__(
        self, speed: float | None, clock: Clock, max_gap_s: float = DEFAULT_MAX_GAP_S
    ) -> None:
        if speed is not None and speed <= 0:
            raise ValueError("speed must be positive")
        self.speed = speed
        self.clock = clock
        self.max_gap_us = max_gap_s * US_PER_S
        self._anchor: tuple[float, int] | None = None  # (wall s, event µs)
        self._last_us: int | None = None
        self.gaps_jumped = 0

    def due(self, time_us: np.ndarray, start: int, max_wait_s: float = 0.1) -> int:
        """How many events from `start` are due now; waits (at most `max_wait_s`) if none is.

        Returns at least 0; the caller sends the due events and calls again.
        """
        if self.speed is None or start >= len(time_us):
            return len(time_us) - start
        first_us = int(time_us[start])
        now = self.clock.now()
        if self._anchor is None:
            self._anchor = (now, first_us)
        elif self._last_us is not None and first_us - self._last_us > self.max_gap_us:
            self.gaps_jumped += 1
            log.info("event-time gap of %.0f s jumped", (first_us - self._last_us) / US_PER_S)
            self._anchor = (now, first_us)
        wall0, event0 = self._anchor
        due_us = event0 + (now - wall0) * self.speed * US_PER_S
        count = int(np.searchsorted(time_us[start:], due_us, side="right"))
        if count == 0:
            wait_s = (first_us - due_us) / US_PER_S / self.speed
            self.clock.sleep(min(wait_s, max_wait_s))
            return 0
        self._last_us = int(time_us[start + count - 1])
        return count

    def event_time_now(self) -> float | None:
        """The event time (µs) the clock stands at now, or None before the first event."""
        if self._anchor is None or self.speed is None:
            return None
        wall0, event0 = self._anchor
        return event0 + (self.clock.now() - wall0) * self.speed * US_PER_S


# ---------------------------------------------------------------------------------------------
# the replay


@dataclass
class ReplayOptions:
    """What to replay: speed (None = max), ride limit, event-time bounds on pickup."""

    speed: float | None = None
    limit_rides: int | None = None
    start: datetime | None = None
    end: datetime | None = None
    reorder_events: int = DEFAULT_REORDER_EVENTS
    max_gap_s: float = DEFAULT_MAX_GAP_S
    progress_interval_s: float = 1.0
    # Events are sent in slices this long, so progress and stop are checked often.
    send_slice: int = 4_096


@dataclass
class ReplayStats:
    """What a replay did."""

    rows_read: int = 0
    rides: int = 0
    requested: int = 0
    completed: int = 0
    skipped: Counter[str] = field(default_factory=Counter)
    outside_range: int = 0
    late_rides: int = 0
    gaps_jumped: int = 0
    first_event_us: int | None = None
    last_event_us: int | None = None
    started_s: float = 0.0
    wall_s: float = 0.0
    stopped: bool = False

    @property
    def events_sent(self) -> int:
        return self.requested + self.completed

    @property
    def events_per_s(self) -> float:
        return self.events_sent / self.wall_s if self.wall_s > 0 else 0.0


Send = Callable[[Encoded, int, int], None]  # send events [start, stop) of an Encoded


def _bound_us(value: datetime | None) -> int | None:
    return None if value is None else int(np.datetime64(value, "us").astype(np.int64))


def _limited(batches: Iterable[TripBatch], limit: int | None) -> Iterator[TripBatch]:
    left = limit
    for batch in batches:
        if left is not None and left <= 0:
            return
        if left is not None and len(batch) > left:
            batch = batch.head(left)
        if left is not None:
            left -= len(batch)
        yield batch


def replay(
    batches: Iterable[TripBatch],
    send: Send,
    options: ReplayOptions,
    *,
    clock: Clock | None = None,
    stop: threading.Event | None = None,
    on_progress: Callable[[ReplayStats, Pacer], None] | None = None,
) -> ReplayStats:
    """Turn trip batches into ride events in event-time order and hand them to `send`, paced.

    `--limit` counts rides read from the files (skipped ones included); `start`/`end` select
    rides by pickup time (`[start, end)`), the others are counted as outside the range.
    """
    clock = clock or Clock()
    stop = stop or threading.Event()
    pacer = Pacer(options.speed, clock, options.max_gap_s)
    merger = EventTimeMerger(options.reorder_events)
    stats = ReplayStats(started_s=clock.now())
    start_us, end_us = _bound_us(options.start), _bound_us(options.end)
    sources: list[str] = []
    next_progress = stats.started_s + options.progress_interval_s

    def emit(events: Events | None) -> None:
        nonlocal next_progress
        if events is None or len(events) == 0:
            return
        for begin in range(0, len(events), options.send_slice):
            part = events.take(slice(begin, begin + options.send_slice))
            encoded = encode_events(part, sources)
            sent = 0
            while sent < len(encoded):
                if stop.is_set():
                    return
                count = pacer.due(encoded.time_us, sent)
                if count:
                    send(encoded, sent, sent + count)
                    done = part.kind[sent : sent + count]
                    completions = int(done.sum())
                    stats.completed += completions
                    stats.requested += count - completions
                    stats.first_event_us = (
                        int(encoded.time_us[sent])
                        if stats.first_event_us is None
                        else stats.first_event_us
                    )
                    stats.last_event_us = int(encoded.time_us[sent + count - 1])
                    sent += count
                now = clock.now()
                if on_progress is not None and now >= next_progress:
                    stats.wall_s = now - stats.started_s
                    on_progress(stats, pacer)
                    next_progress = now + options.progress_interval_s

    for batch in _limited(batches, options.limit_rides):
        if stop.is_set():
            break
        if not sources or sources[-1] != batch.source:
            sources.append(batch.source)
        stats.rows_read += len(batch)
        mask, skipped = classify_rows(batch)
        stats.skipped.update(skipped)
        if start_us is not None or end_us is not None:
            pickup = batch.pickup.astype(np.int64)
            inside = np.ones(len(batch), dtype=bool)
            if start_us is not None:
                inside &= pickup >= start_us
            if end_us is not None:
                inside &= pickup < end_us
            stats.outside_range += int((mask & ~inside).sum())
            mask &= inside
        rides = rides_of(batch, mask, len(sources) - 1)
        stats.rides += len(rides)
        emit(merger.push(rides))
    if not stop.is_set():
        emit(merger.drain())
    stats.stopped = stop.is_set()
    stats.late_rides = merger.late_rides
    stats.gaps_jumped = pacer.gaps_jumped
    stats.wall_s = clock.now() - stats.started_s
    return stats


def format_event_time(time_us: float | None) -> str:
    """An event time (µs since the epoch, naive TLC) as `YYYY-MM-DD HH:MM:SS`, or `-`."""
    if time_us is None:
        return "-"
    return str(np.datetime64(int(time_us), "us").astype("datetime64[s]")).replace("T", " ")
