"""The retrainer's memory: recent labelled rides, bounded by event time and by rows.

Pure (no Kafka, no MLflow): rides go in as small frames, a training snapshot comes out.

Bounds. A row is kept while its drop-off is within `max_age` of the NEWEST drop-off seen
(event time, never the wall clock, so a replay of 2021 at any speed keeps the same rides),
and at most `max_rows` rows are kept (the oldest arrivals go first). Only labelled rides
(1-60 min, the training rule) are stored: the others can neither train nor score a model.

Storage is columnar: a deque of chunks, each a dict of numpy arrays (ride key as a 64-bit
hash, pickup and drop-off as datetime64, zones as int16, distance and duration as float64),
about 40 bytes a ride, so the default 500,000 rows stay near 20 MB. Small appends are merged
into the last chunk until it holds `chunk_rows`, so the deque stays short and eviction is a
matter of dropping or slicing whole chunks.

A replayed ride (at-least-once delivery, or a restart that re-reads the topic) is stored
twice and removed by its ride key when a snapshot is taken.
"""

from __future__ import annotations

from collections import deque
from dataclasses import dataclass
from datetime import timedelta

import numpy as np
import pandas as pd

from ridestream.events import RideCompleted
from ridestream.features import (
    DROPOFF_TIME,
    PICKUP_TIME,
    RIDE_ID,
    TARGET,
    is_labelled,
    rides_frame,
)

RIDE_KEY = "ride_key"
COLUMNS = (
    RIDE_KEY,
    PICKUP_TIME,
    DROPOFF_TIME,
    "PULocationID",
    "DOLocationID",
    "trip_distance",
    TARGET,
)
_DTYPES = {
    RIDE_KEY: "uint64",
    PICKUP_TIME: "datetime64[us]",
    DROPOFF_TIME: "datetime64[us]",
    "PULocationID": "int16",
    "DOLocationID": "int16",
    "trip_distance": "float64",
    TARGET: "float64",
}
DEFAULT_MAX_AGE = timedelta(days=14)
DEFAULT_MAX_ROWS = 500_000
DEFAULT_CHUNK_ROWS = 16_384

Chunk = dict[str, np.ndarray]


def ride_keys(ride_ids: pd.Series | np.ndarray) -> np.ndarray:
    """64-bit hashes of ride ids (8 bytes a ride instead of a ~70-byte Python string)."""
    return pd.util.hash_array(np.asarray(ride_ids, dtype=object)).astype("uint64")


@dataclass(frozen=True)
class BufferStats:
    """What the buffer holds: rows, the drop-off range, and what it evicted so far."""

    rows: int
    chunks: int
    oldest_dropoff: pd.Timestamp | None
    newest_dropoff: pd.Timestamp | None
    evicted_by_time: int
    evicted_by_rows: int
    unlabelled_skipped: int
    nbytes: int


