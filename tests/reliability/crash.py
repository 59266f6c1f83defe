"""Crash injection for the reliability tests: a service as a real process (`outage.Service`),
killed with SIGKILL each time its output topic has grown past a chosen size, restarted at once.

The sizes are drawn from a seeded RNG, so a failing run can be replayed with the same kill
points (the seed is in the log). A kill by size lands wherever the service happens to be at
that moment: mid-produce, between flush and commit, inside a transaction, mid-restore.

What a kill -9 leaves behind is cleaned up by the broker: the dead consumer stays in its group
until its session expires, and an exactly-once predictor's open transaction holds back
`read_committed` readers until the transaction timeout + the broker's abort check. The crashed
services run with the broker's shortest session (`CRASH_SESSION_TIMEOUT_MS`) so that three
crashes cost seconds of waiting, not minutes; the mechanisms are the production ones.
"""

from __future__ import annotations

import logging
import os
import random
import time
from collections.abc import Callable
from pathlib import Path

from kafka import KafkaConsumer, TopicPartition

from ridestream.settings import KafkaSettings, MlflowSettings, Settings
from tests.environment import settings_environment
from tests.reliability.outage import Service, register_champion

log = logging.getLogger(__name__)

# A cold start of a service on a loaded 2-core machine (imports, registry, group join):
# generous, it is a deadline.
PROGRESS_TIMEOUT_S = 120.0
LOG_TAIL_CHARS = 3_000
# How often the output size is asked while waiting for a kill point: often enough to kill
# within a batch or two, seldom enough to leave the 2 cores to the service.
POLL_INTERVAL_S = 0.05
# The broker's group.min.session.timeout.ms: a killed incarnation's partitions move soonest.
CRASH_SESSION_TIMEOUT_MS = 6_000


def crashable(module: str, settings: Settings, log_dir: Path) -> Service:
    """`python -m <module>` with `settings` and the shortest group session, as a Service (not
    started yet)."""
    kafka = settings.kafka.model_copy(update={"session_timeout_ms": CRASH_SESSION_TIMEOUT_MS})
    env = {**os.environ, **settings_environment(settings.model_copy(update={"kafka": kafka}))}
    return Service(module, module, env, log_dir)


def champion_store(folder: Path, name: str) -> MlflowSettings:
    """A SQLite MLflow store in `folder` with a champion of model `name` (and its reference)."""
    settings = MlflowSettings(
        tracking_uri=f"sqlite:///{folder}/mlflow.db",
        artifact_location=str(folder / "artifacts"),
        experiment=name,
        model_name=name,
    )
    register_champion(settings)
    return settings


def kill_points(rng: random.Random, total: int, crashes: int) -> list[int]:
    """`crashes` output sizes to kill at, one drawn in each of `crashes` equal slices of the
    middle 90 % of `total`: every kill lands mid-stream."""
    span = 0.9 * total / crashes
    return [int(0.05 * total + span * (i + rng.uniform(0.1, 0.9))) for i in range(crashes)]


class TopicSize:
    """The records a topic holds (the sum of its end offsets), asked again on every call."""

    def __init__(self, settings: KafkaSettings, topic: str) -> None:
        self.consumer = KafkaConsumer(**settings.client_config(), group_id=None)
        partitions = self.consumer.partitions_for_topic(topic) or set()
        assert partitions, f"{topic} does not exist"
        self.partitions = [TopicPartition(topic, p) for p in sorted(partitions)]

    def __call__(self) -> int:
        return sum(self.consumer.end_offsets(self.partitions).values())

    def close(self) -> None:
        self.consumer.close()


def wait_for_output(
    service: Service, size: Callable[[], int], point: int, timeout_s: float = PROGRESS_TIMEOUT_S
) -> int:
    """Wait until `size()` reaches `point`; fail with the log tail if the service exits or
    makes no such progress in time. The size."""
    deadline = time.monotonic() + timeout_s
    while (seen := size()) < point:
        code = service.exited()
        tail = service.log_file.read_text(errors="replace")[-LOG_TAIL_CHARS:]
        assert code is None, f"{service.run_name} exited with code {code}:\n{tail}"
        assert time.monotonic() < deadline, (
            f"{service.run_name}: output at {seen}, not {point}, after {timeout_s:.0f} s:\n{tail}"
        )
        time.sleep(POLL_INTERVAL_S)
    return seen


def crash_at(
    service: Service,
    size: Callable[[], int],
    points: list[int],
    settle_s: Callable[[], float] = lambda: 0.0,
) -> list[int]:
    """Each time `size()` reaches the next of `points`, wait `settle_s()` more, kill -9 the
    service and restart it at once. The output sizes at the kills.

    A point the output had already passed at the last kill moves to one record past it: each
    incarnation is killed only after it produced something, never while it starts.
    """
    kills: list[int] = []
    for point in points:
        wait_for_output(service, size, max([point, *(k + 1 for k in kills[-1:])]))
        time.sleep(settle_s())
        service.process.kill()  # SIGKILL: no handler runs, nothing is flushed or committed
        service.process.wait()
        service.exited()
        kills.append(size())
        log.info("killed %s at output size %d (point %d)", service.run_name, kills[-1], point)
        service.start()
    return kills
