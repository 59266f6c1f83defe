"""confluent-kafka (librdkafka) behind the client seam (`ridestream.stream.client`).

The adapters speak the seam's words, kafka-python's: a poll returns records by partition, with
`topic`, `partition`, `offset`, `key`, `value` and `headers` attributes; partitions are
`kafka.TopicPartition`; a failure raises a `kafka.errors.KafkaError` carrying librdkafka's
`retriable` flag. They use confluent-kafka's public API only.

Where librdkafka differs and what the adapters do about it:

- `consume(n, timeout)` returns a list of messages (errors among them, `message.error()`), but
  only once it has n or the timeout passed: a poll takes what is queued instead (`_consume`);
- commits are synchronous (`asynchronous=False`); `commit_async` runs one on a worker thread
  (librdkafka is thread-safe), because an asynchronous commit's result is served by the next
  `consume`, which the loop calls only after it has waited for that result;
- a position is unknown until the first fetch: `seek_to_*` resolves the watermark at once and
  remembers it, as kafka-python does;
- there is no bootstrap timeout: the adapters ask for metadata at start, for
  `bootstrap_timeout_ms`, and raise kafka-python's error for a refused login or no broker.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Iterable, Mapping, Sequence
from concurrent.futures import ThreadPoolExecutor
from typing import Any, NamedTuple

import confluent_kafka
from confluent_kafka import KafkaException
from confluent_kafka import TopicPartition as ConfluentPartition
from kafka import TopicPartition
from kafka.errors import KafkaError, KafkaTimeoutError, SaslAuthenticationFailedError
from kafka.future import Future
from kafka.structs import OffsetAndMetadata

from ridestream.stream.client_config import Role, librdkafka_config
from ridestream.stream.messages import Outgoing

log = logging.getLogger(__name__)

# kafka-python's default number of records a poll returns.
DEFAULT_MAX_POLL_RECORDS = 500


class LibrdkafkaError(KafkaError):
    """A librdkafka error as the seam's `KafkaError`, with librdkafka's retriable flag."""

    def __init__(self, error: confluent_kafka.KafkaError) -> None:
        super().__init__(f"{error.name()}: {error.str()}")
        self.error = error
        self.retriable = bool(error.retriable())


def _raised(error: KafkaException) -> LibrdkafkaError:
    return LibrdkafkaError(error.args[0])


class ConsumedRecord(NamedTuple):
    """A consumed message with kafka-python's record attributes."""

    topic: str
    partition: int
    offset: int
    key: bytes | None
    value: bytes | None
    headers: list[tuple[str, bytes]]


class _Client:
    """What the consumer and the producer adapters share: configuration, start, errors."""

    def __init__(self, config: Mapping[str, Any], role: Role) -> None:
        self.config = dict(config)
        self._librdkafka = {
            **librdkafka_config(config, role),
            "error_cb": self._on_error,
            # librdkafka's own log lines through `logging` (else they go to stderr), served by
            # the polls like every callback.
            "logger": logging.getLogger("librdkafka"),
        }
        self._login_refused: confluent_kafka.KafkaError | None = None

    def _on_error(self, error: confluent_kafka.KafkaError) -> None:
        # librdkafka retries broker errors itself; a refused login is remembered to say so.
        if error.code() == confluent_kafka.KafkaError._AUTHENTICATION:
            self._login_refused = error
        log.debug("librdkafka: %s", error)

    def _bootstrap(self, client: Any) -> None:
        """Raise kafka-python's error when no broker answered within bootstrap_timeout_ms."""
        timeout_s = self.config.get("bootstrap_timeout_ms", 10_000) / 1000
        try:
            client.list_topics(timeout=timeout_s)
        except KafkaException as error:
            if self._login_refused is not None:
                raise SaslAuthenticationFailedError(self._login_refused.str()) from error
            raise KafkaTimeoutError(
                f"Unable to bootstrap from {self.config['bootstrap_servers']}"
            ) from error

    def _metadata_partitions(self, client: Any, topic: str) -> set[int] | None:
        try:
            metadata = client.list_topics(topic, timeout=self._timeout_s)
        except KafkaException as error:
            raise _raised(error) from error
        found = metadata.topics.get(topic)
        if found is None or found.error is not None or not found.partitions:
            return None
        return set(found.partitions)

    @property
    def _timeout_s(self) -> float:
        return float(self.config.get("request_timeout_ms", 30_000)) / 1000


