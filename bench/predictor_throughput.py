"""Predictor benchmarks on a real local broker (not a test: prints a table, asserts nothing).

    python bench/predictor_throughput.py [--bootstrap HOST:PORT] [--rides 200000]
        [--clients kafka-python,confluent]

1. throughput of one predictor process (`python -m predictor`, gbm champion) on pre-produced
   rides, once per Kafka client (`--clients`, RIDESTREAM_KAFKA__CLIENT), each next to that
   client's bare consume -> produce passthrough of the same messages, and a per-record baseline
   (decode one, predict one row, produce one);
2. latency RideRequested produced -> DurationPredicted readable at a steady rate, next to
   the bare passthrough's own latency on the same broker (its floor), each measured after a
   warm-up at that rate (a fresh broker JIT-compiles for its first ~20 s or more: p99 ~90 ms
   in the first 10 s);
3. two predictor processes in one group on a 4-partition topic: shares and completeness.

1 and 2 are also measured with a challenger under live evaluation (a second gbm model under
the `challenger` alias, gate `shadow`): every batch predicted by both, two records a ride.

Without --bootstrap it starts its own Apache Kafka on free ports with its data in a temporary
folder (`ridestream.kafka_broker.temporary_broker`) and stops it at the end. Rides come from
the real TLC files in RIDESTREAM_DATA_DIR (default ../shared/data), repeated with fresh ids
up to --rides.
"""

from __future__ import annotations

import argparse
import os
import platform
import subprocess
import sys
import tempfile
import threading
import time
import uuid
from dataclasses import dataclass
from pathlib import Path
from typing import Any

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))

# -- workers (run as subprocesses of this script) ----------------------------------------------


def confluent_passthrough_worker(bootstrap: str, source: str, target: str, group: str) -> None:
    """Bare confluent-kafka: consume a batch, produce every value unchanged, flush, commit."""
    from confluent_kafka import Consumer, Producer

    consumer = Consumer(
        {"bootstrap.servers": bootstrap, "group.id": group, "enable.auto.commit": False,
         "auto.offset.reset": "earliest"}
    )  # fmt: skip
    consumer.subscribe([source])
    producer = Producer(
        {"bootstrap.servers": bootstrap, "acks": "all", "linger.ms": 5,
         "partitioner": "murmur2_random"}
    )  # fmt: skip
    while True:
        messages = consumer.consume(5_000, 0.5)
        for message in messages:
            if message.error() is None:
                producer.produce(target, message.value(), message.key())
        if messages:
            producer.flush()
            consumer.commit(asynchronous=False)


def passthrough_worker(bootstrap: str, source: str, target: str, group: str) -> None:
    """Bare kafka-python: poll a batch, produce every value unchanged, flush, commit."""
    from kafka import KafkaConsumer, KafkaProducer

    consumer = KafkaConsumer(
        source,
        bootstrap_servers=bootstrap,
        group_id=group,
        enable_auto_commit=False,
        auto_offset_reset="earliest",
        max_poll_records=5_000,
    )
    producer = KafkaProducer(
        bootstrap_servers=bootstrap, acks="all", linger_ms=5, batch_size=256 * 1024
    )
    while True:
        polled = consumer.poll(timeout_ms=500, max_records=5_000)
        for records in polled.values():
            for record in records:
                producer.send(target, key=record.key, value=record.value)
        if polled:
            producer.flush()
            consumer.commit()


