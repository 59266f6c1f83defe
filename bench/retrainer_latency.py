"""From a drift alert to the first prediction of the promoted model: what each part costs.

A champion is trained on green 2021-01 (validated on 2021-02), the buffer holds the last 14
days of green 2021-02 drop-offs (~30k labelled rides) with every duration x1.4 (a drifted
stream, so the challenger is promoted), and the MLflow store is a real SQLite registry in a
temporary folder. Parts:

- buffer:  RideCompleted JSON values -> decode + validate -> rides frame -> RideBuffer
           (what the retrainer does for every ride, at start when it rebuilds the buffer);
- job:     retrainer.retrain.retrain on the buffer snapshot: split, load + score the champion,
           train, register (log_model, reference frame, tags), score the challenger, decide,
           move the alias and publish (timings from the job itself);
- swap:    what a predictor does on ModelPromoted: load the version through the registry and
           predict a first batch of 500 rides.

With --bootstrap HOST:PORT (a running broker) it also measures the whole path on Kafka: the
rides are produced to rides.completed, the retrainer service (retrainer.__main__.Retrainer)
runs in a thread, a DriftDetected is produced, and a consumer of models.updates plays the
predictor (load + first prediction) when the ModelPromoted arrives.

Run: python bench/retrainer_latency.py [--bootstrap 127.0.0.1:19092] [--repeat N]
No timing is asserted anywhere.
"""

from __future__ import annotations

import argparse
import logging
import os
import platform
import sys
import tempfile
import threading
import time
import uuid
from datetime import datetime, timedelta
from pathlib import Path

import numpy as np
import pandas as pd

ROOT = Path(__file__).resolve().parents[1]
DATA_DIR = Path(os.environ.get("RIDESTREAM_TEST_DATA_DIR", ROOT.parent / "shared" / "data"))
DRIFT_FACTOR = 1.4
BUFFER_DAYS = 14
FIRST_BATCH_RIDES = 500


def read_month(month: str) -> pd.DataFrame:
    from ridestream.events import MAX_TRIP_DISTANCE_MI
    from ridestream.features import PICKUP_TIME
    from ridestream.trips import month_path, read_trips

    rides = read_trips(month_path(DATA_DIR, month))
    start = pd.Timestamp(f"{month}-01")
    keep = (rides[PICKUP_TIME] >= start) & (rides[PICKUP_TIME] < start + pd.offsets.MonthBegin())
    keep &= rides["trip_distance"].between(0, MAX_TRIP_DISTANCE_MI)
    keep &= rides["duration_min"].between(0, 24 * 60)
    return rides[keep].reset_index(drop=True)


def drifted_events(rides: pd.DataFrame) -> list:
    """RideCompleted events of `rides` with durations x DRIFT_FACTOR, in drop-off order."""
    from ridestream.events import RideCompleted

    duration = rides["duration_min"].to_numpy() * DRIFT_FACTOR
    pickup = rides["pickup_datetime"]
    dropoff = (pickup + pd.to_timedelta(duration, unit="min")).dt.floor("us")
    events = [
        RideCompleted(
            ride_id=ride_id,
            event_time=d.to_pydatetime(),
            pickup_time=p.to_pydatetime(),
            duration_min=float(m),
            pu_location_id=int(pu),
            do_location_id=int(do),
            trip_distance=float(dist),
        )
        for ride_id, p, d, m, pu, do, dist in zip(
            rides["ride_id"],
            pickup,
            dropoff,
            duration,
            rides["PULocationID"],
            rides["DOLocationID"],
            rides["trip_distance"],
            strict=True,
        )
    ]
    return sorted(events, key=lambda e: e.event_time)


def fill_buffer(values: list[bytes], batch: int = 5_000):
    """Decode JSON values like the StreamLoop and append them like the retrainer."""
    from retrainer.buffer import RideBuffer, completed_rides
    from ridestream.events import RideCompleted

    buffer = RideBuffer(max_age=timedelta(days=BUFFER_DAYS))
    for start in range(0, len(values), batch):
        events = [RideCompleted.model_validate_json(v) for v in values[start : start + batch]]
        buffer.append(completed_rides(events))
    return buffer


def swap(registry, version: str, rides: pd.DataFrame) -> float:
    """Seconds a predictor needs to load `version` and predict its first batch."""
    from ridestream.model import predict

    started = time.perf_counter()
    model = registry.load_model(version)
    predict(model, rides.head(FIRST_BATCH_RIDES))
    return time.perf_counter() - started


