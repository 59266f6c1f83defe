"""The monitor end to end on a real broker: rides/s through StreamLoop with 5,000-ride windows.

Real rides (green 2021-01 by default, predictions by a fixed function of the distance) are put
on rides.predictions / rides.completed first; then `monitor.service.run` (the same wiring as
`ridestream monitor`, snapshots off, reference built here) reads the backlog: fetch, pydantic
decode, join, windows, drift, quality, produce, commit. Timed from the first to the last record.
Before it, a bare kafka-python consumer polls and commits the same records and nothing else:
the ceiling any monitor on this client reaches on this machine.

Run: python bench/monitor_end_to_end.py [--months 2021-01] [--bootstrap HOST:PORT]
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
    args = parser.parse_args()

    import logging

    logging.basicConfig(level=logging.WARNING)
    import kafka
    import numpy as np
    import pandas as pd
    from kafka import KafkaProducer
    from monitor_throughput import build_records, synthetic_reference

    from monitor.service import run
    from monitor.settings import MonitorOptions, MonitorSettings
    from ridestream import kafka_broker
    from ridestream.settings import KafkaSettings
    from ridestream.stream.admin import create_topics
    from ridestream.topics import Topics

    with kafka_broker.temporary_broker(args.bootstrap) as bootstrap:
        kafka_settings = KafkaSettings(bootstrap_servers=bootstrap)
        topics = Topics(f"bench-{uuid.uuid4().hex[:6]}.")
        records, rides = build_records(args.months.split(","))
        create_topics(kafka_settings, topics.all(), partitions=4)
        names = {"p": topics.rides_predictions, "c": topics.rides_completed}
        producer = KafkaProducer(
            **kafka_settings.client_config(), linger_ms=50, batch_size=1_048_576
        )
        for topic, partition, value in records:
            producer.send(names[topic], value=value, partition=partition)
        producer.flush()
        producer.close()

        bare_seconds = bare_consume(kafka_settings, list(names.values()), len(records))
        reference = synthetic_reference()
        settings = MonitorSettings(
            kafka=kafka_settings,
            topic_prefix=topics.prefix,
            monitor=MonitorOptions(
                group_id="bench-" + topics.prefix, window_rides=args.window_rides, snapshots=False
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
            if seen["polled"] >= len(records):
                stop.set()

        started = time.perf_counter()
        thread = threading.Thread(
            target=run, args=(settings, lambda version: reference, stop, on_batch), daemon=True
        )
        thread.start()
        thread.join(1_800)
        seconds = time.perf_counter() - seen["first"]
        cpu_seconds = time.process_time() - seen["cpu_first"]
        startup = seen["first"] - started

    print(f"monitor end to end on Kafka  (cores: {os.cpu_count()}, load: {os.getloadavg()[0]:.1f})")
    print(
        f"python {platform.python_version()}, kafka-python {kafka.__version__}, "
        f"numpy {np.__version__}, pandas {pd.__version__}"
    )
    print(f"backlog: {rides:,} rides ({args.months}) = {len(records):,} records, 8 partitions")
    print(
        f"{'windows':>10} | {'startup s':>9} | {'seconds':>8} | {'rides/s':>8} | "
        f"{'rides/CPU s':>11} | "
        f"{'outputs':>7}"
    )
    print(
        f"{f'{args.window_rides} rides':>10} | {startup:>9.1f} | {seconds:>8.1f} | "
        f"{rides / seconds:>8,.0f} | {rides / cpu_seconds:>11,.0f} | {seen['produced']:>7}"
    )
    print(
        f"bare kafka-python consumer of the same records (poll, commit, nothing else): "
        f"{rides / bare_seconds:,.0f} rides/s; the monitor does {bare_seconds / seconds:.0%} of it"
    )
    return 0


def bare_consume(kafka_settings, topics: list[str], total: int) -> float:
    """Seconds a bare kafka-python consumer takes to poll and commit `total` records of
    `topics` (from its first record): the client's own limit for the monitor."""
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


if __name__ == "__main__":
    sys.exit(main())