def per_record_worker(
    bootstrap: str, source: str, target: str, group: str, tracking_uri: str, model_name: str
) -> None:
    """The naive predictor: for each record decode it, predict one row, produce one message."""
    from kafka import KafkaConsumer, KafkaProducer

    from predictor.predict import ServingModel, predict_rides
    from ridestream.events import RideRequested, encode
    from ridestream.registry import ModelRegistry
    from ridestream.settings import MlflowSettings

    registry = ModelRegistry(MlflowSettings(tracking_uri=tracking_uri, model_name=model_name))
    champion = registry.champion()
    assert champion is not None
    serving = ServingModel(model_name, champion.version, registry.load_model(champion.version))
    consumer = KafkaConsumer(
        source,
        bootstrap_servers=bootstrap,
        group_id=group,
        enable_auto_commit=False,
        auto_offset_reset="earliest",
        max_poll_records=500,
    )
    producer = KafkaProducer(bootstrap_servers=bootstrap, acks="all", linger_ms=5)
    while True:
        polled = consumer.poll(timeout_ms=500, max_records=500)
        for records in polled.values():
            for record in records:
                ride = RideRequested.model_validate_json(record.value)
                (prediction,) = predict_rides([ride], serving)
                producer.send(target, key=record.key, value=encode(prediction))
        if polled:
            producer.flush()
            consumer.commit()


# -- helpers ---------------------------------------------------------------------------------


def load_rides(data_dir: Path, count: int) -> list[Any]:
    """RideRequested events of real green trips (2021-02, 2021-03), repeated to `count`."""
    import pandas as pd

    from ridestream.events import RideRequested
    from ridestream.trips import month_path, read_trips

    frame = pd.concat(
        [read_trips(month_path(data_dir, m)) for m in ("2021-02", "2021-03")], ignore_index=True
    )
    frame = frame[frame["pickup_datetime"].between("2021-01-01", "2021-12-31")]
    rows = list(
        zip(
            pd.DatetimeIndex(frame["pickup_datetime"]).to_pydatetime(),
            frame["PULocationID"].tolist(),
            frame["DOLocationID"].tolist(),
            frame["trip_distance"].clip(0, 999).tolist(),
            strict=True,
        )
    )
    return [
        RideRequested(
            ride_id=f"bench:{n}",
            event_time=rows[n % len(rows)][0],
            pu_location_id=rows[n % len(rows)][1],
            do_location_id=rows[n % len(rows)][2],
            trip_distance=rows[n % len(rows)][3],
        )
        for n in range(count)
    ]


def produce_all(bootstrap: str, topic: str, messages: list[tuple[bytes, bytes]]) -> float:
    from kafka import KafkaProducer

    producer = KafkaProducer(
        bootstrap_servers=bootstrap, acks="all", linger_ms=20, batch_size=512 * 1024
    )
    started = time.perf_counter()
    for key, value in messages:
        producer.send(topic, key=key, value=value)
    producer.flush()
    producer.close()
    return len(messages) / (time.perf_counter() - started)


def committed_total(admin: Any, group: str) -> int:
    try:
        offsets = admin.list_group_offsets(group).get(group, {})
    except Exception:  # group not there yet
        return 0
    return sum(max(o.offset, 0) for o in offsets.values())


def group_members(admin: Any, group: str) -> list[int]:
    """How many partitions each member of `group` holds (empty before it is stable)."""
    try:
        described = admin.describe_groups([group])[group]
    except Exception:  # not there yet
        return []
    if described.get("group_state") != "Stable":
        return []
    return [
        sum(len(a["partitions"]) for a in m["member_assignment"]["assigned_partitions"])
        for m in described["members"]
    ]


def cpu_seconds(pid: int) -> float:
    """User + system CPU seconds of a process, all its threads (Linux /proc)."""
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


@dataclass
class Rate:
    """Rides/s between the first and the last commit, and the worker's CPU per ride."""

    rides_per_s: float
    rides: int
    cpu_us_per_ride: float
    load: float


def measure_rate(
    admin: Any, group: str, total: int, process: subprocess.Popen, timeout_s: float
) -> Rate:
    """Sample `group`'s committed offsets every 0.2 s until `total` rides are committed.

    CPU per ride (the worker's user+system time over the same span) does not depend on what
    else runs on the machine, unlike rides/s: compare it when the load average is high."""
    first: tuple[float, int, float] | None = None
    deadline = time.monotonic() + timeout_s
    done = 0
    while time.monotonic() < deadline:
        done = committed_total(admin, group)
        now = time.monotonic()
        if done and first is None:
            first = (now, done, cpu_seconds(process.pid))
        if done >= total:
            break
        if process.poll() is not None:
            raise RuntimeError(f"worker exited with {process.returncode}")
        time.sleep(0.2)
    load = os.getloadavg()[0]
    if first is None or done <= first[1]:
        return Rate(0.0, done, float("nan"), load)
    rides = done - first[1]
    cpu_us = 1e6 * (cpu_seconds(process.pid) - first[2]) / rides
    return Rate(rides / (time.monotonic() - first[0]), done, cpu_us, load)