def offline(args, workdir: Path, champion_train, champion_val, events, rides_feb) -> list[dict]:
    """The job and the swap without Kafka (events are collected in a list)."""
    from retrainer.retrain import retrain
    from retrainer.settings import RetrainerOptions
    from ridestream.events import encode
    from ridestream.registry import ModelRegistry
    from ridestream.settings import MlflowSettings
    from ridestream.training import train_and_register

    values = [encode(e) for e in events]
    results = []
    for run in range(args.repeat):
        mlflow = MlflowSettings(
            tracking_uri=f"sqlite:///{workdir}/offline-{run}/mlflow.db",
            artifact_location=str(workdir / f"offline-{run}" / "mlartifacts"),
        )
        train_and_register(mlflow, champion_train, champion_val, tags={"trigger": "bench"})
        started = time.perf_counter()
        buffer = fill_buffer(values)
        buffer_s = time.perf_counter() - started
        snapshot = buffer.snapshot()
        published: list = []
        outcome = retrain(mlflow, RetrainerOptions(), snapshot, ["bench-alert"], published.append)
        assert outcome.status == "promoted", outcome.reason
        swap_s = swap(ModelRegistry(mlflow), str(outcome.version), rides_feb)
        results.append(
            {
                "rides": len(snapshot),
                "range": f"{snapshot['dropoff_datetime'].min():%m-%d}.."
                f"{snapshot['dropoff_datetime'].max():%m-%d}",
                "buffer_s": buffer_s,
                "buffer_mb": buffer.stats().nbytes / 1e6,
                **outcome.timings_s,
                "swap": swap_s,
                "champion_rmse": outcome.decision.champion_rmse if outcome.decision else np.nan,
                "challenger_rmse": outcome.decision.challenger_rmse if outcome.decision else np.nan,
            }
        )
    return results


