"""What the reliability tests do to topics: produce raw records, run a loop, read a topic back."""

from __future__ import annotations

import time
from collections.abc import Iterable, Sequence
from typing import Any

from kafka import KafkaConsumer, KafkaProducer

from ridestream.kafka import Handler, LoopStats, Outgoing, Received, StreamLoop
from ridestream.settings import KafkaSettings

# kafka-python's consumer can join its group before the metadata of a topic created a moment
# ago arrives; it is then assigned nothing until the next metadata refresh (default 5 min). Seen
# once under a loaded full-suite run; a short refresh bounds that wait in these tests.
METADATA_MAX_AGE_MS = 2_000

# A record as a test produces it: (key, value); a None value is a tombstone.
RawRecord = tuple[bytes | None, bytes | None]


def produce_raw(
    settings: KafkaSettings, topic: str, records: Iterable[RawRecord], **overrides: Any
) -> int:
    """Produce every (key, value) as is, flush, and fail on any delivery error."""
    producer = KafkaProducer(**{**settings.client_config(), "acks": "all", **overrides})
    try:
        futures = [producer.send(topic, key=key, value=value) for key, value in records]
        producer.flush()
        for future in futures:
            future.get(timeout=10)
        return len(futures)
    finally:
        producer.close()


def read_topic(
    settings: KafkaSettings, topic: str, *, expect: int, timeout_s: float = 20.0
) -> list[Any]:
    """Every record on `topic` from the start: read until `expect` arrived, then one more poll."""
    consumer = KafkaConsumer(
        topic,
        **settings.client_config(),
        group_id=None,
        auto_offset_reset="earliest",
        enable_auto_commit=False,
        max_partition_fetch_bytes=4 * 1_048_576,
    )
    records: list[Any] = []
    deadline = time.monotonic() + timeout_s
    try:
        while len(records) < expect and time.monotonic() < deadline:
            for batch in consumer.poll(timeout_ms=500).values():
                records.extend(batch)
        # One more short poll, so that more than `expect` records (duplicates) show up too.
        for batch in consumer.poll(timeout_ms=500).values():
            records.extend(batch)
    finally:
        consumer.close()
    return records


def echo_to(topic: str) -> Handler:
    """The trivial handler: every valid event goes out again, keyed, on `topic`."""

    def handle(batch: list[Received]) -> list[Outgoing]:
        return [Outgoing.of(topic, item.event) for item in batch]

    return handle


def run_until_polled(
    loop: StreamLoop, handle: Handler, records: int, timeout_s: float = 30.0
) -> LoopStats:
    """Run batches until `records` records were polled (and so delivered and committed)."""
    deadline = time.monotonic() + timeout_s
    while loop.stats.polled < records and time.monotonic() < deadline:
        loop.run_once(handle)
    return loop.stats


def headers_of(record: Any) -> dict[str, str]:
    """A consumed record's headers as text (dead-letter headers are UTF-8)."""
    return {name: value.decode() for name, value in record.headers or ()}


def by_source(records: Sequence[Any]) -> dict[tuple[int, int], Any]:
    """Records by (partition, offset)."""
    return {(record.partition, record.offset): record for record in records}
