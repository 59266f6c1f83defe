"""`ridestream demo`: the whole loop on real data, end to end, on the embedded setup.

It starts the local Apache Kafka (unless one answers already), trains the first champion,
starts the predictor, monitor and retrainer as separate processes, replays a multi-month
stream that drifts, shows live progress, and ends with a summary table and an HTML report.
Everything it started is stopped at the end, also on Ctrl-C.

Each demo run lives apart from any other: its own topic prefix and its own MLflow store under
`.ridestream/demo/<run id>/`, so two runs never see each other's models or events.
"""

from __future__ import annotations

import argparse
import os
import signal
import subprocess
import sys
import threading
import time
from collections import Counter
from collections.abc import Sequence
from dataclasses import dataclass, field
from datetime import datetime
from pathlib import Path
from typing import IO

from kafka import KafkaConsumer, TopicPartition
from kafka.errors import KafkaError

from ridestream import kafka_broker
from ridestream.cli import CommandParser
from ridestream.events import DurationPredicted, ModelPromoted, ModelRejected
from ridestream.kafka import create_topics
from ridestream.report import RunEvents, build_report, model_switches, read_run
from ridestream.settings import Settings
from ridestream.topics import Topics
from ridestream.trips import month_path

# Services and the metrics port each serves while the demo runs.
SERVICES = (("predictor", 9101), ("monitor", 9102), ("retrainer", 9103))
DEFAULT_TRAIN, DEFAULT_VAL = "2021-01", "2021-02"
# The champion's own validation month, then a real later period: a year on, trips and zones
# have moved (measured: the January 2021 model scores RMSE 5.96 on 2022-06, a model trained on
# the two weeks before scores 5.12).
DEFAULT_MONTHS = ("2021-02", "2022-05", "2022-06")
# Event time runs this many times faster than real time: a day of rides in about 2 s, so a
# retrain (seconds) lands while the stream still flows and later windows show the new model.
DEFAULT_SPEED = 43_200.0


class DemoError(RuntimeError):
    """The demo cannot go on (the message says what to do)."""


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
        else:
            ModelRejected.model_validate_json(value)
            tally.rejections += 1


@dataclass
class Processes:
    """The service processes the demo started, stopped together."""

    running: dict[str, subprocess.Popen[bytes]] = field(default_factory=dict)
    logs: list[IO[bytes]] = field(default_factory=list)

    def start(self, name: str, args: Sequence[str], env: dict[str, str], log_dir: Path) -> None:
        log = (log_dir / f"{name}.log").open("wb")
        self.logs.append(log)
        self.running[name] = subprocess.Popen(
            [sys.executable, *args], env=env, stdout=log, stderr=subprocess.STDOUT
        )

    def check(self) -> None:
        """Raise if a service died: the demo cannot go on without it."""
        for name, process in self.running.items():
            if process.poll() is not None:
                raise DemoError(f"{name} exited with code {process.returncode}: see its log")

    def stop_all(self, timeout_s: float = 20.0) -> None:
        """SIGTERM every service (they finish their batch and commit), then SIGKILL stragglers."""
        for process in self.running.values():
            if process.poll() is None:
                process.send_signal(signal.SIGTERM)
        deadline = time.monotonic() + timeout_s
        for process in self.running.values():
            try:
                process.wait(timeout=max(0.1, deadline - time.monotonic()))
            except subprocess.TimeoutExpired:
                process.kill()
                process.wait()
        for log in self.logs:
            log.close()


def _parser() -> argparse.ArgumentParser:
    parser = CommandParser(
        prog="ridestream demo",
        description="Run the whole loop on real NYC TLC data: local Kafka, SQLite MLflow, a "
        "first champion, the predictor, monitor and retrainer as separate processes, a "
        "replay that drifts, live progress, a summary table and an HTML report. Stops "
        "everything it started, also on Ctrl-C.",
    )
    parser.add_argument("--train", default=DEFAULT_TRAIN, help="month the champion trains on")
    parser.add_argument("--val", default=DEFAULT_VAL, help="month the champion is validated on")
    parser.add_argument(
        "--months",
        nargs="+",
        default=list(DEFAULT_MONTHS),
        metavar="YYYY-MM",
        help=f"months to replay, in order (default: {' '.join(DEFAULT_MONTHS)})",
    )
    parser.add_argument(
        "--speed",
        type=float,
        default=DEFAULT_SPEED,
        help="event time runs this many times faster than real time (default: %(default)g, "
        "about 2 s per day of rides)",
    )
    parser.add_argument("--window", default="1d", help="monitor window (default: %(default)s)")
    parser.add_argument("--data-dir", type=Path, help="TLC files (default: RIDESTREAM_DATA_DIR)")
    parser.add_argument(
        "--settle-s",
        type=float,
        default=20.0,
        help="after the replay, wait until nothing new happened for this long (default: 20)",
    )
    parser.add_argument(
        "--timeout-s", type=float, default=900.0, help="give up after this long (default: 900)"
    )
    return parser


