"""What the demo shows while it runs: a tally of the output topics and one progress line."""

from __future__ import annotations

import sys
import threading
import time
from collections import Counter
from dataclasses import dataclass, field
from datetime import datetime

from kafka import KafkaConsumer, TopicPartition

from ridestream.events import DurationPredicted, ModelPromoted, ModelRejected
from ridestream.settings import Settings
from ridestream.topics import Topics


@dataclass
class Tally:
    """What the demo has seen on the topics so far (read by the progress line)."""

    predictions: int = 0
    windows: int = 0
    alerts: int = 0
    promotions: int = 0
    rejections: int = 0
    event_time: datetime | None = None
    champion: str | None = None
    versions: Counter[str] = field(default_factory=Counter)
    last_change: float = field(default_factory=time.monotonic)


class Watcher(threading.Thread):
    """Reads the output topics as they fill and keeps a `Tally` (no consumer group)."""

    def __init__(self, settings: Settings, topics: Topics) -> None:
        super().__init__(name="demo-watcher", daemon=True)
        self.tally = Tally()
        self.stop = threading.Event()
        self._consumer = KafkaConsumer(
            **settings.kafka.client_config(), group_id=None, auto_offset_reset="earliest"
        )
        self._topics = topics
        names = [
            topics.rides_predictions,
            topics.drift_windows,
            topics.drift_alerts,
            topics.models_updates,
        ]
        partitions = [
            TopicPartition(name, p)
            for name in names
            for p in sorted(self._consumer.partitions_for_topic(name) or ())
        ]
        self._consumer.assign(partitions)
        self._consumer.seek_to_beginning(*partitions)

    def run(self) -> None:
        try:
            while not self.stop.is_set():
                for tp, records in self._consumer.poll(timeout_ms=500).items():
                    for record in records:
                        self._count(tp.topic, record.value)
        finally:
            self._consumer.close()

    def _count(self, topic: str, value: bytes) -> None:
        tally, topics = self.tally, self._topics
        if topic == topics.rides_predictions:
            prediction = DurationPredicted.model_validate_json(value)
            tally.predictions += 1
            tally.versions[prediction.model_version] += 1
            if tally.event_time is None or prediction.event_time > tally.event_time:
                tally.event_time = prediction.event_time
            return
        tally.last_change = time.monotonic()
        if topic == topics.drift_windows:
            tally.windows += 1
        elif topic == topics.drift_alerts:
            tally.alerts += 1
        elif b'"promotion_id"' in value:
            promotion = ModelPromoted.model_validate_json(value)
            tally.champion = promotion.version
            tally.promotions += promotion.previous_version is not None  # not the first announce
        elif b'"rejection_id"' in value:
            ModelRejected.model_validate_json(value)
            tally.rejections += 1
        # else: a ChallengerStarted (the live gate); its decision is counted when it comes.


@dataclass
class ProgressLine:
    """One status line: redrawn in place on a terminal, every `log_every_s` into a log file."""

    began: float = field(default_factory=time.monotonic)
    log_every_s: float = 10.0
    _last: float = 0.0

    def show(self, tally: Tally) -> None:
        now = time.monotonic()
        interactive = sys.stdout.isatty()
        if not interactive and now - self._last < self.log_every_s:
            return
        self._last = now
        when = f"{tally.event_time:%Y-%m-%d %H:%M}" if tally.event_time else "-"
        line = (
            f"[{now - self.began:5.0f}s] predicted {tally.predictions:,} | event time {when} | "
            f"windows {tally.windows} | alerts {tally.alerts} | retrains "
            f"{tally.promotions + tally.rejections} | champion v{tally.champion or '1'}"
        )
        print(f"\r{line}   " if interactive else line, end="" if interactive else "\n", flush=True)