def worker(args: list[str], env: dict[str, str]) -> subprocess.Popen:
    return subprocess.Popen(
        [sys.executable, *args],
        cwd=REPO,
        env=env,
        stdout=subprocess.DEVNULL,
        stderr=open(Path(tempfile.gettempdir()) / f"bench-worker-{uuid.uuid4().hex[:6]}.log", "w"),
    )


def stop(process: subprocess.Popen) -> None:
    process.terminate()
    try:
        process.wait(20)
    except subprocess.TimeoutExpired:
        process.kill()
        process.wait()


def percentile(values: list[float], q: float) -> float:
    import numpy as np

    return float(np.percentile(values, q)) if values else float("nan")


@dataclass
class Latency:
    """Milliseconds from a ride produced to its output readable, after the warm-up."""

    rate: float
    p50: float
    p99: float
    max: float
    warmup_p99: float
    seen: str
    load: float


def measure_latency(
    bootstrap: str, admin: Any, topics: Any, group: str, rides: list[Any], args: Any
) -> Latency:
    """Send rides to `topics.rides_requested` at `args.latency_rate` for `args.warmup_s` +
    `args.latency_s`, read `topics.rides_predictions` in a thread, match outputs by key."""
    from kafka import KafkaConsumer, KafkaProducer, TopicPartition

    from ridestream.events import encode

    sent: dict[str, float] = {}
    latencies: list[float] = []
    warmup_latencies: list[float] = []
    measured_from = float("inf")  # perf_counter time the measured rides start
    # The broker answers a fetch as soon as a record arrives: a long fetch_max_wait_ms costs
    # no latency, a short one only floods the broker (and this process) with empty fetches.
    reader = KafkaConsumer(bootstrap_servers=bootstrap)
    partitions = [TopicPartition(topics.rides_predictions, p) for p in range(4)]
    reader.assign(partitions)
    reader.seek_to_end(*partitions)
    for tp in partitions:
        reader.position(tp)
    reading = threading.Event()

    def read() -> None:
        while not reading.is_set():
            for records in reader.poll(timeout_ms=50).values():
                now = time.perf_counter()
                for record in records:
                    ride_id = record.key.decode()
                    if ride_id in sent:
                        latency = 1000 * (now - sent[ride_id])
                        measured = sent[ride_id] >= measured_from
                        (latencies if measured else warmup_latencies).append(latency)

    producer = KafkaProducer(bootstrap_servers=bootstrap, acks="all", linger_ms=1)
    # Wait until the worker answers.
    warm = [(f"warm:{n}".encode(), encode(rides[n].model_copy(update={"ride_id": f"warm:{n}"})))
            for n in range(100)]  # fmt: skip
    for key, value in warm:
        producer.send(topics.rides_requested, key=key, value=value)
    producer.flush()
    deadline = time.monotonic() + 120
    while time.monotonic() < deadline and committed_total(admin, group) < len(warm):
        time.sleep(0.2)
    thread = threading.Thread(target=read, daemon=True)
    thread.start()
    tick_s = 0.01
    per_tick = max(1, int(args.latency_rate * tick_s))
    started = time.perf_counter()
    measured_from = started + args.warmup_s
    n = 0
    while time.perf_counter() - measured_from < args.latency_s:
        pause = started + n * tick_s - time.perf_counter()
        if pause > 0:
            time.sleep(pause)
        for k in range(per_tick):
            ride = rides[(n * per_tick + k) % len(rides)]
            ride_id = f"lat:{n}:{k}"
            sent[ride_id] = time.perf_counter()
            producer.send(
                topics.rides_requested,
                key=ride_id.encode(),
                value=encode(ride.model_copy(update={"ride_id": ride_id})),
            )
        n += 1
    producer.flush()
    time.sleep(2)
    reading.set()
    thread.join()
    reader.close()
    producer.close()
    return Latency(
        rate=sum(1 for t in sent.values() if t >= measured_from) / args.latency_s,
        p50=percentile(latencies, 50),
        p99=percentile(latencies, 99),
        max=max(latencies, default=float("nan")),
        warmup_p99=percentile(warmup_latencies, 99),
        seen=f"{len(latencies) + len(warmup_latencies):,} / {len(sent):,}",
        load=os.getloadavg()[0],
    )