def _check_data(data_dir: Path, months: Sequence[str]) -> list[Path]:
    paths = [month_path(data_dir, month) for month in months]
    missing = [path for path in paths if not path.exists()]
    if missing:
        wanted = " ".join(path.stem.removeprefix("green_tripdata_") for path in missing)
        raise DemoError(
            f"missing {', '.join(str(p) for p in missing)}: run "
            f"`ridestream data fetch --color green --months {wanted}` or set RIDESTREAM_DATA_DIR"
        )
    return paths


def _ensure_broker(settings: Settings) -> bool:
    """Start the local broker unless one answers; True when this demo started it."""
    if kafka_broker.status(settings.broker).running:
        return False
    if settings.kafka.bootstrap_servers != settings.broker.bootstrap:
        return False  # an external cluster is configured: use it as it is
    print(f"starting Apache Kafka at {settings.broker.bootstrap} ...", flush=True)
    started = kafka_broker.start(settings.broker)
    print(f"  Apache Kafka {started.kafka_version} running (pid {started.pid})", flush=True)
    return True


def run_demo(args: argparse.Namespace) -> int:
    """The demo itself (see the module docstring); returns the exit code."""
    settings = Settings()
    data_dir = args.data_dir or settings.data_dir
    _check_data(data_dir, [args.train, args.val, *args.months])
    run_id = datetime.now().strftime("%Y%m%d-%H%M%S")
    run_dir = (settings.state_dir / "demo" / run_id).resolve()
    run_dir.mkdir(parents=True, exist_ok=True)
    topics = Topics(f"demo-{run_id}.")
    run_mlflow = settings.mlflow.model_copy(
        update={
            "tracking_uri": f"sqlite:///{run_dir}/mlflow.db",
            "artifact_location": str(run_dir / "mlartifacts"),
        }
    )
    env = {
        **os.environ,
        "RIDESTREAM_TOPIC_PREFIX": topics.prefix,
        "RIDESTREAM_DATA_DIR": str(Path(data_dir).resolve()),
        "RIDESTREAM_STATE_DIR": str(run_dir),
        "RIDESTREAM_MLFLOW__TRACKING_URI": run_mlflow.tracking_uri,
        "RIDESTREAM_MLFLOW__ARTIFACT_LOCATION": run_mlflow.artifact_location,
        "RIDESTREAM_KAFKA__BOOTSTRAP_SERVERS": settings.kafka.bootstrap_servers,
        "RIDESTREAM_MONITOR__REPORTS_DIR": str(run_dir / "reports"),
        # Evidently's default thresholds are at the day-to-day noise of one-day windows: on the
        # champion's own validation month (2021-02) zones score Jensen-Shannon 0.11-0.13 and
        # the prediction Wasserstein 0.11-0.17 (weekends against a whole-month reference),
        # while the real shift to 2022 scores 0.23-0.33. So the demo judges at 0.2.
        "RIDESTREAM_MONITOR__CAT_THRESHOLD": os.environ.get(
            "RIDESTREAM_MONITOR__CAT_THRESHOLD", "0.2"
        ),
        "RIDESTREAM_MONITOR__NUM_THRESHOLD": os.environ.get(
            "RIDESTREAM_MONITOR__NUM_THRESHOLD", "0.2"
        ),
        # At the demo's speed a second of predictor lag is 12 h of event time.
        "RIDESTREAM_MONITOR__LATENESS": os.environ.get("RIDESTREAM_MONITOR__LATENESS", "12h"),
        # No service restarts here: the last windows close 10 s after the stream ends.
        "RIDESTREAM_MONITOR__IDLE_PARTITION_S": os.environ.get(
            "RIDESTREAM_MONITOR__IDLE_PARTITION_S", "10"
        ),
    }
    started_broker = _ensure_broker(settings)
    processes = Processes()
    watcher: Watcher | None = None
    began = time.monotonic()
    try:
        create_topics(
            settings.kafka, topics.all_with_dead_letters(), partitions=settings.broker.partitions
        )
        print(f"run {run_id}: topics {topics.prefix}*, logs and MLflow store in {run_dir}")
        print(f"training the first champion on {args.train} (validated on {args.val}) ...")
        train_args = ["--train", args.train, "--val", args.val]
        trained = subprocess.run(
            [sys.executable, "-m", "ridestream.cli", "train", *train_args, "--promote"],
            env=env,
            capture_output=True,
            text=True,
        )
        if trained.returncode != 0:
            raise DemoError(f"training failed: {trained.stderr.strip().splitlines()[-1:]}")
        print("  " + "\n  ".join(trained.stdout.strip().splitlines()))

        for name, port in SERVICES:
            service_env = env | {"RIDESTREAM_METRICS_PORT": str(port)}
            extra = ["--window", args.window] if name == "monitor" else []
            processes.start(name, ["-m", name, *extra], service_env, run_dir)
        print("started " + ", ".join(f"{n} (metrics :{p})" for n, p in SERVICES))

        watcher = Watcher(settings, topics)
        watcher.start()
        # From the first month's first day: the TLC files hold stray rides from years before.
        replay_args = ["--months", *args.months, "--start", f"{args.months[0]}-01"]
        replay_args += ["--speed", str(args.speed), "--no-progress"]
        replay = subprocess.Popen(
            [sys.executable, "-m", "producer", *replay_args],
            env=env,
            stdout=subprocess.PIPE,
            stderr=subprocess.STDOUT,
        )
        processes.running["replay"] = replay
        deadline = began + args.timeout_s
        progress = ProgressLine(began)
        while replay.poll() is None:
            progress.show(watcher.tally)
            _check_services(processes, deadline)
            time.sleep(2)
        replay_output = replay.stdout.read().decode() if replay.stdout else ""
        del processes.running["replay"]
        if replay.returncode != 0:
            raise DemoError(f"replay failed:\n{replay_output[-2000:]}")
        print("\nreplay finished:\n  " + "\n  ".join(replay_output.strip().splitlines()[-6:]))
        while time.monotonic() - watcher.tally.last_change < args.settle_s:
            progress.show(watcher.tally)
            _check_services(processes, deadline)
            time.sleep(2)
        print()
        run = read_run(settings.model_copy(update={"mlflow": run_mlflow}), topics)
        print("\n".join(summary_lines(run)))
        report = run_dir / "report.html"
        report.write_text(build_report(run, f"ridestream demo {run_id}"), encoding="utf-8")
        print(f"\nreport: {report}\nservice logs: {run_dir}/*.log")
    except KeyboardInterrupt:
        print("\ninterrupted: stopping everything the demo started", file=sys.stderr)
        return 130
    finally:
        if watcher is not None:
            watcher.stop.set()
        processes.stop_all()
        if started_broker:
            kafka_broker.stop(settings.broker)
            print("stopped Apache Kafka")
    return 0


