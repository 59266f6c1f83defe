"""Benchmark the replay: throughput at --speed max against a bare producer of each client
(kafka-python, confluent-kafka) sending the same bytes, and event-time pacing at --speed 60
over a minute. Real broker, one process.

    python bench/producer_replay.py                      # both, a broker is started if needed
    python bench/producer_replay.py --only throughput --trials 5
    python bench/producer_replay.py --bootstrap 127.0.0.1:19092 --only pacing --pacing-s 60

Modes of the throughput table (each on its own fresh topics, trials alternate):
  replay (direct append)  `ridestream replay` as shipped: read, validate, merge, encode, send
  replay (plain send)     the same with RIDESTREAM_PRODUCER__DIRECT_APPEND=false
  bare send()             KafkaProducer.send(topic, key, value) of the pre-encoded events + flush
  bare send(partition=)   the same with the partitions precomputed (no per-key murmur2 in Python)
  replay (confluent)      the replay with RIDESTREAM_KAFKA__CLIENT=confluent (librdkafka)
  bare confluent produce() confluent_kafka.Producer.produce(topic, value, key) + flush
(`--clients kafka-python` or `--clients confluent` measures one client's rows only.)
Prints a table; asserts nothing.
"""

from __future__ import annotations

import argparse
import os
import platform
import statistics
import sys
import threading
import time
import uuid
from datetime import datetime
from pathlib import Path

import kafka
import numpy as np
import pydantic

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))

from producer.replay import (  # noqa: E402
    Encoded,
    ReplayOptions,
    ReplayStats,
    format_event_time,
    replay,
)
from producer.service import run  # noqa: E402
from producer.settings import ProducerOptions, ProducerSettings  # noqa: E402
from producer.sink import KafkaSink  # noqa: E402
from ridestream import kafka_broker  # noqa: E402
from ridestream.settings import BrokerSettings, KafkaSettings  # noqa: E402
from ridestream.stream.admin import create_topics  # noqa: E402
from ridestream.stream.clients import build_producer  # noqa: E402
from ridestream.stream.fastpath import partitions_for_keys  # noqa: E402
from ridestream.trips import iter_trip_batches  # noqa: E402

DATA_DIR = Path(os.environ.get("RIDESTREAM_TEST_DATA_DIR", REPO.parent / "shared" / "data"))


def _settings(bootstrap: str, client: str = "kafka-python", **producer: object) -> ProducerSettings:
    return ProducerSettings(
        kafka=KafkaSettings(bootstrap_servers=bootstrap, client=client),  # type: ignore[arg-type]
        topic_prefix=f"bench-{uuid.uuid4().hex[:8]}.",
        producer=ProducerOptions(**producer),  # type: ignore[arg-type]
    )


def encoded_events(path: Path) -> list[tuple[int, bytes, bytes]]:
    """Every event the replay would send for `path`, in order (no Kafka)."""
    out: list[tuple[int, bytes, bytes]] = []

    def collect(encoded: Encoded, start: int, stop: int) -> None:
        out.extend(
            zip(
                encoded.kinds[start:stop],
                encoded.keys[start:stop],
                encoded.values[start:stop],
                strict=True,
            )
        )

    replay(iter_trip_batches(path), collect, ReplayOptions())
    return out


def bare_send(
    bootstrap: str, events: list[tuple[int, bytes, bytes]], partitions: list[int] | None = None
) -> float:
    """Seconds for a bare KafkaProducer (same config as the replay) to send and flush them.

    With `partitions` (precomputed outside the clock) send() skips kafka-python's murmur2.
    """
    settings = _settings(bootstrap)
    names = (settings.topics.rides_requested, settings.topics.rides_completed)
    create_topics(settings.kafka, names, partitions=settings.broker.partitions)
    knobs = settings.producer
    producer = build_producer(
        settings.kafka, linger_ms=knobs.linger_ms, batch_size=knobs.batch_size
    )
    try:
        for name in names:
            producer.partitions_for(name)  # metadata before the clock starts, as in the replay
        send = producer.send
        started = time.perf_counter()
        if partitions is None:
            for kind, key, value in events:
                send(names[kind], key=key, value=value)
        else:
            for (kind, key, value), partition in zip(events, partitions, strict=True):
                send(names[kind], key=key, value=value, partition=partition)
        producer.flush()
        return time.perf_counter() - started
    finally:
        producer.close()