def on_kafka(args, workdir: Path, champion_train, champion_val, events, rides_feb) -> dict:
    """The whole path through a real broker: alert produced -> first prediction of the new model."""
    from kafka import KafkaConsumer

    from retrainer.scheduler import Retrainer
    from retrainer.settings import RetrainerOptions, RetrainerSettings
    from ridestream.events import (
        DriftDetected,
        ModelPromoted,
        RuleFired,
        decode_model_update,
        encode,
    )
    from ridestream.registry import ModelRegistry
    from ridestream.settings import KafkaSettings, MlflowSettings
    from ridestream.stream.admin import create_topics
    from ridestream.stream.clients import build_producer
    from ridestream.training import train_and_register

    kafka = KafkaSettings(bootstrap_servers=args.bootstrap)
    mlflow = MlflowSettings(
        tracking_uri=f"sqlite:///{workdir}/kafka/mlflow.db",
        artifact_location=str(workdir / "kafka" / "mlartifacts"),
    )
    train_and_register(mlflow, champion_train, champion_val, tags={"trigger": "bench"})
    prefix = f"bench-{uuid.uuid4().hex[:8]}."
    settings = RetrainerSettings(
        kafka=kafka,
        mlflow=mlflow,
        topic_prefix=prefix,
        retrainer=RetrainerOptions(group_id=f"{prefix}retrainer"),
    )
    topics = settings.topics
    create_topics(kafka, topics.all())
    producer = build_producer(kafka)
    for event in events:
        producer.send(topics.rides_completed, key=event.key.encode(), value=encode(event))
    producer.flush()

    service = Retrainer(settings)
    stop = threading.Event()
    ready = threading.Event()
    rebuilt: dict[str, float] = {}

    def run() -> None:
        started = time.perf_counter()
        service.start(stop)  # announce the champion, rebuild the buffer, assign alerts
        rebuilt["s"] = time.perf_counter() - started
        ready.set()
        service.serve(stop)

    thread = threading.Thread(target=run, daemon=True)
    thread.start()
    ready.wait(timeout=300)
    updates = KafkaConsumer(
        topics.models_updates,
        **kafka.client_config(),
        group_id=None,
        auto_offset_reset="latest",
    )
    updates.poll(timeout_ms=1_000)  # joined at the end of the topic
    alert = DriftDetected(
        alert_id="bench-alert",
        event_time=datetime(2021, 3, 1),
        window_id="bench-window",
        window_start=datetime(2021, 2, 28),
        model_version="1",
        rules=[RuleFired(rule="quality", value=9.0, threshold=7.0)],
    )
    alert_sent = time.perf_counter()
    producer.send(topics.drift_alerts, key=alert.key.encode(), value=encode(alert))
    producer.flush()
    registry = ModelRegistry(mlflow)
    first_prediction_s = promoted_seen_s = float("nan")
    deadline = time.monotonic() + 300
    while time.monotonic() < deadline:
        found = [
            update
            for records in updates.poll(timeout_ms=500).values()
            for r in records
            if isinstance(update := decode_model_update(r.value), ModelPromoted)
        ]
        drift = [e for e in found if e.reason == "drift"]
        if drift:
            promoted_seen_s = time.perf_counter() - alert_sent
            swap(registry, drift[0].version, rides_feb)
            first_prediction_s = time.perf_counter() - alert_sent
            break
    stop.set()
    thread.join(timeout=120)
    service.close()
    updates.close()
    producer.close()
    outcome = service.outcomes[-1] if service.outcomes else None
    return {
        "rides": len(events),
        "rebuild_s": rebuilt.get("s", float("nan")),
        "promoted_seen_s": promoted_seen_s,
        "first_prediction_s": first_prediction_s,
        "job_s": sum(outcome.timings_s.values()) if outcome else float("nan"),
    }


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--repeat", type=int, default=3, help="offline runs (default 3)")
    parser.add_argument("--bootstrap", help="HOST:PORT of a running broker: also run on Kafka")
    args = parser.parse_args()
    logging.basicConfig(level=logging.WARNING)
    logging.getLogger("kafka").setLevel(logging.ERROR)  # "task ran for 0.2 s" under load
    os.environ.setdefault("MLFLOW_ENABLE_ARTIFACTS_PROGRESS_BAR", "false")

    import mlflow
    import sklearn

    jan, feb = read_month("2021-01"), read_month("2021-02")
    # The buffer's bound in action: the last 14 days of February drop-offs (~30k rides).
    cut = feb["dropoff_datetime"].max() - pd.Timedelta(days=BUFFER_DAYS + 1)
    stream = feb[feb["dropoff_datetime"] >= cut]
    events = drifted_events(stream)
    champion_val = feb[feb["dropoff_datetime"] < cut]

    with tempfile.TemporaryDirectory(prefix="bench-retrainer-") as tmp:
        results = offline(args, Path(tmp), jan, champion_val, events, feb)
        on_broker = (
            on_kafka(args, Path(tmp), jan, champion_val, events, feb) if args.bootstrap else None
        )

    print(
        f"# retrainer: drift alert -> promoted model   ({platform.python_version()}, "
        f"cores={os.cpu_count()}, load average {os.getloadavg()[0]:.1f} at the end)"
    )
    print(
        f"# scikit-learn {sklearn.__version__}, mlflow {mlflow.__version__}, "
        f"pandas {pd.__version__}; champion: green 2021-01, {len(jan):,} rides; buffer: "
        f"green 2021-02, last {BUFFER_DAYS} days of drop-offs, durations x{DRIFT_FACTOR}"
    )
    parts = [
        "buffer_s",
        "split",
        "load_champion",
        "evaluate_champion",
        "train",
        "register",
        "evaluate_challenger",
        "tag",
        "decide_and_publish",
        "swap",
    ]
    print()
    print(f"| part (seconds) | {' | '.join(f'run {i + 1}' for i in range(len(results)))} | best |")
    print(f"|---|{'---|' * (len(results) + 1)}")
    for part in parts:
        values = [r.get(part, float("nan")) for r in results]
        print(f"| {part} | {' | '.join(f'{v:.2f}' for v in values)} | {min(values):.2f} |")
    job = [sum(r.get(p, 0.0) for p in parts[1:-1]) for r in results]
    total = [j + r["swap"] for j, r in zip(job, results, strict=True)]
    print(f"| job (split..publish) | {' | '.join(f'{v:.2f}' for v in job)} | {min(job):.2f} |")
    print(f"| job + swap | {' | '.join(f'{v:.2f}' for v in total)} | {min(total):.2f} |")
    r0 = results[0]
    print()
    print(
        f"buffer: {r0['rides']:,} labelled rides (drop-offs {r0['range']}), "
        f"{r0['buffer_mb']:.1f} MB of arrays; decode+append {r0['rides'] / r0['buffer_s']:,.0f} "
        f"rides/s; champion RMSE {r0['champion_rmse']:.3f} vs challenger "
        f"{r0['challenger_rmse']:.3f} on the same {BUFFER_DAYS * 0.2:.1f}-day hold-out"
    )
    if on_broker:
        print()
        print("| on Kafka (seconds) | value |")
        print("|---|---|")
        print(
            f"| buffer rebuilt from rides.completed ({on_broker['rides']:,} events) | "
            f"{on_broker['rebuild_s']:.2f} |"
        )
        print(f"| alert produced -> ModelPromoted consumed | {on_broker['promoted_seen_s']:.2f} |")
        print(f"| of which the job | {on_broker['job_s']:.2f} |")
        print(
            f"| alert produced -> first prediction of the promoted model | "
            f"{on_broker['first_prediction_s']:.2f} |"
        )
    return 0


if __name__ == "__main__":
    sys.exit(main())