def _check_services(processes: Processes, deadline: float) -> None:
    processes.check()
    if time.monotonic() > deadline:
        raise DemoError("timed out (see --timeout-s)")


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


def summary_lines(run: RunEvents) -> list[str]:
    """The end-of-demo summary: counts, each switch's RMSE before and after, every window."""
    lines = ["", "summary", "-------"]
    width = max(len(name) for name in run.counts)
    lines += [f"{name:<{width}}  {count:>10,}" for name, count in run.counts.items()]
    lines += ["", "model switches (RMSE in minutes)"]
    scores = {(x.previous_version, x.version): x for x in run.switch_scores}
    switches = model_switches(run)
    for switch in switches:
        before = f"{switch.rmse_before:.2f}" if switch.rmse_before is not None else "-"
        after = f"{switch.rmse_after:.2f}" if switch.rmse_after is not None else "-"
        lines.append(
            f"  v{switch.previous_version} -> v{switch.version} at {switch.window_start:%Y-%m-%d}: "
            f"mean window RMSE before {before}, after {after}"
        )
        fair = scores.get((switch.previous_version or "", switch.version))
        if fair is not None:
            lines.append(
                f"    on the {fair.rides:,} labelled rides v{fair.version} predicted: "
                f"v{fair.previous_version} {fair.rmse_previous:.2f} -> v{fair.version} "
                f"{fair.rmse_new:.2f}"
            )
    if not switches:
        lines.append("  none")
    alerted = {alert.window_id for alert in run.alerts}
    lines += [
        "",
        "windows",
        f"  {'window':<19} {'model':>6} {'rides':>7} {'RMSE':>6} {'drifted':>8}  alert",
    ]
    for window in sorted(run.windows, key=lambda w: w.window_start):
        rmse = f"{window.quality.rmse:.2f}" if window.quality.rmse is not None else "-"
        share = f"{window.drifted_share:.2f}" if window.drifted_share is not None else "-"
        alert = "yes" if window.window_id in alerted else ""
        lines.append(
            f"  {window.window_start:%Y-%m-%d %H:%M}  {','.join(window.model_versions):>6} "
            f"{window.rides:>7} {rmse:>6} {share:>8}  {alert}"
        )
    return lines


def main(argv: Sequence[str] | None = None) -> int:
    """`ridestream demo`."""
    args = _parser().parse_args(argv)
    try:
        return run_demo(args)
    except (DemoError, kafka_broker.BrokerError, KafkaError) as error:
        print(f"ridestream demo: {error}", file=sys.stderr)
        return 1
