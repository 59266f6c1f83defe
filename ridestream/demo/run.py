"""`ridestream demo`: the whole loop on real data, end to end, on the embedded setup.

It downloads the trip months it lacks (training, validation and replayed months, into the data
dir), starts the local Apache Kafka (unless one answers already), trains the first champion,
starts the predictor, monitor and retrainer as separate processes, replays a multi-month
stream that drifts, shows live progress, and ends with a summary table and an HTML report.
Everything it started is stopped at the end, also on Ctrl-C.

Each demo run lives apart from any other: its own topic prefix and its own MLflow store under
`.ridestream/demo/<run id>/`, so two runs never see each other's models or events.
"""

from __future__ import annotations

import argparse
import os
import subprocess
import sys
import time
from collections.abc import Sequence
from datetime import datetime
from pathlib import Path

from kafka.errors import KafkaError

from ridestream import kafka_broker
from ridestream.cli import CommandParser
from ridestream.demo.data import ensure_months
from ridestream.demo.processes import DemoError, Processes
from ridestream.demo.summary import summary_lines
from ridestream.demo.watch import ProgressLine, Watcher
from ridestream.report import build_report, read_run
from ridestream.settings import Settings
from ridestream.stream.admin import create_topics
from ridestream.topics import Topics
from ridestream.tripdata_fetch import TLC_BASE_URL, month_argument

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


def _parser() -> argparse.ArgumentParser:
    parser = CommandParser(
        prog="ridestream demo",
        description="Run the whole loop on real NYC TLC data: local Kafka, SQLite MLflow, a "
        "first champion, the predictor, monitor and retrainer as separate processes, a "
        "replay that drifts, live progress, a summary table and an HTML report. Stops "
        "everything it started, also on Ctrl-C.",
    )
    parser.add_argument(
        "--train", type=month_argument, default=DEFAULT_TRAIN, help="month the champion trains on"
    )
    parser.add_argument(
        "--val", type=month_argument, default=DEFAULT_VAL, help="month the champion is validated on"
    )
    parser.add_argument(
        "--months",
        nargs="+",
        type=month_argument,
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
    parser.add_argument(
        "--data-dir",
        type=Path,
        help="TLC files; missing months are downloaded here (default: RIDESTREAM_DATA_DIR)",
    )
    parser.add_argument(
        "--base-url",
        default=TLC_BASE_URL,
        help="where missing months are downloaded from: the TLC's trip-data/ or a mirror of it "
        "(default: %(default)s)",
    )
    parser.add_argument(
        "--fetch-only",
        action="store_true",
        help="download the months the demo needs (training, validation, replay) and stop",
    )
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
    ensure_months(data_dir, [args.train, args.val, *args.months], base_url=args.base_url)
    if args.fetch_only:
        return 0
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


def main(argv: Sequence[str] | None = None) -> int:
    """`ridestream demo`."""
    args = _parser().parse_args(argv)
    try:
        return run_demo(args)
    except (DemoError, kafka_broker.BrokerError, KafkaError) as error:
        print(f"ridestream demo: {error}", file=sys.stderr)
        return 1
    except KeyboardInterrupt:  # before anything started (the fetch step): nothing to stop
        print("\ninterrupted", file=sys.stderr)
        return 130
