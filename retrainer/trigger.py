"""One training at a time: drift alerts are queued, coalesced, and their offsets held back.

Pure bookkeeping (no Kafka types beyond the `TopicPartition` tuple): the service loop offers
every alert it polls; when no training runs, `start` hands ALL pending alerts to one run (a
burst of alerts during a training becomes one next training, not one per alert); `finish`
closes the run. The offset of an alert is committed only when the run that covered it has
finished, so a retrainer killed mid-training gets the alert again after a restart.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass, field

from kafka import TopicPartition


@dataclass(frozen=True)
class PendingAlert:
    """A drift alert waiting for (or in) a training run, and where it sits in Kafka."""

    alert_id: str
    topic: str
    partition: int
    offset: int


@dataclass
class AlertCoalescer:
    """Queue of alerts, at most one run in progress, and the offsets safe to commit."""

    pending: list[PendingAlert] = field(default_factory=list)
    running: list[PendingAlert] | None = None
    runs_started: int = 0
    _next_offsets: dict[TopicPartition, int] = field(default_factory=dict)

    @property
    def busy(self) -> bool:
        """True while a run is in progress."""
        return self.running is not None

    def offer(self, alerts: Iterable[PendingAlert]) -> None:
        """Queue polled alerts (an alert id already queued or running is not queued twice)."""
        known = {a.alert_id for a in self.pending} | {a.alert_id for a in self.running or ()}
        for alert in alerts:
            tp = TopicPartition(alert.topic, alert.partition)
            self._next_offsets[tp] = max(self._next_offsets.get(tp, 0), alert.offset + 1)
            if alert.alert_id not in known:
                self.pending.append(alert)
                known.add(alert.alert_id)

    def start(self) -> list[PendingAlert] | None:
        """Take every pending alert into one run, or None (a run is in progress, or no alert)."""
        if self.running is not None or not self.pending:
            return None
        self.running, self.pending = self.pending, []
        self.runs_started += 1
        return list(self.running)

    def finish(self) -> list[PendingAlert]:
        """Close the run in progress; returns the alerts it covered."""
        if self.running is None:
            raise RuntimeError("no run in progress")
        done, self.running = self.running, None
        return done

    def commit_gate(self, next_offsets: dict[TopicPartition, int]) -> dict[TopicPartition, int]:
        """Of the polled next offsets, the ones safe to commit (see `committable`)."""
        for tp, offset in next_offsets.items():
            self._next_offsets[tp] = max(self._next_offsets.get(tp, 0), offset)
        safe = self.committable()
        return {tp: offset for tp, offset in safe.items() if tp in next_offsets}

    def committable(self) -> dict[TopicPartition, int]:
        """Per partition: the offset of its oldest alert not yet trained on, else everything
        polled so far."""
        safe = dict(self._next_offsets)
        for alert in [*(self.running or ()), *self.pending]:
            tp = TopicPartition(alert.topic, alert.partition)
            safe[tp] = min(safe[tp], alert.offset)
        return safe
