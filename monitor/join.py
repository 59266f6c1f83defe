"""The join of predictions and completions by ride id, in bounded event-time state.

Rides wait in the slice of their pickup time until the watermark passes the slice end; then
the slice closes and every ride in it becomes an item of a window (see `monitor.windows`), with
or without its label. What did not meet its other half is counted as expired, never lost.

Watermark: the largest event time seen PER PARTITION, minimum over the partitions that are not
idle, minus the allowed lateness. Taking the minimum over partitions makes the windows
independent of how a consumer interleaves partitions when it reads a backlog (one fetch of one
partition can span days of event time). A partition read to its end still holds the watermark
back: its producer may only be slow or restarting (a predictor killed and restarted while the
completions go on); only one that stayed at its end without a new record for a wall-clock
while (`IdlePartitions`, Flink's "idleness") stops holding it, so the end of a stream still
closes the last windows.

Late events: a completion whose drop-off is already `lateness` past the end of its pickup
slice is late by its own timestamps (so the same events are late in every replay); an event
whose slice closed before it arrived (disorder beyond the lateness) is late too. A late event
is counted in the window that holds its own event time (or the first open one).

Restart safety: every record is held by the slice (or pending count window) that counts it;
`lowest_held` gives, per partition, the lowest offset still held, so only offsets below it are
committed. After a restart the replayed records rebuild the state; records that belong to
windows already published (up to `frontier`) are dropped, so nothing is counted twice.
"""

from __future__ import annotations

import logging
from collections.abc import Hashable, Iterable, Mapping
from dataclasses import dataclass, field
from datetime import datetime, timedelta

from monitor.windows import WindowSpec
from ridestream.events import DurationPredicted, RideCompleted

log = logging.getLogger(__name__)

Partition = Hashable  # (topic, partition): kafka's TopicPartition is such a tuple
Held = tuple[Partition, int]
# Order of items inside a window: (time, kind, ride id); kind 0 = a ride, 1 = a late event.
ItemKey = tuple[datetime, int, str]
RIDE, LATE = 0, 1


@dataclass(slots=True)
class Ride:
    """Join state of one ride: its prediction and its completion, as they arrive."""

    ride_id: str
    pickup_time: datetime
    predicted_duration_min: float | None = None
    model_version: str | None = None
    trip_distance: float | None = None
    pu_location_id: str | None = None
    do_location_id: str | None = None
    duration_min: float | None = None
    held: list[Held] = field(default_factory=list)  # (partition, offset) of its records

    @property
    def predicted(self) -> bool:
        return self.predicted_duration_min is not None

    @property
    def completed(self) -> bool:
        return self.duration_min is not None


@dataclass(frozen=True, slots=True)
class Item:
    """One entry of a closed slice: a ride (joined or not) or a late event."""

    key: ItemKey
    ride: Ride | None
    held: tuple[Held, ...]

    @property
    def is_ride(self) -> bool:
        """True for a ride with a prediction (it counts towards the window's rides)."""
        return self.ride is not None and self.ride.predicted

    @property
    def expired(self) -> bool:
        """True for a ride that closed with only one of its prediction and completion."""
        return self.ride is not None and not (self.ride.predicted and self.ride.completed)

    @property
    def late(self) -> bool:
        return self.ride is None


@dataclass(frozen=True)
class ClosedWindow:
    """A window whose items are final: what the drift and quality step works on."""

    window_id: str
    start: datetime
    end: datetime
    items: tuple[Item, ...]
    # The key of the last item: where a restarted monitor resumes (count windows).
    last_key: ItemKey | None


@dataclass
class _Slice:
    start: datetime
    rides: dict[str, Ride] = field(default_factory=dict)
    late: list[Item] = field(default_factory=list)
    lowest: dict[Partition, int] = field(default_factory=dict)

    def hold(self, partition: Partition, offset: int) -> None:
        current = self.lowest.get(partition)
        if current is None or offset < current:
            self.lowest[partition] = offset

    def items(self) -> list[Item]:
        items = [
            Item((ride.pickup_time, RIDE, ride_id), ride, tuple(ride.held))
            for ride_id, ride in self.rides.items()
        ]
        items.extend(self.late)
        items.sort(key=lambda item: item.key)
        return items


@dataclass(frozen=True)
class Frontier:
    """What a restarted monitor already published: windows up to here are final."""

    # Time windows: end of the last published window. Count windows: key of its last item.
    end: datetime | None = None
    last_key: ItemKey | None = None
    next_index: int = 0


