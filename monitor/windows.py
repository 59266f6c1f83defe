"""Event-time windows: tumbling by duration, or by ride count assembled from closed time slices.

Every ride belongs to the window of its PICKUP time. Time is cut into slices that start at
multiples of the slice length since 1970-01-01 (naive TLC time), so slice and window bounds are
the same for every replay. A time window IS one slice. A count window takes the rides of closed
slices in (pickup time, ride id) order and cuts after every `rides`-th ride, so its content does
not depend on replay speed or on how the partitions interleave.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from datetime import datetime, timedelta

EPOCH = datetime(1970, 1, 1)
_DURATION = re.compile(r"^\s*(\d+)\s*([dhm])\s*$")
_UNIT_S = {"d": 86_400, "h": 3_600, "m": 60}


def parse_duration(text: str) -> timedelta:
    """Parse `1d`, `6h` or `30m` into a timedelta; raises ValueError on anything else."""
    match = _DURATION.match(text)
    if not match or int(match.group(1)) <= 0:
        raise ValueError(f"invalid duration {text!r}: use a positive number with d, h or m")
    return timedelta(seconds=int(match.group(1)) * _UNIT_S[match.group(2)])


def format_duration(span: timedelta) -> str:
    """The short form of a duration (`1d`, `6h`, `30m`) used in window ids."""
    seconds = int(span.total_seconds())
    for unit in ("d", "h", "m"):
        if seconds % _UNIT_S[unit] == 0:
            return f"{seconds // _UNIT_S[unit]}{unit}"
    return f"{seconds}s"


@dataclass(frozen=True)
class WindowSpec:
    """How rides are grouped: `slice_len` time slices, and `rides` per window for count windows."""

    slice_len: timedelta
    rides: int | None = None

    def __post_init__(self) -> None:
        if self.slice_len <= timedelta(0):
            raise ValueError("slice length must be positive")
        if self.rides is not None and self.rides <= 0:
            raise ValueError("rides per window must be positive")

    @property
    def label(self) -> str:
        """The prefix of this spec's window ids (`1d`, `6h`, `5000r`)."""
        return f"{self.rides}r" if self.rides else format_duration(self.slice_len)

    def slice_start(self, time: datetime) -> datetime:
        """Start of the slice that holds `time`."""
        step = self.slice_len
        return EPOCH + ((time - EPOCH) // step) * step

    def slice_end(self, time: datetime) -> datetime:
        """End (exclusive) of the slice that holds `time`."""
        return self.slice_start(time) + self.slice_len

    def time_window_id(self, start: datetime) -> str:
        """Deterministic id of the time window starting at `start`, e.g. `1d:2021-01-05T00:00`."""
        return f"{self.label}:{start:%Y-%m-%dT%H:%M}"

    def count_window_id(self, index: int) -> str:
        """Deterministic id of the `index`-th count window, e.g. `5000r:00000012`."""
        return f"{self.label}:{index:08d}"


def parse_count_window_index(window_id: str) -> int:
    """The index in a count window id (`5000r:00000012` → 12)."""
    return int(window_id.rsplit(":", 1)[1])
