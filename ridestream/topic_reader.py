"""Reading a topic from its beginning to its current end: for reports, the demo and tests."""

from __future__ import annotations

import time
from collections.abc import Iterator
from typing import Any, TypeVar

from kafka import KafkaConsumer, TopicPartition
from pydantic import ValidationError

from ridestream.events import Event
from ridestream.settings import KafkaSettings

E = TypeVar("E", bound=Event)


def read_records(
    settings: KafkaSettings, topic: str, *, timeout_s: float = 30.0, committed_only: bool = True
) -> Iterator[Any]:
    """Yield every record of `topic` up to the end offsets seen when reading starts.

    No consumer group (nothing is committed); `committed_only` reads as `read_committed`, so
    aborted transactions are skipped. Stops at the end offsets or after `timeout_s`.
    """
    consumer = KafkaConsumer(
        **settings.client_config(),
        group_id=None,
        enable_auto_commit=False,
        isolation_level="read_committed" if committed_only else "read_uncommitted",
    )
    try:
        partitions = consumer.partitions_for_topic(topic) or set()
        assigned = [TopicPartition(topic, p) for p in sorted(partitions)]
        if not assigned:
            return
        consumer.assign(assigned)
        consumer.seek_to_beginning(*assigned)
        end = {tp: offset for tp, offset in consumer.end_offsets(assigned).items() if offset > 0}
        deadline = time.monotonic() + timeout_s
        while end and time.monotonic() < deadline:
            for tp, records in consumer.poll(timeout_ms=500, max_records=10_000).items():
                yield from records
                if tp in end and consumer.position(tp) >= end[tp]:
                    del end[tp]
            for tp in [tp for tp in end if consumer.position(tp) >= end[tp]]:
                del end[tp]  # the rest of the partition were transaction markers
    finally:
        consumer.close()


def read_events(
    settings: KafkaSettings, topic: str, event_type: type[E], *, timeout_s: float = 30.0
) -> list[E]:
    """Every valid event of `topic`, deduplicated by key (the last copy wins), in log order."""
    by_key: dict[str, E] = {}
    for record in read_records(settings, topic, timeout_s=timeout_s):
        try:
            event = event_type.model_validate_json(record.value)
        except ValidationError:
            continue  # not ours to judge here: the services dead-letter bad input
        by_key.pop(event.key, None)
        by_key[event.key] = event
    return list(by_key.values())


def count_records(settings: KafkaSettings, topic: str) -> int:
    """How many records `topic` holds (end minus beginning offsets over its partitions)."""
    consumer = KafkaConsumer(**settings.client_config(), group_id=None)
    try:
        partitions = consumer.partitions_for_topic(topic) or set()
        assigned = [TopicPartition(topic, p) for p in partitions]
        if not assigned:
            return 0
        begin = consumer.beginning_offsets(assigned)
        end = consumer.end_offsets(assigned)
        return sum(end[tp] - begin[tp] for tp in assigned)
    finally:
        consumer.close()
