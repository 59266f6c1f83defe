"""The monitor end to end on a real broker: rides/s through StreamLoop with 5,000-ride windows.

Real rides (green 2021-01 by default, predictions by a fixed function of the distance) are put
on rides.predictions / rides.completed first; then `monitor.service.run` (the same wiring as
`ridestream monitor`, snapshots off, reference built here) reads the backlog: fetch, pydantic
decode, join, windows, drift, quality, produce, commit. Timed from the first to the last record.
Before it, a bare consumer of the same client polls and commits the same records and nothing
else: the ceiling any monitor on that client reaches on this machine. One row per Kafka client
(`--clients`, RIDESTREAM_KAFKA__CLIENT), each monitor in its own consumer group.

Run: python bench/monitor_end_to_end.py [--months 2021-01] [--bootstrap HOST:PORT]
         [--clients kafka-python,confluent]
Without --bootstrap it starts its own Apache Kafka from the jars on free loopback ports, data
in a temporary folder (`ridestream.kafka_broker.temporary_broker`), and stops it at the end.
No timing is asserted anywhere.
"""

from __future__ import annotations

import argparse
import os
import platform
import sys
import threading
import time
import uuid
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "bench"))
sys.path.insert(0, str(ROOT))


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--months", default="2021-01")
    parser.add_argument("--bootstrap", help="an already running broker (default: start one)")
    parser.add_argument("--window-rides", type=int, default=5000)
    parser.add_argument(
        "--clients",
        default="kafka-python,confluent",
        help="comma list of Kafka clients to measure (RIDESTREAM_KAFKA__CLIENT), one row each",
    )
    args = parser.parse_args()
    clients = args.clients.split(",")
    if unknown := set(clients) - {"kafka-python", "confluent"}:
        parser.error(f"--clients: unknown client(s) {', '.join(sorted(unknown))}")

    import logging

    logging.basicConfig(level=logging.WARNING)
    import kafka
    import numpy as np
    import pandas as pd
    from kafka import KafkaProducer
    from monitor_throughput import build_records, synthetic_reference

    from ridestream import kafka_broker
    from ridestream.settings import KafkaSettings
    from ridestream.stream.admin import create_topics
    from ridestream.topics import Topics

    with kafka_broker.temporary_broker(args.bootstrap) as bootstrap:
        kafka_settings = KafkaSettings(bootstrap_servers=bootstrap)
        records, rides = build_records(args.months.split(","))
        reference = synthetic_reference()
        rows = []
        for client in clients:
            # Topics of each client's own: a monitor resumes after the windows already
            # published on drift.windows, so a second run on the same topics would publish none.
            topics = Topics(f"bench-{uuid.uuid4().hex[:6]}.")
            create_topics(kafka_settings, topics.all(), partitions=4)
            names = {"p": topics.rides_predictions, "c": topics.rides_completed}
            producer = KafkaProducer(
                **kafka_settings.client_config(), linger_ms=50, batch_size=1_048_576
            )
            for topic, partition, value in records:
                producer.send(names[topic], value=value, partition=partition)
            producer.flush()
            producer.close()

            client_settings = kafka_settings.model_copy(update={"client": client})
            bare_seconds = bare_consume(client_settings, list(names.values()), len(records))
            measured = measure_monitor(
                client_settings, topics, reference, args.window_rides, len(records)
            )
            rows.append((client, bare_seconds, *measured))

    print(f"monitor end to end on Kafka  (cores: {os.cpu_count()}, load: {os.getloadavg()[0]:.1f})")
    print(
        f"python {platform.python_version()}, kafka-python {kafka.__version__}, "
        f"confluent-kafka {confluent_version()}, numpy {np.__version__}, pandas {pd.__version__}"
    )
    print(f"backlog: {rides:,} rides ({args.months}) = {len(records):,} records, 8 partitions")
    print(
        f"{'client':>12} | {'windows':>11} | {'startup s':>9} | {'seconds':>8} | "
        f"{'rides/s':>8} | {'rides/CPU s':>11} | {'outputs':>7} | {'bare rides/s':>12} | "
        f"{'of bare':>7}"
    )
    for client, bare_seconds, startup, seconds, cpu_seconds, produced in rows:
        print(
            f"{client:>12} | {f'{args.window_rides} rides':>11} | {startup:>9.1f} | "
            f"{seconds:>8.1f} | {rides / seconds:>8,.0f} | {rides / cpu_seconds:>11,.0f} | "
            f"{produced:>7} | {rides / bare_seconds:>12,.0f} | {bare_seconds / seconds:>7.0%}"
        )
    print(
        "bare: the client's own consumer of the same records (poll, commit, nothing else), "
        "the ceiling any monitor on that client reaches on this machine"
    )
    return 0


