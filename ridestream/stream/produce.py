"""Handing messages to the producer in order: the fast path where it applies, `send` elsewhere."""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from typing import Any

from kafka import TopicPartition

from ridestream.stream.client import BatchSender, Producer
from ridestream.stream.fastpath import append_records, appends_directly, partitions_for_keys
from ridestream.stream.messages import Outgoing


def send_all(producer: Producer, outputs: Iterable[Outgoing]) -> int:
    """Produce every message, flush, and raise the first delivery error (nothing is dropped)."""
    if isinstance(producer, BatchSender):  # confluent-kafka: one delivery callback for all
        return producer.send_all(outputs)
    futures = send_many(producer, list(outputs))
    producer.flush()
    for future in futures:
        if future.failed():
            raise future.exception
    return len(futures)


def send_many(producer: Producer, outputs: Sequence[Outgoing]) -> list[Any]:
    """Hand every message to the producer, in order, without flushing; returns their futures.

    Keyed messages without headers take the fast path (`append_records`) on the partitions
    Kafka's default partitioner gives their keys; the others (dead letters: headers, maybe no
    key, maybe large) and every message of a producer the fast path does not know go through
    `KafkaProducer.send`. Both feed the same accumulator in this order, so the order of the
    messages of a partition is the order of `outputs`.
    """
    if not appends_directly(producer):
        return [
            producer.send(out.topic, key=out.key, value=out.value, headers=list(out.headers))
            for out in outputs
        ]
    # Margin for the record and batch headers: anything near the request limit takes send(),
    # which checks the size exactly and raises MessageSizeTooLargeError.
    max_bytes = producer.config["max_request_size"] - 1_024
    tps: list[TopicPartition | None] = [None] * len(outputs)
    by_topic: dict[str, list[int]] = {}
    for index, out in enumerate(outputs):
        if out.key is not None and not out.headers and len(out.key) + len(out.value) < max_bytes:
            by_topic.setdefault(out.topic, []).append(index)
    for topic, indexes in by_topic.items():
        partitions = [TopicPartition(topic, p) for p in sorted(producer.partitions_for(topic))]
        keys = [outputs[i].key or b"" for i in indexes]
        for index, partition in zip(
            indexes, partitions_for_keys(keys, len(partitions)).tolist(), strict=True
        ):
            tps[index] = partitions[partition]
    futures: list[Any] = []
    start = 0  # the first message of the run of fast-path messages not yet appended
    for index, tp in enumerate([*tps, None]):
        if tp is not None:
            continue
        run = outputs[start:index]
        futures += append_records(
            producer, tps[start:index], [o.key for o in run], [o.value for o in run]
        )
        if index < len(outputs):
            out = outputs[index]
            futures.append(
                producer.send(out.topic, key=out.key, value=out.value, headers=list(out.headers))
            )
        start = index + 1
    return futures