def bare_produce(bootstrap: str, events: list[tuple[int, bytes, bytes]]) -> float:
    """Seconds for a bare confluent-kafka Producer (the replay's configuration, translated) to
    produce and flush them: librdkafka partitions the keys itself (murmur2_random)."""
    import confluent_kafka

    from ridestream.stream.client_config import ADAPTER_KEYS, librdkafka_config, producer_config

    settings = _settings(bootstrap)
    names = (settings.topics.rides_requested, settings.topics.rides_completed)
    create_topics(settings.kafka, names, partitions=settings.broker.partitions)
    knobs = settings.producer
    config = producer_config(
        settings.kafka,
        transactional_id=None,
        linger_ms=knobs.linger_ms,
        batch_size=knobs.batch_size,
    )
    producer = confluent_kafka.Producer(
        librdkafka_config({k: v for k, v in config.items() if k not in ADAPTER_KEYS}, "producer")
    )
    for name in names:
        producer.list_topics(name, timeout=10)  # metadata before the clock starts
    produce = producer.produce
    started = time.perf_counter()
    for kind, key, value in events:
        try:
            produce(names[kind], value, key)
        except BufferError:  # the queue is full: serve delivery reports, then retry
            producer.poll(0.05)
            produce(names[kind], value, key)
    producer.flush()
    return time.perf_counter() - started


def replay_once(
    bootstrap: str, path: Path, direct_append: bool, client: str = "kafka-python"
) -> ReplayStats:
    """One `ridestream replay --speed max` of `path`, in this process."""
    stats, sink = run(
        _settings(bootstrap, client, direct_append=direct_append),
        [path],
        ReplayOptions(),
        progress=False,
    )
    assert sink.failed == 0, f"{sink.failed} sends failed"
    return stats


def throughput(bootstrap: str, path: Path, trials: int, clients: list[str]) -> None:
    events = encoded_events(path)
    size = sum(len(k) + len(v) for _, k, v in events)
    rates: dict[str, list[float]] = {}
    if "kafka-python" in clients:
        rates.update(
            {
                "replay (direct append)": [],
                "replay (plain send)": [],
                "bare send()": [],
                "bare send(partition=)": [],
            }
        )
    if "confluent" in clients:
        rates.update({"replay (confluent)": [], "bare confluent produce()": []})
    count = BrokerSettings().partitions  # what create_topics gives the bench topics
    partitions = partitions_for_keys([key for _, key, _ in events], count).tolist()
    for trial in range(trials):
        if "kafka-python" in clients:
            stats = replay_once(bootstrap, path, direct_append=True)
            rates["replay (direct append)"].append(stats.events_per_s)
            stats = replay_once(bootstrap, path, direct_append=False)
            rates["replay (plain send)"].append(stats.events_per_s)
            rates["bare send()"].append(len(events) / bare_send(bootstrap, events))
            seconds = bare_send(bootstrap, events, partitions)
            rates["bare send(partition=)"].append(len(events) / seconds)
        if "confluent" in clients:
            stats = replay_once(bootstrap, path, direct_append=True, client="confluent")
            rates["replay (confluent)"].append(stats.events_per_s)
            rates["bare confluent produce()"].append(len(events) / bare_produce(bootstrap, events))
        print(
            f"  trial {trial + 1}/{trials}: "
            + ", ".join(f"{mode} {values[-1]:,.0f}" for mode, values in rates.items()),
            file=sys.stderr,
        )
    baseline = "bare send()" if "kafka-python" in clients else "bare confluent produce()"
    bare = statistics.median(rates[baseline])
    print(
        f"\nthroughput, --speed max: {path.name}, {len(events):,} events, "
        f"{size / len(events):.0f} bytes key+value on average, {trials} trials"
    )
    print(f"{'mode':<24} {'median ev/s':>12} {'best ev/s':>12} {'vs ' + baseline:>28}")
    for mode, values in rates.items():
        median = statistics.median(values)
        print(f"{mode:<24} {median:>12,.0f} {max(values):>12,.0f} {median / bare:>27.2f}x")


