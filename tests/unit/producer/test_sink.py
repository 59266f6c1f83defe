"""The Kafka sink never loses a failed send silently: it counts it and stops the replay."""

from __future__ import annotations

from typing import Any

import numpy as np
import pytest
from kafka.errors import KafkaTimeoutError
from kafka.future import Future

from producer.replay import Encoded
from producer.sink import DeliveryFailedError, KafkaSink


class RefusingProducer:
    """Stands in for KafkaProducer (not ours): every send fails like an expired batch."""

    def __init__(self) -> None:
        self.config: dict[str, Any] = {"delivery_timeout_ms": 1_000}
        self.sent: list[tuple[str, bytes, int]] = []

    def partitions_for(self, topic: str) -> set[int]:
        return {0, 1, 2}

    def send(self, topic: str, value: bytes, key: bytes, partition: int) -> Future:
        self.sent.append((topic, key, partition))
        return Future().failure(KafkaTimeoutError("Expiring 1 record(s)"))


def encoded(count: int) -> Encoded:
    keys = [f"src:{i}".encode() for i in range(count)]
    return Encoded([i % 2 for i in range(count)], keys, [b"{}"] * count, np.arange(count))


def test_a_failed_send_is_counted_and_the_next_slice_is_refused() -> None:
    producer = RefusingProducer()
    sink = KafkaSink(producer, ("req", "comp"), 100)  # type: ignore[arg-type]

    sink(encoded(4), 0, 4)

    assert sink.failed == 4
    assert isinstance(sink.first_error, KafkaTimeoutError)
    with pytest.raises(DeliveryFailedError, match="4 events failed to send"):
        sink(encoded(4), 0, 4)
    assert [topic for topic, _, _ in producer.sent] == ["req", "comp", "req", "comp"]
    assert all(0 <= partition < 3 for _, _, partition in producer.sent)