class RideBuffer:
    """Recent labelled rides, bounded by event time (`max_age`) and rows (`max_rows`)."""

    def __init__(
        self,
        max_age: timedelta = DEFAULT_MAX_AGE,
        max_rows: int = DEFAULT_MAX_ROWS,
        chunk_rows: int = DEFAULT_CHUNK_ROWS,
    ) -> None:
        if max_rows <= 0:
            raise ValueError("max_rows must be positive")
        if max_age <= timedelta(0):
            raise ValueError("max_age must be positive")
        self.max_age = max_age
        self.max_rows = max_rows
        self.chunk_rows = chunk_rows
        self._chunks: deque[Chunk] = deque()
        self._rows = 0
        self._newest: np.datetime64 | None = None
        self.evicted_by_time = 0
        self.evicted_by_rows = 0
        self.unlabelled_skipped = 0

    def __len__(self) -> int:
        return self._rows

    @property
    def newest_dropoff(self) -> pd.Timestamp | None:
        """The newest drop-off seen (labelled or not): the buffer's clock."""
        return None if self._newest is None else pd.Timestamp(self._newest)

    def append(self, rides: pd.DataFrame) -> None:
        """Add completed rides (`ride_id`, pickup and drop-off times, zones, distance,
        `duration_min`), then evict what falls outside the bounds."""
        if rides.empty:
            return
        dropoff = rides[DROPOFF_TIME].to_numpy(dtype="datetime64[us]")
        newest = dropoff.max()
        if self._newest is None or newest > self._newest:
            self._newest = newest
        keep = is_labelled(rides[TARGET])
        self.unlabelled_skipped += int((~keep).sum())
        if keep.any():
            chunk: Chunk = {
                RIDE_KEY: ride_keys(rides[RIDE_ID].to_numpy()[keep]),
                PICKUP_TIME: rides[PICKUP_TIME].to_numpy(dtype="datetime64[us]")[keep],
                DROPOFF_TIME: dropoff[keep],
                "PULocationID": rides["PULocationID"].to_numpy(dtype="int16")[keep],
                "DOLocationID": rides["DOLocationID"].to_numpy(dtype="int16")[keep],
                "trip_distance": rides["trip_distance"].to_numpy(dtype="float64")[keep],
                TARGET: rides[TARGET].to_numpy(dtype="float64")[keep],
            }
            self._add(chunk)
        self._evict()

    def _add(self, chunk: Chunk) -> None:
        rows = len(chunk[RIDE_KEY])
        last = self._chunks[-1] if self._chunks else None
        if last is not None and len(last[RIDE_KEY]) + rows <= self.chunk_rows:
            self._chunks[-1] = {name: np.concatenate([last[name], chunk[name]]) for name in COLUMNS}
        else:
            self._chunks.append(chunk)
        self._rows += rows

    def _evict(self) -> None:
        if self._newest is None:
            return
        cutoff = self._newest - np.timedelta64(self.max_age)
        kept: deque[Chunk] = deque()
        for chunk in self._chunks:
            dropoff = chunk[DROPOFF_TIME]
            if dropoff.min() >= cutoff:
                kept.append(chunk)
                continue
            mask = dropoff >= cutoff
            self.evicted_by_time += int((~mask).sum())
            if mask.any():
                kept.append({name: values[mask] for name, values in chunk.items()})
        self._chunks = kept
        self._rows = sum(len(chunk[RIDE_KEY]) for chunk in kept)
        # Rows bound: the oldest arrivals go first (arrival order follows event time closely:
        # the producer replays in event-time order).
        while self._rows > self.max_rows:
            excess = self._rows - self.max_rows
            first = self._chunks[0]
            size = len(first[RIDE_KEY])
            if size <= excess:
                self._chunks.popleft()
                dropped = size
            else:
                self._chunks[0] = {name: values[excess:] for name, values in first.items()}
                dropped = excess
            self._rows -= dropped
            self.evicted_by_rows += dropped

    def snapshot(self) -> pd.DataFrame:
        """A copy of the buffer as a rides frame, duplicates (same ride key) removed,
        sorted by pickup time (the training job owns it; the buffer keeps changing)."""
        if not self._chunks:
            return pd.DataFrame({name: np.array([], dtype=_DTYPES[name]) for name in COLUMNS})
        frame = pd.DataFrame(
            {name: np.concatenate([chunk[name] for chunk in self._chunks]) for name in COLUMNS}
        )
        frame = frame.drop_duplicates(RIDE_KEY, keep="last")
        frame = frame.sort_values(PICKUP_TIME, kind="stable").reset_index(drop=True)
        frame["PULocationID"] = frame["PULocationID"].astype("int64")
        frame["DOLocationID"] = frame["DOLocationID"].astype("int64")
        return frame

    def stats(self) -> BufferStats:
        """Row count, drop-off range, evictions and memory of the buffer."""
        oldest = newest = None
        if self._chunks:
            oldest = pd.Timestamp(min(chunk[DROPOFF_TIME].min() for chunk in self._chunks))
            newest = pd.Timestamp(max(chunk[DROPOFF_TIME].max() for chunk in self._chunks))
        return BufferStats(
            rows=self._rows,
            chunks=len(self._chunks),
            oldest_dropoff=oldest,
            newest_dropoff=newest,
            evicted_by_time=self.evicted_by_time,
            evicted_by_rows=self.evicted_by_rows,
            unlabelled_skipped=self.unlabelled_skipped,
            nbytes=sum(v.nbytes for chunk in self._chunks for v in chunk.values()),
        )


def completed_rides(events: list[RideCompleted]) -> pd.DataFrame:
    """A rides frame of completed rides with their drop-off time (the buffer's event time)."""
    frame = rides_frame(events)
    frame[DROPOFF_TIME] = pd.to_datetime(pd.Series([e.event_time for e in events], dtype=object))
    return frame