def confluent_version() -> str:
    try:
        import confluent_kafka
    except ImportError:
        return "not installed"
    return str(confluent_kafka.__version__)


def measure_monitor(
    kafka_settings, topics, reference, window_rides: int, total: int
) -> tuple[float, float, float, int]:
    """Run the monitor (`monitor.service.run`, its own group) over the backlog: startup
    seconds, seconds and CPU seconds from its first record to the last, outputs produced."""
    from monitor.service import run
    from monitor.settings import MonitorOptions, MonitorSettings

    settings = MonitorSettings(
        kafka=kafka_settings,
        topic_prefix=topics.prefix,
        monitor=MonitorOptions(
            group_id=f"bench-{uuid.uuid4().hex[:6]}", window_rides=window_rides, snapshots=False
        ),
    )
    stop = threading.Event()
    seen = {"polled": 0, "produced": 0, "first": 0.0, "cpu_first": 0.0}

    def on_batch(batch) -> None:
        if batch.polled and not seen["first"]:
            seen["first"] = time.perf_counter() - batch.seconds
            seen["cpu_first"] = time.process_time()
        seen["polled"] += batch.polled
        seen["produced"] += batch.produced
        if seen["polled"] >= total:
            stop.set()

    started = time.perf_counter()
    thread = threading.Thread(
        target=run, args=(settings, lambda version: reference, stop, on_batch), daemon=True
    )
    thread.start()
    thread.join(1_800)
    seconds = time.perf_counter() - seen["first"]
    cpu_seconds = time.process_time() - seen["cpu_first"]
    return seen["first"] - started, seconds, cpu_seconds, int(seen["produced"])


def bare_consume(kafka_settings, topics: list[str], total: int) -> float:
    """Seconds a bare consumer of the settings' client takes to poll and commit `total` records
    of `topics` (from its first record): the client's own limit for the monitor."""
    if kafka_settings.client == "confluent":
        return _bare_confluent_consume(kafka_settings, topics, total)
    from kafka import KafkaConsumer

    consumer = KafkaConsumer(
        *topics,
        **kafka_settings.client_config(),
        group_id=f"bare-{uuid.uuid4().hex[:6]}",
        enable_auto_commit=False,
        auto_offset_reset="earliest",
        max_partition_fetch_bytes=1_048_576,
    )
    seen, first = 0, 0.0
    try:
        while seen < total:
            polled = consumer.poll(timeout_ms=500, max_records=5_000)
            if polled and not first:
                first = time.perf_counter()
            seen += sum(len(batch) for batch in polled.values())
            if polled:
                consumer.commit()
        return time.perf_counter() - first
    finally:
        consumer.close()


def _bare_confluent_consume(kafka_settings, topics: list[str], total: int) -> float:
    from confluent_kafka import Consumer

    consumer = Consumer(
        {
            "bootstrap.servers": kafka_settings.bootstrap_servers,
            "group.id": f"bare-{uuid.uuid4().hex[:6]}",
            "enable.auto.commit": False,
            "auto.offset.reset": "earliest",
        }
    )
    consumer.subscribe(topics)
    seen, first = 0, 0.0
    try:
        while seen < total:
            messages = consumer.consume(5_000, 0.5)
            if messages and not first:
                first = time.perf_counter()
            seen += sum(1 for m in messages if m.error() is None)
            if messages:
                consumer.commit(asynchronous=False)
        return time.perf_counter() - first
    finally:
        consumer.close()


if __name__ == "__main__":
    sys.exit(main())
