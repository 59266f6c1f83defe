"""What the outage tests share: services as real subprocesses (and their logs), a real
`mlflow server` that can be stopped and started, a champion made in seconds, and waiting on
conditions with deadlines (never sleeps that assume a speed)."""

from __future__ import annotations

import contextlib
import logging
import os
import re
import signal
import subprocess
import sys
import time
import urllib.error
import urllib.request
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from pathlib import Path

from ridestream.demo import Processes
from ridestream.events import DriftDetected, RideCompleted, RuleFired
from ridestream.features import PICKUP_TIME, RIDE_ID, TARGET
from ridestream.kafka_broker import free_ports
from ridestream.model import LINEAR
from ridestream.settings import KafkaSettings, MlflowSettings
from ridestream.training import train_and_register
from tests.environment import broker_and_registry_environment
from tests.synthetic import synthetic_rides

log = logging.getLogger("tests.outage")

# A cold service process on a loaded 2-core machine imports pandas, scikit-learn and mlflow.
SERVICE_START_TIMEOUT_S = 90.0
MLFLOW_START_TIMEOUT_S = 90.0
# The champion learns 3.5 min per mile; rides of a "drifted" city take 5.5 (see completions).
CHAMPION_SLOPE = 3.5

# The retrainer on the tests' synthetic or real January rides: a linear model (seconds to train),
# the whole month in its buffer, a challenger once 1,000 rides are labelled (service_env names).
RETRAIN_QUICKLY = {
    "RETRAINER__MIN_LABELLED_RIDES": "1000",
    "RETRAINER__BUFFER_DAYS": "60",
    "RETRAINER__MODEL_KIND": LINEAR,
    # These tests are about the promotion path and its parts; the live gate (a day of rides
    # after the challenger) has tests of its own.
    "RETRAINER__GATE": "offline",
}


def service_env(
    kafka: KafkaSettings, topic_prefix: str, mlflow: MlflowSettings, **extra: str
) -> dict[str, str]:
    """The environment of a service subprocess: our broker, topics and model, plus `extra`
    (`RIDESTREAM_*` names, given without the prefix: PREDICTOR__GROUP_ID="g")."""
    env = {
        **os.environ,
        **broker_and_registry_environment(kafka, topic_prefix, mlflow),
        "RIDESTREAM_METRICS_PORT": "0",
        "PYTHONUNBUFFERED": "1",
    }
    env.update({f"RIDESTREAM_{name}": value for name, value in extra.items()})
    return env


def register_champion(mlflow: MlflowSettings, *, seed: int = 35, promote: bool = True) -> str:
    """Train a small linear model on synthetic rides and make it champion (or, with
    `promote=False`, only register it, e.g. as the next champion); its version."""
    trained = train_and_register(
        mlflow,
        synthetic_rides(1_500, seed=seed, slope=CHAMPION_SLOPE),
        synthetic_rides(300, seed=seed + 64, slope=CHAMPION_SLOPE),
        LINEAR,
        {"test": "outage"},
        promote=promote,
    )
    return trained.info.version


def quality_alert(alert_id: str, model_version: str, window_id: str) -> DriftDetected:
    """A DriftDetected as the monitor sends it when the quality rule fires (a day's window of
    January 2021): what makes the retrainer train a challenger."""
    return DriftDetected(
        alert_id=alert_id,
        event_time=datetime(2021, 1, 29),
        window_id=window_id,
        window_start=datetime(2021, 1, 28),
        model_version=model_version,
        rules=[RuleFired(rule="quality", value=9.1, threshold=7.0, detail="rmse")],
    )


def completions(count: int, seed: int, slope: float) -> list[RideCompleted]:
    """Labelled rides as `RideCompleted` (the retrainer's buffer reads them)."""
    rides = synthetic_rides(count, seed=seed, slope=slope)
    rides = rides[(rides[TARGET] > 1) & (rides[TARGET] < 60)]
    return [
        RideCompleted(
            ride_id=str(row[RIDE_ID]),
            event_time=row[PICKUP_TIME].to_pydatetime() + timedelta(minutes=float(row[TARGET])),
            pickup_time=row[PICKUP_TIME].to_pydatetime(),
            duration_min=float(row[TARGET]),
            pu_location_id=int(row["PULocationID"]),
            do_location_id=int(row["DOLocationID"]),
            trip_distance=float(row["trip_distance"]),
        )
        for _, row in rides.iterrows()
    ]


def wait_until(what: str, condition: Callable[[], bool], timeout_s: float) -> float:
    """Poll `condition` until it holds; fail naming `what` after `timeout_s`. Seconds waited."""
    started = time.monotonic()
    while not condition():
        if time.monotonic() - started > timeout_s:
            raise AssertionError(f"{what}: not within {timeout_s:.0f} s")
        time.sleep(0.2)
    return time.monotonic() - started


