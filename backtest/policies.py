"""Retraining policies: small objects that answer two questions at the end of each window.

"On this window's result, retrain?" (`wants_retraining`) and "which rides train it, and does a
gate decide?" (`buffer_days`, `gated`). The engine (`backtest.engine`) does the rest with the
services' own code. Adding a policy is adding an object here.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime, timedelta

from ridestream.events import DriftDetected

# The schedules train on the last 14 days, whatever the loop's own buffer becomes.
SCHEDULE_BUFFER_DAYS = 14.0


@dataclass(frozen=True)
class Policy:
    """When to retrain, on which rides, and whether the retrainer's gate decides."""

    name: str
    # None: the loop's own buffer (RetrainerOptions.buffer_days); else days of rides.
    buffer_days: float | None = None
    # True: the retrainer's split and promotion rule decide; False: the new model swaps in.
    gated: bool = False
    # With `gated`: True, a challenger that passes the offline check is judged on the rides
    # that come after it by the live gate (`retrainer.gate`) before it serves; False, the
    # offline check alone promotes it.
    live_gate: bool = False
    # Whether the policy acts on drift alerts (only then does alert precision mean anything).
    on_alerts: bool = False

    def wants_retraining(
        self, window_end: datetime, previous_end: datetime, alerts: list[DriftDetected]
    ) -> bool:
        """Retrain now, at `window_end`? (`previous_end`: where the previous window ended, or
        this one began when it is the first.)"""
        return False


@dataclass(frozen=True)
class Never(Policy):
    """The first champion serves all along."""


@dataclass(frozen=True)
class Schedule(Policy):
    """Retrain at every `every` boundary since Monday 1970-01-05 00:00 (a day, a week)."""

    every: timedelta = timedelta(days=1)

    def wants_retraining(
        self, window_end: datetime, previous_end: datetime, alerts: list[DriftDetected]
    ) -> bool:
        """True when a boundary lies in (`previous_end`, `window_end`]: the windows of a gap
        in the data are not there to cross it, so the first window after the gap retrains."""
        return _boundaries_before(window_end, self.every) > _boundaries_before(
            previous_end, self.every
        )


@dataclass(frozen=True)
class Loop(Policy):
    """The project's own policy: retrain on every drift alert, promote through the gate, with
    zero retraining latency (training ends with the alerting window; with the offline gate the
    swap takes effect there, with the live gate once the gate decides)."""

    def wants_retraining(
        self, window_end: datetime, previous_end: datetime, alerts: list[DriftDetected]
    ) -> bool:
        """True when the window raised an alert."""
        return bool(alerts)


_MONDAY = datetime(1970, 1, 5)


def _boundaries_before(time: datetime, every: timedelta) -> int:
    # Boundaries at or before `time`, counted from a Monday midnight.
    return (time - _MONDAY) // every


POLICIES: dict[str, Policy] = {
    "never": Never("never"),
    "weekly": Schedule("weekly", buffer_days=SCHEDULE_BUFFER_DAYS, every=timedelta(days=7)),
    "daily": Schedule("daily", buffer_days=SCHEDULE_BUFFER_DAYS, every=timedelta(days=1)),
    "loop": Loop("loop", gated=True, live_gate=True, on_alerts=True),
    "loop-offline": Loop("loop-offline", gated=True, on_alerts=True),
}
