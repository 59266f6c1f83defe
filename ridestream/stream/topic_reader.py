"""Group-less reading of a topic: from its beginning up to its end offsets (restoring state at
start, reports, tests), or a consumer positioned at its end (following updates from now on).

No consumer group, nothing committed: every partition is assigned by hand.
"""

from __future__ import annotations

import time
from collections.abc import Iterator
from typing import Any, TypeVar

from kafka import TopicPartition
from pydantic import ValidationError

from ridestream.events import Event
from ridestream.settings import KafkaSettings
from ridestream.stream.client import Consumer
from ridestream.stream.clients import build_consumer

E = TypeVar("E", bound=Event)


def topic_partitions(
    consumer: Consumer, topic: str, timeout_s: float = 30.0
) -> list[TopicPartition]:
    """Every partition of `topic`, waiting up to `timeout_s` for the metadata of a topic created
    a moment ago; raises TimeoutError when it still has none."""
    deadline = time.monotonic() + timeout_s
    while not (partitions := consumer.partitions_for_topic(topic)):
        if time.monotonic() > deadline:
            raise TimeoutError(f"topic {topic} has no partitions after {timeout_s:.0f} s")
        time.sleep(0.2)
    return [TopicPartition(topic, p) for p in sorted(partitions)]


def read_records(
    settings: KafkaSettings,
    topic: str,
    *,
    timeout_s: float = 30.0,
    committed_only: bool = True,
    must_reach_end: bool = False,
) -> Iterator[Any]:
    """Yield every record of `topic` up to the end offsets seen when reading starts.

    `committed_only` reads as `read_committed`, so aborted transactions are skipped. Stops at
    the end offsets or after `timeout_s`. With `must_reach_end` (a service restoring its state
    from a topic it created) a missing topic or a read cut short by `timeout_s` raises
    TimeoutError instead of ending early.
    """
    consumer = build_consumer(
        settings,
        group_id=None,
        isolation_level="read_committed" if committed_only else "read_uncommitted",
    )
    try:
        if must_reach_end:
            assigned = topic_partitions(consumer, topic, timeout_s)
        else:
            assigned = [
                TopicPartition(topic, p) for p in sorted(consumer.partitions_for_topic(topic) or ())
            ]
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
        if end and must_reach_end:
            raise TimeoutError(f"could not read {topic} to its end in {timeout_s:.0f} s")
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
    consumer = build_consumer(settings, group_id=None)
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


def consumer_at_end(
    settings: KafkaSettings, topic: str, timeout_s: float = 30.0, **overrides: Any
) -> Consumer:
    """A group-less consumer of every partition of `topic`, positioned at its end now (so
    that a record published after this call is seen, and none before it)."""
    consumer = build_consumer(settings, group_id=None, **overrides)
    assigned = topic_partitions(consumer, topic, timeout_s)
    consumer.assign(assigned)
    consumer.seek_to_end(*assigned)
    for tp in assigned:  # resolve the positions now, not at the first poll
        consumer.position(tp)
    return consumer
