"""Crash injection for the reliability tests: a service as a real process (`python -m <service>`),
killed with SIGKILL when its output topic has grown past chosen sizes, and restarted at once.

The sizes are drawn from a seeded RNG, so a failing run can be replayed with the same kill
points (the seed is in the log). A kill by size lands wherever the service happens to be at
that moment: mid-produce, between flush and commit, inside a transaction, mid-restore.

What a kill -9 leaves behind is cleaned up by the broker, after client timeouts that the
services take no setting for: the dead consumer stays in its group until its session expires
(kafka-python 3: `session_timeout_ms` 45 s, and the restarted incarnation gets no partition
until then), and an exactly-once predictor's open transaction holds back `read_committed`
readers and the group's offset fetch until `transaction_timeout_ms` (60 s) + the broker's
10 s abort check. At those defaults three crashes cost minutes of waiting, so the child runs
the service module unchanged with lower kafka-python defaults (`CONSUMER_DEFAULTS`,
`PRODUCER_DEFAULTS`): the same broker mechanisms (session expiry, abort on timeout), sooner.
"""

from __future__ import annotations

import logging
import random
import signal
import subprocess
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

from kafka import KafkaConsumer, TopicPartition
from pydantic import BaseModel, SecretStr

from ridestream.demo import Processes
from ridestream.settings import KafkaSettings, MlflowSettings
from ridestream.training import train_and_register
from tests.integration.predictor.conftest import synthetic_rides

log = logging.getLogger(__name__)

ENV_PREFIX = "RIDESTREAM_"
# A cold start of a service on a loaded 2-core machine (imports, registry, group join) and the
# time the group coordinator takes to drop a killed member: generous, it is a deadline.
PROGRESS_TIMEOUT_S = 120.0
LOG_TAIL_LINES = 15
# kafka-python defaults in the child process (see the module docstring). 6 s is the broker's
# group.min.session.timeout.ms; heartbeats at a third of the session, as Kafka advises.
CONSUMER_DEFAULTS = {"session_timeout_ms": 6_000, "heartbeat_interval_ms": 2_000}
PRODUCER_DEFAULTS = {"transaction_timeout_ms": 10_000}


def launcher(module: str) -> list[str]:
    """Arguments for `python` that run `module` as `-m` does, with the lower client defaults."""
    code = (
        "import runpy, kafka; "
        f"kafka.KafkaConsumer.DEFAULT_CONFIG.update({CONSUMER_DEFAULTS!r}); "
        f"kafka.KafkaProducer.DEFAULT_CONFIG.update({PRODUCER_DEFAULTS!r}); "
        f"runpy.run_module({module!r}, run_name='__main__', alter_sys=True)"
    )
    return ["-c", code]


def settings_environment(settings: BaseModel, prefix: str = ENV_PREFIX) -> dict[str, str]:
    """The `RIDESTREAM_*` variables from which a service reads back exactly `settings`."""
    env: dict[str, str] = {}
    for name, value in settings:
        key = f"{prefix}{name.upper()}"
        if isinstance(value, BaseModel):
            env.update(settings_environment(value, key + "__"))
        elif isinstance(value, SecretStr):
            env[key] = value.get_secret_value()
        elif value is not None:
            env[key] = str(value)
    return env


def register_champion(mlflow: MlflowSettings) -> str:
    """Train a small model on synthetic rides and register it as champion; its version."""
    trained = train_and_register(
        mlflow,
        synthetic_rides(1_500, seed=35),
        synthetic_rides(1_000, seed=99),
        "gbm",
        {"test": "crash"},
        promote=True,
    )
    return trained.info.version


def kill_points(rng: random.Random, total: int, crashes: int) -> list[int]:
    """`crashes` output sizes to kill at, one drawn in each of `crashes` equal slices of the
    middle 90 % of `total`: every kill lands mid-stream, and after the restart before it has
    made progress."""
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


@dataclass
class CrashingService:
    """`python -m <module>` with its settings in the environment: started, killed -9, restarted.

    Every incarnation logs to its own file `<module>-<n>.log` under `log_dir`.
    """

    module: str
    env: dict[str, str]
    log_dir: Path
    processes: Processes = field(default_factory=Processes)
    incarnations: int = 0
    kills: list[int] = field(default_factory=list)

    @property
    def name(self) -> str:
        return f"{self.module}-{self.incarnations}"

    @property
    def process(self) -> subprocess.Popen[bytes]:
        return self.processes.running[self.name]

    def start(self) -> CrashingService:
        """Start a new incarnation."""
        self.incarnations += 1
        self.processes.start(self.name, launcher(self.module), self.env, self.log_dir)
        return self

    def kill(self) -> None:
        """SIGKILL the running incarnation: no handler runs, nothing is flushed or committed."""
        self.process.send_signal(signal.SIGKILL)
        self.process.wait()

    def check_alive(self) -> None:
        """Fail with the tail of its log if the incarnation exited on its own."""
        code = self.process.poll()
        assert code is None, f"{self.name} exited with code {code}:\n{self.log_tail()}"

    def log_tail(self) -> str:
        """The last lines the running incarnation wrote."""
        path = self.log_dir / f"{self.name}.log"
        lines = path.read_text(errors="replace").splitlines() if path.exists() else []
        return "\n".join(lines[-LOG_TAIL_LINES:])

    def wait_for(
        self,
        size: Callable[[], int],
        point: int,
        timeout_s: float = PROGRESS_TIMEOUT_S,
        while_waiting: Callable[[int], None] | None = None,
    ) -> int:
        """Wait until `size()` reaches `point` (calling `while_waiting(size)` meanwhile, e.g. to
        feed more input); fail if the service exits or makes no such progress. The size."""
        deadline = time.monotonic() + timeout_s
        while (seen := size()) < point:
            self.check_alive()
            assert time.monotonic() < deadline, (
                f"{self.name}: output at {seen}, not {point}, after {timeout_s:.0f} s:\n"
                f"{self.log_tail()}"
            )
            if while_waiting is not None:
                while_waiting(seen)
            time.sleep(0.02)
        return seen

    def crash_at(
        self,
        size: Callable[[], int],
        points: list[int],
        settle_s: Callable[[], float] = lambda: 0.0,
        while_waiting: Callable[[int], None] | None = None,
    ) -> list[int]:
        """Each time `size()` reaches the next of `points`, wait `settle_s()` more, kill -9 and
        restart at once. Returns the output sizes at the kills.

        A point the output had already passed at the last kill is moved to one record past it:
        each incarnation is killed only after it produced something, never while starting.
        """
        for point in points:
            if self.kills:
                point = max(point, self.kills[-1] + 1)
            self.wait_for(size, point, while_waiting=while_waiting)
            time.sleep(settle_s())
            self.kill()
            self.kills.append(size())
            log.info("killed %s at output size %d (point %d)", self.name, self.kills[-1], point)
            self.start()
        return self.kills

    def stop(self) -> None:
        """SIGTERM the running incarnation (it finishes its batch and commits); close the logs."""
        self.processes.stop_all()
