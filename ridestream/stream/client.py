"""The client seam: what the stream package asks of a Kafka consumer and producer.

Two clients stand behind it, chosen by `RIDESTREAM_KAFKA__CLIENT`:

- kafka-python (the default): its `KafkaConsumer` and `KafkaProducer` are these protocols as
  they are, and the producer keeps its fast path (`ridestream.stream.fastpath`);
- confluent-kafka (librdkafka, `pip install 'ridestream[confluent]'`): the adapters in
  `ridestream.stream.confluent` speak the same words.

The words are kafka-python's (the project's first client) and Kafka's own: partitions are
`kafka.TopicPartition`, offsets to commit `kafka.structs.OffsetAndMetadata`, and a failure is a
`kafka.errors.KafkaError` with its `retriable` flag, whichever client raised it. A record has
`topic`, `partition`, `offset`, `key`, `value` and `headers`, so the codec and the dead letters
cannot tell the clients apart.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence
from typing import Any, Protocol, runtime_checkable

from kafka import TopicPartition
from kafka.structs import OffsetAndMetadata

from ridestream.stream.messages import Outgoing


class Record(Protocol):
    """A consumed record, as the codec and the dead letters read it."""

    topic: str
    partition: int
    offset: int
    key: bytes | None
    value: bytes | None
    headers: Any


class Consumer(Protocol):
    """The consumer the stream loop, the topic readers and the services use."""

    config: dict[str, Any]

    def poll(
        self, timeout_ms: int = 0, max_records: int | None = None
    ) -> Mapping[TopicPartition, Sequence[Any]]: ...

    def commit(self, offsets: Mapping[TopicPartition, OffsetAndMetadata]) -> Any: ...

    def commit_async(self, offsets: Mapping[TopicPartition, OffsetAndMetadata]) -> Any: ...

    def assignment(self) -> set[TopicPartition]: ...

    def assign(self, partitions: list[TopicPartition]) -> Any: ...

    def partitions_for_topic(self, topic: str) -> set[int] | None: ...

    def position(self, partition: TopicPartition, timeout_ms: int | None = None) -> Any: ...

    def committed(self, partition: TopicPartition) -> int | None: ...

    def highwater(self, partition: TopicPartition) -> int | None: ...

    def seek_to_beginning(self, *partitions: TopicPartition) -> Any: ...

    def seek_to_end(self, *partitions: TopicPartition) -> Any: ...

    def beginning_offsets(self, partitions: list[TopicPartition]) -> dict[TopicPartition, int]: ...

    def end_offsets(self, partitions: list[TopicPartition]) -> dict[TopicPartition, int]: ...

    def group_metadata(self) -> Any: ...

    def close(self) -> Any: ...


class Producer(Protocol):
    """The producer the stream loop, the dead letters and the services use."""

    config: dict[str, Any]

    def send(
        self,
        topic: str,
        value: Any = None,
        key: Any = None,
        headers: Any = None,
        partition: int | None = None,
    ) -> Any: ...

    def flush(self, timeout: float | None = None) -> Any: ...

    def partitions_for(self, topic: str) -> set[int]: ...

    def init_transactions(self) -> Any: ...

    def begin_transaction(self) -> Any: ...

    def send_offsets_to_transaction(
        self, offsets: Mapping[TopicPartition, OffsetAndMetadata], consumer_group_metadata: Any
    ) -> Any: ...

    def commit_transaction(self) -> Any: ...

    def abort_transaction(self) -> Any: ...

    def close(self) -> Any: ...


@runtime_checkable
class BatchSender(Protocol):
    """A producer that sends a whole batch itself (confluent: one delivery callback for all,
    no per-message future); `ridestream.stream.produce.send_all` hands it the batch."""

    def send_all(self, outputs: Iterable[Outgoing]) -> int: ...
