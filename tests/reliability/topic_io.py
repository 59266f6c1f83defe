"""What the reliability tests do to topics: produce raw records, run a loop, read a topic back."""

from __future__ import annotations

import time
from collections.abc import Collection, Iterable, Sequence
from typing import Any

from kafka import KafkaConsumer, KafkaProducer

from ridestream.settings import KafkaSettings
from ridestream.stream.loop import Handler, LoopStats, StreamLoop
from ridestream.stream.messages import Outgoing, Received

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


def read_until_keys(
    settings: KafkaSettings,
    topic: str,
    keys: Collection[bytes],
    *,
    timeout_s: float = 60.0,
    committed_only: bool = False,
    settle_s: float = 1.0,
) -> list[Any]:
    """Every record on `topic` from the start, read until each of `keys` arrived at least once
    (or `timeout_s`), then `settle_s` more, so that duplicates on their way show up too.

    `committed_only` reads as `read_committed`: records of open or aborted transactions are not
    returned (an open one holds the reader back until it ends).
    """
    consumer = KafkaConsumer(
        topic,
        **settings.client_config(),
        group_id=None,
        auto_offset_reset="earliest",
        enable_auto_commit=False,
        isolation_level="read_committed" if committed_only else "read_uncommitted",
        max_partition_fetch_bytes=4 * 1_048_576,
        metadata_max_age_ms=METADATA_MAX_AGE_MS,
    )
    missing = set(keys)
    records: list[Any] = []
    deadline = time.monotonic() + timeout_s
    try:
        while time.monotonic() < deadline:
            for batch in consumer.poll(timeout_ms=300, max_records=50_000).values():
                records.extend(batch)
                missing.difference_update(record.key for record in batch)
            if not missing:
                deadline = min(deadline, time.monotonic() + settle_s)
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