class ConfluentConsumer(_Client):
    """A confluent-kafka consumer with the seam's (kafka-python's) methods."""

    def __init__(self, config: Mapping[str, Any], topics: Sequence[str] = ()) -> None:
        super().__init__(config, "consumer")
        self._max_poll_records = int(config.get("max_poll_records") or DEFAULT_MAX_POLL_RECORDS)
        if config.get("group_id") is None:
            # librdkafka wants a group id even for a consumer that only assigns partitions; this
            # one never joins it and never commits (`config["group_id"]` stays None).
            self._librdkafka["group.id"] = f"ridestream-groupless-{id(self)}"
        self._consumer = confluent_kafka.Consumer(self._librdkafka)
        self._bootstrap(self._consumer)
        self._sought: dict[TopicPartition, int] = {}
        self._resolved: dict[TopicPartition, int] = {}
        self._resolved_for: frozenset[TopicPartition] = frozenset()
        self._partitions: dict[tuple[str, int], TopicPartition] = {}
        self._committer: ThreadPoolExecutor | None = None
        if topics:
            self._consumer.subscribe(list(topics))

    def subscribe(self, topics: Sequence[str]) -> None:
        """Join the group for `topics` (partitions come with the next polls)."""
        self._consumer.subscribe(list(topics))

    def poll(
        self, timeout_ms: int = 0, max_records: int | None = None
    ) -> dict[TopicPartition, list[ConsumedRecord]]:
        """Up to `max_records` records by partition, waiting up to `timeout_ms` for the first."""
        try:
            messages = self._consume(max_records or self._max_poll_records, timeout_ms / 1000)
        except KafkaException as raised:
            raise _raised(raised) from raised
        polled: dict[TopicPartition, list[ConsumedRecord]] = {}
        partitions = self._partitions
        for message in messages:
            error = message.error()
            if error is not None:
                if error.fatal():
                    raise LibrdkafkaError(error)
                # Informational (a partition's end, a broker away): librdkafka goes on itself.
                log.debug("consumer: %s", error)
                continue
            where: tuple[str, int] = (message.topic(), message.partition())
            tp = partitions.get(where)
            if tp is None:
                tp = partitions[where] = TopicPartition(*where)
            records = polled.get(tp)
            if records is None:
                records = polled[tp] = []
            records.append(
                ConsumedRecord(
                    where[0],
                    where[1],
                    message.offset(),
                    message.key(),
                    message.value(),
                    message.headers() or [],
                )
            )
        if polled and self._sought:
            for tp in polled:
                self._sought.pop(tp, None)
        return polled

    def _consume(self, limit: int, timeout_s: float) -> list[Any]:
        """What is queued, up to `limit`, as soon as there is anything (kafka-python's poll).

        librdkafka's `consume(n, timeout)` waits until it has n messages or the timeout has
        passed: at 2,000 rides/s and 500 a batch that is 250 ms of latency a batch. Here: take
        what is queued without waiting; with nothing queued, wait for one message, then take
        what came with it.
        """
        consumer = self._consumer
        messages: list[Any] = consumer.consume(limit, 0)
        if messages:
            return messages
        first = consumer.poll(timeout_s)
        if first is None:
            return []
        return [first, *consumer.consume(limit - 1, 0)] if limit > 1 else [first]

    def commit(self, offsets: Mapping[TopicPartition, OffsetAndMetadata]) -> None:
        """Commit `offsets` and wait for the broker's answer."""
        try:
            committed = self._consumer.commit(offsets=_partitions(offsets), asynchronous=False)
        except KafkaException as error:
            raise _raised(error) from error
        for partition in committed or ():
            if partition.error is not None:
                raise LibrdkafkaError(partition.error)

    def commit_async(self, offsets: Mapping[TopicPartition, OffsetAndMetadata]) -> Future:
        """Commit `offsets` on a worker thread; the future resolves with the broker's answer."""
        if self._committer is None:
            self._committer = ThreadPoolExecutor(1, thread_name_prefix="librdkafka-commit")
        future = Future()

        def commit() -> None:
            try:
                self.commit(offsets)
            except KafkaError as error:
                future.failure(error)
            else:
                future.success(None)

        self._committer.submit(commit)
        return future

    def assignment(self) -> set[TopicPartition]:
        """The partitions assigned to this consumer."""
        return {TopicPartition(p.topic, p.partition) for p in self._consumer.assignment()}

    def assign(self, partitions: list[TopicPartition]) -> None:
        """Read `partitions` without a group (positions: `seek_to_*`, else the reset policy)."""
        self._sought = {tp: o for tp, o in self._sought.items() if tp in partitions}
        self._consumer.assign(
            [
                ConfluentPartition(tp.topic, tp.partition, self._sought.get(tp, -1001))
                for tp in partitions
            ]
        )

    def partitions_for_topic(self, topic: str) -> set[int] | None:
        """The partition ids of `topic`, or None when the broker does not know it."""
        return self._metadata_partitions(self._consumer, topic)

    def _watermarks(self, tp: TopicPartition) -> tuple[int, int]:
        try:
            low, high = self._consumer.get_watermark_offsets(
                ConfluentPartition(tp.topic, tp.partition), timeout=self._timeout_s
            )
        except KafkaException as error:
            raise _raised(error) from error
        return int(low), int(high)

    def beginning_offsets(self, partitions: list[TopicPartition]) -> dict[TopicPartition, int]:
        """The first offset of every partition."""
        return {tp: self._watermarks(tp)[0] for tp in partitions}

    def end_offsets(self, partitions: list[TopicPartition]) -> dict[TopicPartition, int]:
        """The high watermark of every partition."""
        return {tp: self._watermarks(tp)[1] for tp in partitions}

    def _seek(self, partitions: Iterable[TopicPartition], end: bool) -> None:
        for tp in partitions:
            self._sought[tp] = self._watermarks(tp)[1 if end else 0]
        self.assign(sorted(self.assignment() | set(self._sought)))

    def seek_to_beginning(self, *partitions: TopicPartition) -> None:
        """Read the assigned `partitions` from their first offset."""
        self._seek(partitions or self.assignment(), end=False)

    def seek_to_end(self, *partitions: TopicPartition) -> None:
        """Read the assigned `partitions` from their end (what is produced from now on)."""
        self._seek(partitions or self.assignment(), end=True)

    def position(self, partition: TopicPartition, timeout_ms: int | None = None) -> int | None:
        """The offset of the next record to read; None when unknown and `timeout_ms` is 0."""
        where = ConfluentPartition(partition.topic, partition.partition)
        [found] = self._consumer.position([where])
        if found.offset >= 0:
            return int(found.offset)
        if partition in self._sought:
            return self._sought[partition]
        if timeout_ms == 0:
            return None
        # librdkafka knows no position before a record of the partition reached us (an empty
        # partition never has one); the start position, committed or reset, stays what it is
        # until then or until the assignment changes: resolved once, not by two round trips
        # on every call (the metrics ask every batch: 2 s a batch in bench/monitor_*).
        assigned = frozenset(self.assignment())
        if assigned != self._resolved_for:
            self._resolved, self._resolved_for = {}, assigned
        if partition not in self._resolved:
            self._resolved[partition] = self._start_position(partition)
        return self._resolved[partition]

    def _start_position(self, partition: TopicPartition) -> int:
        """Where reading `partition` starts: the group's committed offset, else the reset."""
        if self.config.get("group_id") is not None:
            committed = self.committed(partition)
            if committed is not None:
                return committed
        low, high = self._watermarks(partition)
        return low if self.config.get("auto_offset_reset") == "earliest" else high

    def committed(self, partition: TopicPartition) -> int | None:
        """The group's committed offset of `partition` (None when it has none)."""
        where = ConfluentPartition(partition.topic, partition.partition)
        try:
            [found] = self._consumer.committed([where], timeout=self._timeout_s)
        except KafkaException as error:
            raise _raised(error) from error
        return int(found.offset) if found.offset >= 0 else None

    def highwater(self, partition: TopicPartition) -> int | None:
        """The high watermark the last fetch of `partition` reported (None before one)."""
        _low, high = self._consumer.get_watermark_offsets(
            ConfluentPartition(partition.topic, partition.partition), cached=True
        )
        return int(high) if high >= 0 else None

    def group_metadata(self) -> Any:
        """The group metadata a transaction commits the consumer's offsets with."""
        return self._consumer.consumer_group_metadata()

    def close(self) -> None:
        """Finish the commit in flight, leave the group and close."""
        if self._committer is not None:
            self._committer.shutdown(wait=True)
        self._consumer.close()


