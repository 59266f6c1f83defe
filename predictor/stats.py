"""The predictor's periodic log line: rides/s, batch latency, consumer lag and model version."""

from __future__ import annotations

import logging
import time
from collections.abc import Callable

from ridestream.stream.loop import BatchStats

log = logging.getLogger("predictor")


class ThroughputLog:
    """Collects `BatchStats` and logs one line every `interval_s` (an `on_batch` callback)."""

    def __init__(
        self,
        interval_s: float,
        model_version: Callable[[], str],
        lag: Callable[[], int | None],
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self.interval_s = interval_s
        self.model_version = model_version
        self.lag = lag
        self.clock = clock
        self._reset(clock())
        self.lines = 0
        self.last_line = ""

    def _reset(self, now: float) -> None:
        self.since = now
        self.rides = 0
        self.dead_letters = 0
        self.batches = 0
        self.batch_seconds_total = 0.0
        self.batch_seconds_max = 0.0

    def __call__(self, batch: BatchStats) -> None:
        """Count one batch; log when the interval is over."""
        if batch.polled:
            self.batches += 1
            self.rides += batch.valid
            self.dead_letters += batch.dead_letters
            self.batch_seconds_total += batch.seconds
            self.batch_seconds_max = max(self.batch_seconds_max, batch.seconds)
        now = self.clock()
        if now - self.since >= self.interval_s:
            self.report(now)

    def report(self, now: float) -> str:
        """Log the line for the interval that ends at `now` and start a new one."""
        elapsed = max(now - self.since, 1e-9)
        mean_ms = 1000 * self.batch_seconds_total / self.batches if self.batches else 0.0
        lag = self.lag()
        line = (
            f"{self.rides / elapsed:,.0f} rides/s, {self.batches} batches "
            f"(mean {mean_ms:.1f} ms, max {1000 * self.batch_seconds_max:.1f} ms), "
            f"{self.dead_letters} dead letters, lag {'?' if lag is None else f'{lag:,}'}, "
            f"model version {self.model_version()}"
        )
        log.info(line)
        self.lines += 1
        self.last_line = line
        self._reset(now)
        return line