# -- the benchmark ---------------------------------------------------------------------------


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--bootstrap", help="an existing broker (default: start one)")
    parser.add_argument("--rides", type=int, default=200_000, help="rides for throughput")
    parser.add_argument("--per-record-rides", type=int, default=3_000)
    parser.add_argument("--latency-rate", type=int, default=2_000, help="rides/s")
    parser.add_argument("--latency-s", type=float, default=60.0, help="measured seconds")
    parser.add_argument(
        "--warmup-s", type=float, default=20.0, help="seconds at the rate before measuring"
    )
    parser.add_argument(
        "--parts", default="throughput,latency,pair", help="comma list: throughput,latency,pair"
    )
    parser.add_argument(
        "--clients",
        default="kafka-python,confluent",
        help="comma list of Kafka clients to measure (RIDESTREAM_KAFKA__CLIENT), interleaved",
    )
    parser.add_argument(
        "--worker",
        choices=("passthrough", "confluent-passthrough", "per-record"),
        help=argparse.SUPPRESS,
    )
    parser.add_argument("--source", help=argparse.SUPPRESS)
    parser.add_argument("--target", help=argparse.SUPPRESS)
    parser.add_argument("--group", help=argparse.SUPPRESS)
    parser.add_argument("--tracking-uri", help=argparse.SUPPRESS)
    parser.add_argument("--model-name", help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.worker in ("passthrough", "confluent-passthrough"):
        bare = passthrough_worker if args.worker == "passthrough" else confluent_passthrough_worker
        bare(args.bootstrap, args.source, args.target, args.group)
        return 0
    clients = args.clients.split(",")
    if unknown := set(clients) - {"kafka-python", "confluent"}:
        parser.error(f"--clients: unknown client(s) {', '.join(sorted(unknown))}")
    if args.worker == "per-record":
        per_record_worker(
            args.bootstrap, args.source, args.target, args.group, args.tracking_uri, args.model_name
        )
        return 0

    import logging

    logging.basicConfig(level=logging.WARNING)

    from ridestream import kafka_broker
    from ridestream.settings import KafkaSettings

    with kafka_broker.temporary_broker(args.bootstrap) as bootstrap:
        return run_bench(args, bootstrap, KafkaSettings(bootstrap_servers=bootstrap))


def run_bench(args: argparse.Namespace, bootstrap: str, kafka: Any) -> int:
    import kafka as kafka_python
    import numpy as np
    import pandas as pd
    import sklearn
    from kafka import KafkaAdminClient, KafkaConsumer

    from ridestream.events import encode
    from ridestream.registry import CHALLENGER, TAG_GATE, ModelRegistry
    from ridestream.settings import MlflowSettings
    from ridestream.stream.admin import create_topics
    from ridestream.topics import Topics
    from ridestream.training import train_and_register
    from ridestream.trips import month_path, read_trips

    data_dir = Path(os.environ.get("RIDESTREAM_DATA_DIR", REPO.parent / "shared" / "data"))
    work = Path(tempfile.mkdtemp(prefix="predictor-bench-"))
    mlflow = MlflowSettings(
        tracking_uri=f"sqlite:///{work}/mlflow.db", artifact_location=str(work / "artifacts")
    )
    print("training the gbm champion on green 2021-01 ...", flush=True)
    jan, feb = (read_trips(month_path(data_dir, m)) for m in ("2021-01", "2021-02"))
    champion = train_and_register(mlflow, jan, feb, "gbm", {"trigger": "bench"}, True)
    print(f"  version {champion.info.version}, val RMSE {champion.metrics['val_rmse']:.3f}")
    # The shadow model: another gbm (trained on February), under the challenger alias only
    # while a "with shadow" row runs.
    challenger = train_and_register(mlflow, feb, jan, "gbm", {"trigger": "bench"}, False)
    registry = ModelRegistry(mlflow)
    registry.set_version_tags(challenger.info.version, {TAG_GATE: "shadow"})

    def shadowing(on: bool) -> None:
        if on:
            registry.set_alias(CHALLENGER, challenger.info.version)
        else:
            registry.delete_alias(CHALLENGER)

    rides = load_rides(data_dir, args.rides)
    messages = [(r.key.encode(), encode(r)) for r in rides]
    mean_bytes = sum(len(v) for _, v in messages) / len(messages)
    admin = KafkaAdminClient(bootstrap_servers=bootstrap)
    env = {
        **os.environ,
        "RIDESTREAM_KAFKA__BOOTSTRAP_SERVERS": bootstrap,
        "RIDESTREAM_MLFLOW__TRACKING_URI": mlflow.tracking_uri,
        "RIDESTREAM_MLFLOW__ARTIFACT_LOCATION": mlflow.artifact_location,
        "RIDESTREAM_MLFLOW__MODEL_NAME": mlflow.model_name,
        "RIDESTREAM_LOG_LEVEL": "INFO",
    }
    results: list[tuple[str, str]] = []
    rates: dict[str, Rate] = {}
    clients = args.clients.split(",")
    parts = set(args.parts.split(","))

    def fresh_topics() -> Topics:
        topics = Topics(f"bench-{uuid.uuid4().hex[:6]}.")
        create_topics(kafka, topics.all_with_dead_letters(), partitions=4)
        return topics

    if "throughput" in parts:
        # 1. Throughput on the same pre-produced messages.
        source = fresh_topics()
        produce_rate = produce_all(bootstrap, source.rides_requested, messages)
        print(f"produced {len(messages):,} rides ({mean_bytes:.0f} B) at {produce_rate:,.0f}/s")

        def throughput(name: str, argv: list[str], group: str, total: int, extra: dict) -> Rate:
            process = worker(argv, {**env, **extra})
            try:
                rate = measure_rate(admin, group, total, process, timeout_s=600)
            finally:
                stop(process)
            print(
                f"  {name}: {rate.rides_per_s:,.0f} rides/s, {rate.cpu_us_per_ride:.0f} us CPU "
                f"per ride ({rate.rides:,} rides, load {rate.load:.1f})",
                flush=True,
            )
            return rate

        out = fresh_topics()
        for client in clients:
            worker_name = "passthrough" if client == "kafka-python" else "confluent-passthrough"
            group = f"passthrough-{uuid.uuid4().hex[:6]}"
            bare = throughput(
                f"bare {client} passthrough",
                [__file__, "--worker", worker_name, "--bootstrap", bootstrap, "--group", group,
                 "--source", source.rides_requested, "--target", out.rides_predictions],
                group, len(messages), {},
            )  # fmt: skip
            group = f"predictor-{uuid.uuid4().hex[:6]}"
            # The predictor reads <prefix>rides.requested: the source prefix, outputs beside.
            ours = throughput(
                f"predictor on {client} (python -m predictor)",
                ["-m", "predictor"],
                group,
                len(messages),
                {
                    "RIDESTREAM_TOPIC_PREFIX": source.prefix,
                    "RIDESTREAM_PREDICTOR__GROUP_ID": group,
                    "RIDESTREAM_KAFKA__CLIENT": client,
                },
            )
            results += [
                (f"{client}: bare passthrough (rides/s)", f"{bare.rides_per_s:,.0f}"),
                (f"{client}: predictor, 1 process (rides/s)", f"{ours.rides_per_s:,.0f}"),
                (
                    f"{client}: CPU us per ride: passthrough / predictor",
                    f"{bare.cpu_us_per_ride:.1f} / {ours.cpu_us_per_ride:.1f}",
                ),
                (f"{client}: load average during each", f"{bare.load:.1f} / {ours.load:.1f}"),
            ]
            rates[client] = ours
        # The shadow model's cost, on the first client measured.
        plain = rates[clients[0]]
        group = f"shadow-{uuid.uuid4().hex[:6]}"
        shadowing(True)
        try:
            shadow = throughput(
                f"predictor on {clients[0]} with a shadow model",
                ["-m", "predictor"],
                group,
                len(messages),
                {
                    "RIDESTREAM_TOPIC_PREFIX": source.prefix,
                    "RIDESTREAM_PREDICTOR__GROUP_ID": group,
                    "RIDESTREAM_KAFKA__CLIENT": clients[0],
                },
            )
        finally:
            shadowing(False)
        results += [
            (
                f"{clients[0]}: predictor with a shadow model (rides/s)",
                f"{shadow.rides_per_s:,.0f}",
            ),
            (
                "with shadow / without (rides/s; CPU us per ride)",
                f"{shadow.rides_per_s / plain.rides_per_s:.0%}; "
                f"{shadow.cpu_us_per_ride:.0f} / {plain.cpu_us_per_ride:.0f}",
            ),
        ]
        group = f"per-record-{uuid.uuid4().hex[:6]}"
        naive = throughput(
            "per-record baseline (kafka-python)",
            [__file__, "--worker", "per-record", "--bootstrap", bootstrap, "--group", group,
             "--source", source.rides_requested, "--target", out.rides_predictions,
             "--tracking-uri", mlflow.tracking_uri, "--model-name", mlflow.model_name],
            group, args.per_record_rides, {},
        )  # fmt: skip
        results.append(("per-record baseline (rides/s)", f"{naive.rides_per_s:,.0f}"))
        if len(rates) == 2:
            results.append(
                (
                    "predictor: confluent / kafka-python (rides/s)",
                    f"{rates['confluent'].rides_per_s / rates['kafka-python'].rides_per_s:.2f}x",
                )
            )

    if "latency" in parts:
        # 2. Latency at a steady rate: the bare passthrough first (it also warms the broker
        # up), then the predictor, each on fresh topics, each warmed up at the rate.
        def latency(name: str, argv: list[str], client: str) -> Latency:
            topics = fresh_topics()
            group = f"latency-{uuid.uuid4().hex[:6]}"
            process = worker(
                [a.format(source=topics.rides_requested, target=topics.rides_predictions,
                          group=group) for a in argv],
                {**env, "RIDESTREAM_TOPIC_PREFIX": topics.prefix,
                 "RIDESTREAM_PREDICTOR__GROUP_ID": group, "RIDESTREAM_KAFKA__CLIENT": client},
            )  # fmt: skip
            try:
                measured = measure_latency(bootstrap, admin, topics, group, rides, args)
            finally:
                stop(process)
            print(
                f"  latency, {name}: p50 {measured.p50:.1f} ms, p99 {measured.p99:.1f} ms "
                f"(warm-up p99 {measured.warmup_p99:.1f} ms, load {measured.load:.1f})",
                flush=True,
            )
            return measured

        for client in clients:
            worker_name = "passthrough" if client == "kafka-python" else "confluent-passthrough"
            bare_latency = latency(
                f"bare {client} passthrough",
                [__file__, "--worker", worker_name, "--bootstrap", bootstrap, "--group", "{group}",
                 "--source", "{source}", "--target", "{target}"],
                client,
            )  # fmt: skip
            ours_latency = latency(f"predictor on {client}", ["-m", "predictor"], client)
            results += [
                (
                    f"latency at {ours_latency.rate:,.0f} rides/s, {args.latency_s:.0f} s after "
                    f"{args.warmup_s:.0f} s of warm-up: {client} predictor p50 / p99 (ms)",
                    f"{ours_latency.p50:.1f} / {ours_latency.p99:.1f}",
                ),
                (
                    f"latency, bare {client} passthrough of the same rides: p50 / p99 (ms)",
                    f"{bare_latency.p50:.1f} / {bare_latency.p99:.1f}",
                ),
                (
                    f"{client}: latency during the warm-up: predictor / passthrough p99 (ms)",
                    f"{ours_latency.warmup_p99:.1f} / {bare_latency.warmup_p99:.1f}",
                ),
                (f"{client}: latency max: predictor (ms)", f"{ours_latency.max:.1f}"),
                (f"{client}: latency: predictions seen / sent", ours_latency.seen),
                (
                    f"{client}: load average after each",
                    f"{bare_latency.load:.1f} / {ours_latency.load:.1f}",
                ),
            ]
        shadowing(True)
        try:
            shadow_latency = latency(
                f"predictor on {clients[0]} with a shadow model", ["-m", "predictor"], clients[0]
            )
        finally:
            shadowing(False)
        results.append(
            (
                f"latency, predictor on {clients[0]} with a shadow model: p50 / p99 (ms)",
                f"{shadow_latency.p50:.1f} / {shadow_latency.p99:.1f}",
            )
        )

    if "pair" in parts:
        # 3. Two predictors in one group share a 4-partition topic.
        topics = fresh_topics()
        group = f"pair-{uuid.uuid4().hex[:6]}"
        pair_env = {
            **env,
            "RIDESTREAM_TOPIC_PREFIX": topics.prefix,
            "RIDESTREAM_PREDICTOR__GROUP_ID": group,
        }
        pair = [worker(["-m", "predictor"], pair_env) for _ in range(2)]
        try:
            deadline = time.monotonic() + 120
            members: list[Any] = []
            while time.monotonic() < deadline:
                members = group_members(admin, group)
                if len(members) == 2 and all(members):
                    break
                time.sleep(0.5)
            count = min(len(messages), 100_000)
            produce_all(bootstrap, topics.rides_requested, messages[:count])
            # Waits until every ride is committed. Its rate is not printed: the predictors
            # read while produce_all writes, so it measured the producer (7,500-28,000/s).
            measure_rate(admin, group, count, pair[0], timeout_s=600)
            shares = group_members(admin, group)
        finally:
            for process in pair:
                stop(process)
        reader = KafkaConsumer(
            topics.rides_predictions,
            bootstrap_servers=bootstrap,
            auto_offset_reset="earliest",
            consumer_timeout_ms=5_000,
        )
        seen: dict[str, int] = {}
        per_partition: dict[int, int] = {}
        for record in reader:
            seen[record.key.decode()] = seen.get(record.key.decode(), 0) + 1
            per_partition[record.partition] = per_partition.get(record.partition, 0) + 1
        reader.close()
        expected = {key.decode() for key, _ in messages[:count]}
        missing = len(expected - set(seen))
        doubled = sum(1 for v in seen.values() if v > 1)
        results += [
            ("2 predictors, 1 group: partitions per member", str(shares)),
            (
                "2 predictors: rides predicted / missing / doubled",
                f"{len(seen):,} / {missing} / {doubled}",
            ),
            ("2 predictors: predictions per partition", str(dict(sorted(per_partition.items())))),
        ]
    admin.close()

    print()
    print(
        f"predictor benchmark: {os.cpu_count()} cores (load {os.getloadavg()[0]:.1f}), "
        f"Python {platform.python_version()}, "
        f"kafka-python {kafka_python.__version__}, scikit-learn {sklearn.__version__}, "
        f"pandas {pd.__version__}, numpy {np.__version__}, Apache Kafka at {bootstrap}"
    )
    print(
        f"{len(messages):,} rides of ~{mean_bytes:.0f} B, 4 partitions, gbm model "
        f"(val RMSE {champion.metrics['val_rmse']:.3f}), max_poll_records 5000"
    )
    width = max(len(name) for name, _ in results)
    print(f"{'measure':<{width}}  value")
    for name, value in results:
        print(f"{name:<{width}}  {value}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