class Delivery(Future):
    """kafka-python's future of a sent message, resolved by librdkafka's delivery report."""

    def __init__(self, producer: Any) -> None:
        super().__init__()
        self._producer = producer

    def delivered(self, error: confluent_kafka.KafkaError | None, message: Any) -> None:
        if error is not None:
            self.failure(LibrdkafkaError(error))
        else:
            self.success(message.offset())

    def get(self, timeout: float | None = None) -> Any:
        """Wait (serving delivery reports) for the broker's answer; raise its error."""
        deadline = time.monotonic() + (timeout if timeout is not None else 3600.0)
        while not self.is_done:
            if time.monotonic() > deadline:
                raise KafkaTimeoutError("no delivery report in time")
            self._producer.poll(0.1)
        if self.failed():
            raise self.exception
        return self.value


class ConfluentProducer(_Client):
    """A confluent-kafka producer with the seam's (kafka-python's) methods, and `send_all`."""

    def __init__(self, config: Mapping[str, Any]) -> None:
        super().__init__(config, "producer")
        self._max_block_s = float(config.get("max_block_ms", 60_000)) / 1000
        self._producer = confluent_kafka.Producer(self._librdkafka)
        self._bootstrap(self._producer)

    def _produce(self, topic: str, value: Any, key: Any, **options: Any) -> None:
        try:
            self._producer.produce(topic, value, key, **options)
        except BufferError:
            # librdkafka's queue is full: serve delivery reports until there is room.
            deadline = time.monotonic() + self._max_block_s
            while True:
                self._producer.poll(0.05)
                try:
                    self._producer.produce(topic, value, key, **options)
                    return
                except BufferError:
                    if time.monotonic() > deadline:
                        raise KafkaTimeoutError("the producer's queue stayed full") from None

    def send(
        self,
        topic: str,
        value: Any = None,
        key: Any = None,
        headers: Any = None,
        partition: int | None = None,
    ) -> Delivery:
        """Send one message; the future resolves when the broker has it."""
        future = Delivery(self._producer)
        options: dict[str, Any] = {"on_delivery": future.delivered}
        if headers:
            options["headers"] = list(headers)
        if partition is not None:
            options["partition"] = partition
        self._produce(topic, value, key, **options)
        return future

    def send_all(self, outputs: Iterable[Outgoing]) -> int:
        """Send every message in order, flush, and raise the first delivery error."""
        errors: list[confluent_kafka.KafkaError] = []

        def delivered(error: confluent_kafka.KafkaError | None, _message: Any) -> None:
            if error is not None:
                errors.append(error)

        count = 0
        produce = self._produce
        for out in outputs:
            if out.headers:
                produce(
                    out.topic, out.value, out.key, on_delivery=delivered, headers=list(out.headers)
                )
            else:
                produce(out.topic, out.value, out.key, on_delivery=delivered)
            count += 1
        self.flush()
        if errors:
            raise LibrdkafkaError(errors[0])
        return count

    def flush(self, timeout: float | None = None) -> None:
        """Wait until every message sent has its delivery report."""
        left = self._producer.flush(timeout if timeout is not None else -1)
        if left:
            raise KafkaTimeoutError(f"{left} messages not delivered in {timeout} s")

    def partitions_for(self, topic: str) -> set[int]:
        """The partition ids of `topic`, waiting up to max_block_ms for the metadata of a topic
        created a moment ago (as kafka-python does); raises KafkaTimeoutError after that."""
        deadline = time.monotonic() + self._max_block_s
        while not (partitions := self._metadata_partitions(self._producer, topic)):
            if time.monotonic() > deadline:
                raise KafkaTimeoutError(f"no metadata for topic {topic}")
            time.sleep(0.1)
        return partitions

    def _transaction(self, method: str, *args: Any) -> None:
        try:
            getattr(self._producer, method)(*args)
        except KafkaException as error:
            raise _raised(error) from error

    def init_transactions(self) -> None:
        """Register the transactional id (fencing an older producer with the same id)."""
        self._transaction("init_transactions", self._timeout_s)

    def begin_transaction(self) -> None:
        """Open a transaction."""
        self._transaction("begin_transaction")

    def send_offsets_to_transaction(
        self, offsets: Mapping[TopicPartition, OffsetAndMetadata], consumer_group_metadata: Any
    ) -> None:
        """Commit the consumer's `offsets` with the transaction."""
        self._transaction(
            "send_offsets_to_transaction",
            _partitions(offsets),
            consumer_group_metadata,
            self._timeout_s,
        )

    def commit_transaction(self) -> None:
        """Commit the open transaction (its messages and offsets)."""
        self._transaction("commit_transaction", self._timeout_s)

    def abort_transaction(self) -> None:
        """Abort the open transaction."""
        self._transaction("abort_transaction", self._timeout_s)

    def close(self, timeout: float | None = None) -> None:
        """Flush what is still queued (librdkafka has no close)."""
        self._producer.flush(timeout if timeout is not None else self._timeout_s)


def _partitions(offsets: Mapping[TopicPartition, OffsetAndMetadata]) -> list[ConfluentPartition]:
    return [ConfluentPartition(tp.topic, tp.partition, o.offset) for tp, o in offsets.items()]
