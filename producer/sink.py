"""The replay's Kafka sink: encoded events to their partitions, failures counted, the
unacknowledged events bounded."""

from __future__ import annotations

import contextlib
from collections import deque
from typing import Any

from kafka import KafkaProducer, TopicPartition
from kafka.errors import KafkaError

from producer.replay import Encoded
from ridestream.stream.fastpath import append_records, appends_directly, partitions_for_keys


class DeliveryFailedError(RuntimeError):
    """Events could not be delivered: the replay stops and exits non-zero."""


class KafkaSink:
    """Sends encoded events to Kafka without per-message bookkeeping (but an errback on each).

    Partitions are computed for a whole slice at once (`partitions_for_keys`),
    exactly as the default partitioner would. With `direct_append` the records go straight into
    the producer's record accumulator (`ridestream.stream.fastpath`, ~1.5x `send`; see
    bench/); it falls back to `send` on a producer without kafka-python's internals or with a
    partitioner of its own. Failed sends are counted; the next call then raises
    DeliveryFailedError. `wait_for_room` bounds the unacknowledged events.
    """

    def __init__(
        self,
        producer: KafkaProducer,
        topics: tuple[str, str],
        max_pending_events: int,
        *,
        direct_append: bool = True,
    ) -> None:
        self.producer = producer
        self.topics = topics
        partitions = [producer.partitions_for(topic) for topic in topics]
        self.partition_counts = tuple(len(p) for p in partitions)
        self._tps = [
            [TopicPartition(topic, p) for p in range(count)]
            for topic, count in zip(topics, self.partition_counts, strict=True)
        ]
        self.direct_append = direct_append and appends_directly(producer)
        self.failed = 0
        self.first_error: BaseException | None = None
        self.max_pending_events = max_pending_events
        self._in_flight: deque[tuple[int, Any]] = deque()  # (events, last future of a slice)
        self._pending = 0

    def _on_error(self, error: BaseException) -> None:
        self.failed += 1
        if self.first_error is None:
            self.first_error = error

    def __call__(self, encoded: Encoded, start: int, stop: int) -> None:
        if self.failed:
            raise DeliveryFailedError(f"{self.failed:,} events failed to send: {self.first_error}")
        keys = encoded.keys[start:stop]
        kinds = encoded.kinds[start:stop]
        values = encoded.values[start:stop]
        counts = self.partition_counts
        if counts[0] == counts[1]:
            same = partitions_for_keys(keys, counts[0]).tolist()
            parts = [same, same]
        else:
            parts = [partitions_for_keys(keys, n).tolist() for n in counts]
        on_error = self._on_error
        future: Any = None
        if self.direct_append:
            tps = self._tps
            targets = [tps[kind][parts[kind][i]] for i, kind in enumerate(kinds)]
            for future in append_records(self.producer, targets, keys, values):
                future.add_errback(on_error)
        else:
            send = self.producer.send
            topics = self.topics
            for i, (kind, key, value) in enumerate(zip(kinds, keys, values, strict=True)):
                future = send(topics[kind], value=value, key=key, partition=parts[kind][i])
                future.add_errback(on_error)
        self._in_flight.append((stop - start, future))
        self._pending += stop - start
        self.wait_for_room()

    def wait_for_room(self) -> None:
        """Block while more than `max_pending_events` events may be unacknowledged."""
        while self._in_flight and (
            self._pending > self.max_pending_events or self._in_flight[0][1].is_done
        ):
            count, future = self._in_flight[0]
            if not future.is_done:
                # A failure is counted by the errback; here we only wait.
                with contextlib.suppress(KafkaError):
                    future.get(timeout=self.producer.config["delivery_timeout_ms"] / 1000)
            self._in_flight.popleft()
            self._pending -= count


def kafka_reason(error: BaseException | None) -> str:
    """`Type: message` of a Kafka error, once (kafka-python's str() repeats the type)."""
    name = type(error).__name__
    text = str(error.args[0]) if error is not None and error.args else ""
    return text if text.startswith(name) else f"{name}: {text}".rstrip(": ")