@dataclass
class Service:
    """One service run as a subprocess (python -m <module> <args>), restartable as an orchestrator
    restarts a container: each run logs to its own file `<name>-<run>.log`."""

    name: str
    module: str
    env: dict[str, str]
    log_dir: Path
    args: tuple[str, ...] = ()
    processes: Processes = field(default_factory=Processes)
    runs: int = 0
    exit_codes: list[int] = field(default_factory=list)

    @property
    def run_name(self) -> str:
        return f"{self.name}-{self.runs}"

    @property
    def process(self) -> subprocess.Popen[bytes]:
        return self.processes.running[self.run_name]

    @property
    def log_file(self) -> Path:
        return self.log_dir / f"{self.run_name}.log"

    def start(self, ready_line: str | None = None) -> Service:
        """Start a new run; with `ready_line`, wait until its log shows it."""
        self.runs += 1
        self.processes.start(self.run_name, ["-m", self.module, *self.args], self.env, self.log_dir)
        log.info("started %s (pid %d)", self.run_name, self.process.pid)
        if ready_line is not None:
            self.wait_for_log(ready_line, SERVICE_START_TIMEOUT_S)
        return self

    def exited(self) -> int | None:
        """The exit code of the current run, once it ended (recorded once)."""
        code = self.process.poll()
        if code is not None and len(self.exit_codes) < self.runs:
            self.exit_codes.append(code)
            log.log(
                logging.WARNING if code else logging.INFO, "%s exited (%d)", self.run_name, code
            )
        return code

    def logs(self) -> str:
        """The logs of every run so far, oldest first."""
        return "\n".join(
            (self.log_dir / f"{self.name}-{run}.log").read_text(errors="replace")
            for run in range(1, self.runs + 1)
        )

    def count(self, pattern: str) -> int:
        """Lines of all runs' logs matching the regular expression `pattern`."""
        return len(re.findall(pattern, self.logs()))

    def wait_for_log(self, pattern: str, timeout_s: float) -> float:
        """Wait until a line of this run's log matches `pattern`; fail if the run exits."""

        def shown() -> bool:
            if re.search(pattern, self.log_file.read_text(errors="replace")):
                return True
            if self.exited() is not None:
                raise AssertionError(
                    f"{self.run_name} exited ({self.process.returncode}) before logging "
                    f"{pattern!r}:\n{self.log_file.read_text(errors='replace')[-3000:]}"
                )
            return False

        return wait_until(f"{self.run_name} logs {pattern!r}", shown, timeout_s)

    def stop(self) -> None:
        """SIGTERM every run still going (SIGKILL after 20 s), close the logs."""
        self.processes.stop_all()
        if self.runs:
            self.exited()  # the last run's code (earlier runs' were taken before each restart)


class MlflowServer:
    """A real `mlflow server` on 127.0.0.1 (SQLite backend store in `folder`, or the database
    at `backend_store_uri`; artifacts served through the server), which a test stops and
    starts again on the same port and store."""

    def __init__(self, folder: Path, backend_store_uri: str | None = None) -> None:
        self.folder = folder
        self.backend_store_uri = backend_store_uri or f"sqlite:///{folder / 'mlflow.db'}"
        (self.port,) = free_ports(1)
        self.process: subprocess.Popen[bytes] | None = None
        self.starts = 0

    @property
    def uri(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def settings(self, name: str) -> MlflowSettings:
        """Settings of a model and experiment `name` in this server (artifacts served by it)."""
        return MlflowSettings(
            tracking_uri=self.uri,
            artifact_location=f"mlflow-artifacts:/{name}",
            experiment=name,
            model_name=name,
        )

    def start(self) -> float:
        """Start the server and wait until /health answers; seconds it took."""
        self.folder.mkdir(parents=True, exist_ok=True)
        self.starts += 1
        log_file = (self.folder / f"server-{self.starts}.log").open("wb")
        command = [
            *(sys.executable, "-m", "mlflow", "server"),
            *("--backend-store-uri", self.backend_store_uri),
            *("--serve-artifacts", "--artifacts-destination", str(self.folder / "artifacts")),
            *("--host", "127.0.0.1", "--port", str(self.port), "--workers", "1"),
        ]
        # No job runner: it starts eight more processes this test has no use for.
        env = {**os.environ, "MLFLOW_SERVER_ENABLE_JOB_EXECUTION": "false"}
        self.process = subprocess.Popen(
            command, env=env, stdout=log_file, stderr=subprocess.STDOUT, start_new_session=True
        )
        log_file.close()
        took = wait_until(f"mlflow server at {self.uri}", self.healthy, MLFLOW_START_TIMEOUT_S)
        log.info("mlflow server up at %s in %.1f s", self.uri, took)
        return took

    def healthy(self) -> bool:
        """True when the server answers /health."""
        if self.process is not None and self.process.poll() is not None:
            raise AssertionError(f"mlflow server exited with code {self.process.returncode}")
        return self._answers()

    def stop(self) -> None:
        """Stop the server and its workers (SIGTERM to its process group, SIGKILL after 20 s)."""
        if self.process is None or self.process.poll() is not None:
            return
        pgid = os.getpgid(self.process.pid)
        os.killpg(pgid, signal.SIGTERM)
        try:
            self.process.wait(timeout=20)
        except subprocess.TimeoutExpired:
            os.killpg(pgid, signal.SIGKILL)
            self.process.wait()
        # The uvicorn worker may outlive its parent by a moment: the port must be free.
        wait_until("mlflow server gone", lambda: not self._answers(), 20)
        with contextlib.suppress(ProcessLookupError):
            os.killpg(pgid, signal.SIGKILL)  # stragglers of the group
        log.info("mlflow server at %s stopped", self.uri)

    def _answers(self) -> bool:
        try:
            with urllib.request.urlopen(f"{self.uri}/health", timeout=2.0) as response:
                return bool(response.status == 200)
        except (urllib.error.URLError, OSError):
            return False