def pacing(bootstrap: str, path: Path, speed: float, seconds: float, start: str) -> None:
    sent: list[tuple[float, np.ndarray]] = []  # (wall s at send, event times µs of the slice)
    original = KafkaSink.__call__

    def recording(sink: KafkaSink, encoded: Encoded, begin: int, end: int) -> None:
        sent.append((time.monotonic(), encoded.time_us[begin:end].copy()))
        original(sink, encoded, begin, end)

    stop = threading.Event()
    timer = threading.Timer(seconds, stop.set)
    KafkaSink.__call__ = recording  # type: ignore[method-assign]
    options = ReplayOptions(speed=speed, start=datetime.fromisoformat(start))
    try:
        timer.start()
        stats, _ = run(_settings(bootstrap), [path], options, stop=stop, progress=False)
    finally:
        timer.cancel()
        KafkaSink.__call__ = original  # type: ignore[method-assign]
    walls = np.concatenate([np.full(len(times), wall) for wall, times in sent])
    events_s = np.concatenate([times for _, times in sent]) / 1e6
    # Lateness of every event: when it was sent minus when the pacing says it was due.
    due = walls[0] + (events_s - events_s[0]) / speed
    late_ms = (walls - due) * 1e3
    wall_span = walls[-1] - walls[0]
    event_span = events_s[-1] - events_s[0]
    ratio = event_span / (wall_span * speed)
    print(f"\npacing, --speed {speed:g} for {seconds:g} s of wall time: {path.name} from {start}")
    print(f"{'events sent':<36} {stats.events_sent:>10,}")
    print(f"{'wall time, first to last event':<36} {wall_span:>10.2f} s")
    print(
        f"{'event time, first to last event':<36} {event_span:>10.1f} s "
        f"({format_event_time(events_s[0] * 1e6)} .. {format_event_time(events_s[-1] * 1e6)})"
    )
    print(
        f"{'event time / (wall time x speed)':<36} {ratio:>10.4f} "
        f"(error {100 * abs(ratio - 1):.3f}%)"
    )
    print(f"{'send lateness vs due time, median':<36} {np.median(late_ms):>10.1f} ms")
    print(
        f"{'send lateness, p99 / max':<36} {np.percentile(late_ms, 99):>10.1f} ms / "
        f"{late_ms.max():.1f} ms"
    )


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument(
        "--bootstrap",
        default=os.environ.get("RIDESTREAM_BENCH_KAFKA"),
        help="a running broker (default: start a local one)",
    )
    parser.add_argument("--file", type=Path, default=DATA_DIR / "green_tripdata_2021-01.parquet")
    parser.add_argument("--only", choices=("throughput", "pacing"))
    parser.add_argument("--trials", type=int, default=3)
    parser.add_argument(
        "--clients",
        default="kafka-python,confluent",
        help="comma list of Kafka clients whose rows to measure (trials alternate)",
    )
    parser.add_argument("--speed", type=float, default=60.0)
    parser.add_argument("--pacing-s", type=float, default=60.0)
    parser.add_argument(
        "--pacing-start",
        default="2021-01-05T07:00:00",
        help="event time to start pacing from (a busy weekday morning)",
    )
    args = parser.parse_args()
    clients = args.clients.split(",")
    if unknown := set(clients) - {"kafka-python", "confluent"}:
        parser.error(f"--clients: unknown client(s) {', '.join(sorted(unknown))}")
    print(
        f"machine: {os.cpu_count()} cores, Python {platform.python_version()}, "
        f"kafka-python {kafka.__version__}, pydantic {pydantic.VERSION}, numpy {np.__version__}"
    )
    with kafka_broker.temporary_broker(args.bootstrap) as bootstrap:
        print(f"broker: Apache Kafka at {bootstrap}")
        if args.only in (None, "throughput"):
            throughput(bootstrap, args.file, args.trials, clients)
        if args.only in (None, "pacing"):
            pacing(bootstrap, args.file, args.speed, args.pacing_s, args.pacing_start)
    return 0


if __name__ == "__main__":
    sys.exit(main())