class WindowedJoin:
    """Joins ride events into slices, closes them by watermark and assembles windows."""

    def __init__(
        self, spec: WindowSpec, lateness: timedelta, frontier: Frontier | None = None
    ) -> None:
        self.spec = spec
        self.lateness = lateness
        self.frontier = frontier or Frontier()
        self.partition_max: dict[Partition, datetime] = {}
        self.slices: dict[datetime, _Slice] = {}
        self.pending: list[Item] = []  # count windows: items of closed slices not yet published
        self._pending_lowest: dict[Partition, int] = {}
        self._scanned = 0  # pending items already counted, and the rides among them
        self._scanned_rides = 0
        self._slice_cache = (datetime.max, datetime.min)  # (start, end) of the last slice used
        self.next_index = self.frontier.next_index
        self.closed_through: datetime | None = None
        if self.frontier.end is not None:
            self.closed_through = self.frontier.end
        elif self.frontier.last_key is not None:
            # The slice of the last published ride may hold later rides: it opens again.
            self.closed_through = spec.slice_start(self.frontier.last_key[0])
        self._resuming = self.frontier.end is not None or self.frontier.last_key is not None
        self.ignored = 0  # replayed records of published windows
        self.late_total = 0

    # -- ingest -----------------------------------------------------------------------

    def add(
        self, partition: Partition, offset: int, event: DurationPredicted | RideCompleted
    ) -> None:
        """Take one ride event into the state (or count it late, or drop a replayed one)."""
        # The hot path of the monitor: written for speed (one pass, few calls).
        event_time = event.event_time
        predicted = isinstance(event, DurationPredicted)
        pickup = event_time if predicted else event.pickup_time  # type: ignore[union-attr]
        previous = self.partition_max.get(partition)
        if previous is None or event_time > previous:
            self.partition_max[partition] = event_time
        slice_start, slice_end = self._slice_cache
        if not slice_start <= pickup < slice_end:
            slice_start, slice_end = self._slice_of(pickup)
        if not predicted and event_time - self.lateness >= slice_end:
            self._add_late(partition, offset, event, pickup)  # late by its own timestamps
            return
        if self._resuming and self._published((pickup, RIDE, event.ride_id)):
            self.ignored += 1  # replayed after a restart: its window is already published
            return
        if self.closed_through is not None and slice_end <= self.closed_through:
            self._add_late(partition, offset, event, pickup)  # disorder beyond the lateness
            return
        slice_ = self.slices.get(slice_start)
        if slice_ is None:
            slice_ = self.slices[slice_start] = _Slice(slice_start)
        ride_id = event.ride_id
        ride = slice_.rides.get(ride_id)
        if ride is None:
            ride = slice_.rides[ride_id] = Ride(ride_id, pickup)
        ride.held.append((partition, offset))
        # Offsets of a partition only grow, so the first one a slice holds is its lowest.
        slice_.lowest.setdefault(partition, offset)
        if predicted:
            if ride.predicted_duration_min is None:  # a duplicate keeps the first
                features = event.features  # type: ignore[union-attr]
                ride.predicted_duration_min = event.predicted_duration_min  # type: ignore[union-attr]
                ride.model_version = event.model_version  # type: ignore[union-attr]
                ride.trip_distance = float(features["trip_distance"])
                ride.pu_location_id = str(features["PULocationID"])
                ride.do_location_id = str(features["DOLocationID"])
        elif ride.duration_min is None:
            ride.duration_min = event.duration_min  # type: ignore[union-attr]

    def _add_late(
        self,
        partition: Partition,
        offset: int,
        event: DurationPredicted | RideCompleted,
        pickup: datetime,
    ) -> None:
        time = event.event_time
        if self._published((time, LATE, event.ride_id)):  # replayed after a restart
            self.ignored += 1
            return
        if self.closed_through is not None and time < self.closed_through:
            time = self.closed_through  # its own slice closed too: the first open one
        key = (time, LATE, event.ride_id)
        self.late_total += 1
        log.debug(
            "late %s %s (pickup %s, event time %s) counted in the window of %s",
            type(event).__name__,
            event.ride_id,
            pickup,
            event.event_time,
            time,
        )
        slice_start = self.spec.slice_start(time)
        slice_ = self.slices.get(slice_start)
        if slice_ is None:
            slice_ = self.slices[slice_start] = _Slice(slice_start)
        slice_.late.append(Item(key, None, ((partition, offset),)))
        slice_.hold(partition, offset)

    def _slice_of(self, time: datetime) -> tuple[datetime, datetime]:
        # Events come roughly in time order: the slice of the previous one usually fits.
        start, end = self._slice_cache
        if start <= time < end:
            return start, end
        start = self.spec.slice_start(time)
        self._slice_cache = (start, start + self.spec.slice_len)
        return self._slice_cache

    def _published(self, key: ItemKey) -> bool:
        if self.frontier.end is not None:
            return key[0] < self.frontier.end
        if self.frontier.last_key is not None:
            return key <= self.frontier.last_key
        return False

    # -- watermark and closing -----------------------------------------------------------

    def watermark(
        self,
        assigned: Iterable[Partition] | None = None,
        idle: Iterable[Partition] = (),
    ) -> datetime | None:
        """Event time up to which the windows are complete, or None while a partition is unseen.

        `assigned`: the ride partitions being read (default: those seen so far); `idle`: those
        read to their end with no new record for a while (they hold nothing back; when all
        are idle, the largest event time seen closes what it can).
        """
        partitions = set(self.partition_max) if assigned is None else set(assigned)
        holding = partitions - set(idle)
        if holding:
            if any(p not in self.partition_max for p in holding):
                return None
            low = min(self.partition_max[p] for p in holding)
        elif self.partition_max:
            low = max(self.partition_max.values())
        else:
            return None
        return low - self.lateness

    def close(self, watermark: datetime | None) -> list[ClosedWindow]:
        """Close every slice whose end the watermark has passed; return the finished windows."""
        if watermark is None:
            return []
        boundary = self.spec.slice_start(watermark)  # slices ending at or before it close
        if self.closed_through is not None and boundary <= self.closed_through:
            return []
        self.closed_through = boundary
        windows: list[ClosedWindow] = []
        for start in sorted(s for s in self.slices if s + self.spec.slice_len <= boundary):
            items = self.slices.pop(start).items()
            if self.spec.rides is None:
                if items:
                    end = start + self.spec.slice_len
                    windows.append(
                        ClosedWindow(
                            self.spec.time_window_id(start), start, end, tuple(items), None
                        )
                    )
            else:
                self.pending.extend(items)
                cut = self._cut_count_windows()
                windows.extend(cut)
                if cut:  # recount what is left; else only add the new items
                    self._pending_lowest = _lowest(h for item in self.pending for h in item.held)
                else:
                    self._pending_lowest = _lowest(
                        [*self._pending_lowest.items(), *(h for i in items for h in i.held)]
                    )
        return windows

    def _cut_count_windows(self) -> list[ClosedWindow]:
        rides_per_window = self.spec.rides
        assert rides_per_window is not None
        windows = []
        pending = self.pending
        rides = self._scanned_rides
        cut_from = 0
        position = self._scanned
        while position < len(pending):
            item = pending[position]
            position += 1
            if item.ride is None or item.ride.predicted_duration_min is None:
                continue
            rides += 1
            if rides == rides_per_window:
                items = tuple(pending[cut_from:position])
                windows.append(
                    ClosedWindow(
                        self.spec.count_window_id(self.next_index),
                        items[0].key[0],
                        item.key[0],
                        items,
                        item.key,
                    )
                )
                self.next_index += 1
                cut_from, rides = position, 0
        if cut_from:
            del pending[:cut_from]
        self._scanned, self._scanned_rides = position - cut_from, rides
        return windows

    # -- offsets -----------------------------------------------------------------------

    def lowest_held(self) -> dict[Partition, int]:
        """Per partition, the lowest offset still held by open state (not safe to commit)."""
        lowest: dict[Partition, int] = {}
        for slice_ in self.slices.values():
            for partition, offset in slice_.lowest.items():
                if partition not in lowest or offset < lowest[partition]:
                    lowest[partition] = offset
        for partition, offset in self._pending_lowest.items():
            if partition not in lowest or offset < lowest[partition]:
                lowest[partition] = offset
        return lowest

    def commit_gate(self, next_offsets: dict[Partition, int]) -> dict[Partition, int]:
        """The offsets safe to commit: never past a record still held in open state."""
        lowest = self.lowest_held()
        return {
            partition: min(offset, lowest.get(partition, offset))
            for partition, offset in next_offsets.items()
        }

    @property
    def open_rides(self) -> int:
        """Rides and late events held in open slices and pending count windows."""
        return sum(len(s.rides) + len(s.late) for s in self.slices.values()) + len(self.pending)


class IdlePartitions:
    """Which partitions are idle: read to their end, with no new record for `idle_s` seconds.

    The caller samples each partition's position (the next offset to read) and whether it is
    read to its end, with the wall-clock time; a partition whose position has not moved for
    `idle_s` while it was at its end is idle until its position moves again.
    """

    def __init__(self, idle_s: float) -> None:
        self.idle_s = idle_s
        self._moved_at_s: dict[Partition, float] = {}
        self._position: dict[Partition, int] = {}

    def update(
        self, positions: Mapping[Partition, int], at_end: Iterable[Partition], now_s: float
    ) -> list[Partition]:
        """Record the sampled `positions`; return the partitions of `at_end` that are idle."""
        for partition, position in positions.items():
            if self._position.get(partition) != position:
                self._position[partition] = position
                self._moved_at_s[partition] = now_s
        return [
            p
            for p in at_end
            if p in self._moved_at_s and now_s - self._moved_at_s[p] >= self.idle_s
        ]


def _lowest(held: Iterable[Held]) -> dict[Partition, int]:
    lowest: dict[Partition, int] = {}
    for partition, offset in held:
        if partition not in lowest or offset < lowest[partition]:
            lowest[partition] = offset
    return lowest
