"""The Kafka edge, written once: the consume-process-produce loop, its commit order, dead letters.

One batch goes through five steps, in this order:

1. poll a batch of records;
2. decode and validate each record; a poison record (bad bytes, bad JSON, schema violation)
   becomes a dead letter on `<topic>.dlq` and takes no further part;
3. hand the valid events, the whole batch at once, to the service's handler (pure logic);
4. produce the handler's outputs and the dead letters, then flush;
5. commit the input offsets.

With `commit_in_background=True` (the predictor: a commit is a round trip of ~7 ms to a
Kafka 4 group coordinator, as long as a whole small batch) step 5 sends the commit and the
loop goes on polling, decoding and handling the next batch while it travels; that batch's
outputs are produced only once the commit has succeeded, so the guarantee below holds as is.

Committing after the flush is what makes delivery at-least-once: a crash between 4 and 5
re-delivers the batch, and because every output is keyed by a stable id, duplicates can be
removed by key downstream. With `exactly_once=True` steps 4 and 5 run inside one Kafka
transaction (`send_offsets_to_transaction`), so a `read_committed` reader sees each output once.

Bugs in the handler (KeyError, TypeError, ...) are not caught: they crash the service loudly,
before the commit, and the batch is replayed after the restart.
"""

from __future__ import annotations

import contextlib
import functools
import logging
import signal
import threading
import time
from collections import defaultdict
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any, NamedTuple

import numpy as np
from kafka import KafkaAdminClient, KafkaConsumer, KafkaProducer, TopicPartition
from kafka.admin import NewTopic
from kafka.errors import KafkaError, TopicAlreadyExistsError
from kafka.structs import OffsetAndMetadata
from pydantic import BaseModel, ValidationError

from ridestream.events import Event, encode
from ridestream.settings import KafkaSettings
from ridestream.topics import dead_letter_topic

log = logging.getLogger(__name__)

# kafka-python 3.0.12's commit() raises KafkaConnectionError at once when the broker goes away
# while it looks up the group coordinator (ensure_coordinator_ready_async waits for a metadata
# refresh and catches only KafkaTimeoutError) instead of retrying until request_timeout_ms:
# the loop retries the commit itself, for about as long as a broker restart takes.
COMMIT_RETRY_S = 60.0

# Dead-letter headers (values are UTF-8 bytes).
HEADER_ERROR_TYPE = "error.type"
HEADER_ERROR_MESSAGE = "error.message"
HEADER_SOURCE_TOPIC = "source.topic"
HEADER_SOURCE_PARTITION = "source.partition"
HEADER_SOURCE_OFFSET = "source.offset"
HEADER_SERVICE = "service"
HEADER_VALUE_TRUNCATED_FROM = "value.truncated.from"
MAX_ERROR_MESSAGE_CHARS = 2_000
# The broker's default message.max.bytes (1 MiB + record overhead). Our producers may send a
# little more than that so that the dead letter of any value a consumer accepted fits with its
# headers; a value so large that its dead letter would not fit the broker's default is cut to
# DEAD_LETTER_MAX_VALUE_BYTES (the original stays on the source topic at the offset the
# headers name).
BROKER_MAX_MESSAGE_BYTES = 1_048_588
DEAD_LETTER_HEADROOM_BYTES = 64 * 1024
DEAD_LETTER_MAX_VALUE_BYTES = BROKER_MAX_MESSAGE_BYTES - DEAD_LETTER_HEADROOM_BYTES


# Received and Outgoing are made once per message: named tuples, because a frozen dataclass
# costs twice as much to build (~0.6 us against ~0.3; 2 per ride in the predictor).
class Received(NamedTuple):
    """A valid event and where it came from."""

    topic: str
    partition: int
    offset: int
    event: Event


class Outgoing(NamedTuple):
    """A message to produce: topic, key, value bytes and headers."""

    topic: str
    key: bytes | None
    value: bytes
    headers: tuple[tuple[str, bytes], ...] = ()

    @classmethod
    def of(cls, topic: str, event: Event) -> Outgoing:
        """The message of an event: keyed by its stable id, JSON value."""
        return cls(topic, event.key.encode(), encode(event))


class PoisonRecordError(ValueError):
    """A record that cannot become a valid event (its message says why)."""


def dead_letter(record: Any, error: Exception, service: str) -> Outgoing:
    """The dead letter of a consumed record: original key and value, headers saying why."""
    message = _one_line(error)[:MAX_ERROR_MESSAGE_CHARS]
    headers: tuple[tuple[str, bytes], ...] = (
        (HEADER_ERROR_TYPE, type(error).__name__.encode()),
        (HEADER_ERROR_MESSAGE, message.encode()),
        (HEADER_SOURCE_TOPIC, record.topic.encode()),
        (HEADER_SOURCE_PARTITION, str(record.partition).encode()),
        (HEADER_SOURCE_OFFSET, str(record.offset).encode()),
        (HEADER_SERVICE, service.encode()),
    )
    value = record.value if record.value is not None else b""
    if len(value) > DEAD_LETTER_MAX_VALUE_BYTES:
        headers += ((HEADER_VALUE_TRUNCATED_FROM, str(len(value)).encode()),)
        value = value[:DEAD_LETTER_MAX_VALUE_BYTES]
    return Outgoing(dead_letter_topic(record.topic), record.key, value, headers)


def _one_line(error: Exception) -> str:
    if isinstance(error, ValidationError):
        parts = [
            f"{'.'.join(str(p) for p in e['loc']) or '<value>'}: {e['msg']}" for e in error.errors()
        ]
        return f"{error.title}: " + "; ".join(parts)
    return " ".join(str(error).split())


def decode_record(record: Any, event_type: type[Event], max_value_bytes: int) -> Event:
    """Decode and validate one record; raises PoisonRecordError or ValidationError on bad input.

    Strict: JSON `true`, `5.0` or `"5"` is not a zone id, and a date is not a timestamp.
    """
    if record.value is None:
        raise PoisonRecordError("empty value (tombstone)")
    if len(record.value) > max_value_bytes:
        raise PoisonRecordError(f"value of {len(record.value)} bytes exceeds {max_value_bytes}")
    return _json_validator(event_type)(record.value, strict=True)


@functools.cache
def _json_validator(event_type: type[Event]) -> Callable[..., Event]:
    """`event_type.model_validate_json`, or, when the type does not decode in its own way, the
    pydantic validator that it calls (the same validation without its Python frame: ~0.5 us
    less per record, a fifth of a ride's decoding)."""
    if _function_of(event_type.model_validate_json) is _function_of(BaseModel.model_validate_json):
        return event_type.__pydantic_validator__.validate_json
    return event_type.model_validate_json


def _function_of(method: Any) -> Any:
    return getattr(method, "__func__", method)


@dataclass
class BatchStats:
    """What one pass of the loop did."""

    polled: int = 0
    valid: int = 0
    dead_letters: int = 0
    produced: int = 0
    seconds: float = 0.0


@dataclass
class LoopStats:
    """Totals since the loop started."""

    batches: int = 0
    polled: int = 0
    valid: int = 0
    dead_letters: int = 0
    produced: int = 0
    started: float = field(default_factory=time.monotonic)

    def add(self, batch: BatchStats) -> None:
        self.batches += 1
        self.polled += batch.polled
        self.valid += batch.valid
        self.dead_letters += batch.dead_letters
        self.produced += batch.produced


Handler = Callable[[list[Received]], Iterable[Outgoing]]
# Given the next offsets of everything polled so far, return the ones safe to commit
# (a stateful service holds back offsets of records still in open state).
CommitGate = Callable[[dict[TopicPartition, int]], dict[TopicPartition, int]]


class StreamLoop:
    """The consume-process-produce loop shared by every service (see the module docstring)."""

    def __init__(
        self,
        *,
        consumer: KafkaConsumer,
        producer: KafkaProducer,
        service: str,
        decoders: Mapping[str, type[Event]],
        exactly_once: bool = False,
        max_value_bytes: int = 1_048_576,
        poll_timeout_ms: int = 500,
        max_records: int | None = None,
        commit_gate: CommitGate | None = None,
        commit_in_background: bool = False,
        handle_empty_polls: bool = False,
    ) -> None:
        self.consumer = consumer
        self.producer = producer
        self.service = service
        self.decoders = dict(decoders)
        self.exactly_once = exactly_once
        self.max_value_bytes = max_value_bytes
        self.poll_timeout_ms = poll_timeout_ms
        self.max_records = max_records
        self.commit_gate = commit_gate
        self.commit_in_background = commit_in_background and not exactly_once
        # The handler also runs on a poll that returned nothing, for state that time moves on
        # (the monitor closes the last windows once its partitions have been idle a while).
        self.handle_empty_polls = handle_empty_polls
        self._commit_in_flight: tuple[threading.Event, Any, dict[TopicPartition, Any]] | None = None
        self.stats = LoopStats()
        # Next offsets of everything polled so far, per partition still assigned: a commit gate
        # sees them all, so state closed by this batch can release offsets of other partitions.
        self._consumed: dict[TopicPartition, int] = {}

    def run_once(self, handle: Handler) -> BatchStats:
        """Poll one batch and take it through decode, handle, produce, flush and commit."""
        started = time.perf_counter()
        polled = self.consumer.poll(timeout_ms=self.poll_timeout_ms, max_records=self.max_records)
        records = [record for partition_records in polled.values() for record in partition_records]
        batch = BatchStats(polled=len(records))
        if not records and not self.handle_empty_polls:
            self.finish_commit()
            return batch

        received, dead = self._decode(records)
        outputs = list(handle(received))
        if not records and not outputs:
            self.finish_commit()
            return batch
        # Nothing of this batch reaches the producer before the previous batch's offsets are
        # committed: a crash re-delivers at most the batch in hand, as with a blocking commit.
        self.finish_commit()
        batch.valid, batch.dead_letters = len(received), len(dead)
        batch.produced = len(outputs)

        next_offsets = {tp: recs[-1].offset + 1 for tp, recs in polled.items() if recs}
        self._deliver([*outputs, *dead], self._committable(next_offsets))
        batch.seconds = time.perf_counter() - started
        self.stats.add(batch)
        return batch

    def run(
        self,
        handle: Handler,
        stop: threading.Event,
        on_batch: Callable[[BatchStats], None] | None = None,
    ) -> LoopStats:
        """Run batches until `stop` is set; the batch in hand is finished, flushed and committed."""
        if self.exactly_once:
            self.producer.init_transactions()
        while not stop.is_set():
            batch = self.run_once(handle)
            if on_batch is not None:
                on_batch(batch)
        self.finish_commit()
        return self.stats

    def _decode(self, records: Sequence[Any]) -> tuple[list[Received], list[Outgoing]]:
        received: list[Received] = []
        dead: list[Outgoing] = []
        for record in records:
            try:
                event = decode_record(record, self.decoders[record.topic], self.max_value_bytes)
            except (ValidationError, PoisonRecordError) as error:
                log.warning(
                    "dead letter %s[%d]@%d: %s",
                    record.topic,
                    record.partition,
                    record.offset,
                    _one_line(error)[:200],
                )
                dead.append(dead_letter(record, error, self.service))
            else:
                received.append(Received(record.topic, record.partition, record.offset, event))
        return received, dead

    def _committable(self, next_offsets: dict[TopicPartition, int]) -> dict[TopicPartition, int]:
        if self.commit_gate is None:
            return next_offsets
        assigned = self.consumer.assignment()
        self._consumed = {tp: o for tp, o in self._consumed.items() if tp in assigned}
        self._consumed.update(next_offsets)
        return self.commit_gate(dict(self._consumed))

    def _deliver(self, outputs: list[Outgoing], offsets: dict[TopicPartition, int]) -> None:
        to_commit = {tp: OffsetAndMetadata(offset, "", -1) for tp, offset in offsets.items()}
        if self.exactly_once:
            self.producer.begin_transaction()
            try:
                send_all(self.producer, outputs)
                if to_commit:
                    self.producer.send_offsets_to_transaction(
                        to_commit, self.consumer.group_metadata()
                    )
                self.producer.commit_transaction()
            except BaseException:
                self.producer.abort_transaction()
                raise
            return
        send_all(self.producer, outputs)
        if not to_commit:
            return
        if not self.commit_in_background:
            commit_with_retries(self.consumer, to_commit)
            return
        done = threading.Event()
        future = self.consumer.commit_async(offsets=to_commit)
        future.add_both(lambda _result: done.set())
        self._commit_in_flight = (done, future, to_commit)

    def finish_commit(self, timeout_s: float = 60.0) -> None:
        """Wait for the offset commit still in flight (`commit_in_background`). A commit that
        failed with a retriable error is made again, blocking (kafka-python's commit retries);
        any other failure is raised, as a blocking commit would have raised it."""
        if self._commit_in_flight is None:
            return
        done, future, offsets = self._commit_in_flight
        self._commit_in_flight = None
        if not done.wait(timeout_s) or future.retriable():
            commit_with_retries(self.consumer, offsets)
        elif future.failed():
            raise future.exception


def commit_with_retries(
    consumer: KafkaConsumer,
    offsets: dict[TopicPartition, OffsetAndMetadata],
    timeout_s: float = COMMIT_RETRY_S,
    backoff_s: float = 0.5,
) -> None:
    """Commit `offsets`, retrying retriable errors (broker gone, coordinator moving) with
    doubling waits for up to `timeout_s`; then, or on any other error, raise (the service
    exits non-zero and a restart re-delivers the uncommitted batch)."""
    deadline = time.monotonic() + timeout_s
    delay_s = backoff_s
    while True:
        try:
            consumer.commit(offsets=offsets)
            return
        except KafkaError as error:
            if not error.retriable or time.monotonic() + delay_s > deadline:
                raise
            log.warning(
                "commit of %d partition(s) failed, retrying in %.1f s: %s",
                len(offsets),
                delay_s,
                _one_line(error),
            )
            time.sleep(delay_s)
            delay_s = min(delay_s * 2, 5.0)


def send_all(producer: KafkaProducer, outputs: Iterable[Outgoing]) -> int:
    """Produce every message, flush, and raise the first delivery error (nothing is dropped)."""
    futures = send_many(producer, list(outputs))
    producer.flush()
    for future in futures:
        if future.failed():
            raise future.exception
    return len(futures)


def send_many(producer: KafkaProducer, outputs: Sequence[Outgoing]) -> list[Any]:
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


def appends_directly(producer: Any) -> bool:
    """Whether `append_records` can feed this producer: kafka-python's accumulator (with its
    partition queues and locks), batches and sender are there and keys go to partitions by the
    default partitioner (murmur2). Any other client version takes `send`."""
    from kafka.partitioner.default import DefaultPartitioner
    from kafka.producer.producer_batch import ProducerBatch

    accumulator = getattr(producer, "_accumulator", None)
    config = getattr(producer, "config", None)
    return (
        all(hasattr(accumulator, name) for name in ("append", "_tp_lock", "_batches"))
        and hasattr(ProducerBatch, "try_append")
        and hasattr(getattr(producer, "_sender", None), "wakeup")
        and isinstance(config, dict)
        and type(config.get("partitioner")) is DefaultPartitioner
        and not getattr(producer, "_closed", True)
    )


def append_records(
    producer: Any,
    tps: Sequence[TopicPartition | None],
    keys: Sequence[bytes | None],
    values: Sequence[bytes],
) -> list[Any]:
    """Append records straight to the producer's record accumulator; returns their futures.

    `KafkaProducer.send` re-checks, per message, what a batch settles once: metadata, the
    partition (a pure-Python murmur2, ~4 us a key), headers, size, and it formats a debug line
    even with debug logging off. Skipping that makes producing ~1.5x faster (see bench/). The
    caller has picked the partitions (`partitions_for_keys`) and the sizes; in a transaction
    each partition is added to it first, as `send` does. The sender is woken when a batch is
    started and once at the end if one is full, as `send` does (not once per message:
    a wake-up is a syscall).

    Per partition, in order: the accumulator takes a message (it finds the partition's open
    batch or starts one), then the following ones go into that batch directly, under the
    partition lock the accumulator and the sender take (a batch the sender drained or aborted
    has left the partition's queue, a closed one takes nothing), until it is full. That skips
    the accumulator's per-message checks and locks: ~1.5 us of the predictor's ~31 us a ride.
    """
    accumulator = producer._accumulator
    append = accumulator.append
    wakeup = producer._sender.wakeup
    manager = getattr(producer, "_transaction_manager", None)
    if manager is not None and manager.is_transactional():
        for tp in dict.fromkeys(tps):
            manager.maybe_add_partition_to_transaction(tp)
    by_partition: dict[Any, list[int]] = {}
    for index, tp in enumerate(tps):
        by_partition.setdefault(tp, []).append(index)
    futures: list[Any] = [None] * len(tps)
    full = False
    for tp, indexes in by_partition.items():
        lock = accumulator._tp_lock(tp)
        position = 0
        while position < len(indexes):
            index = indexes[position]
            futures[index], full_now, new_batch, _ = append(
                tp, None, keys[index], values[index], []
            )
            full = full or full_now
            if new_batch:
                wakeup()
            position += 1
            with lock:
                queue = accumulator._batches[tp]
                batch = queue[-1] if queue else None
                while batch is not None and position < len(indexes):
                    index = indexes[position]
                    future = batch.try_append(None, keys[index], values[index], [])
                    if future is None:  # full: the accumulator starts the next batch
                        full = True
                        break
                    futures[index] = future
                    position += 1
    if full:
        wakeup()
    return futures


# Kafka's default key partitioner, vectorised. kafka-python hashes every key with a pure-Python
# murmur2 (~4 us a key); this computes the identical hash (Java's `Utils.murmur2`, seed
# 0x9747b28c) with numpy on all keys of a batch, grouped by key length, and picks
# `toPositive(hash) % partitions` like the Java and kafka-python default partitioners, so a
# key lands on the same partition whichever client produced it.
_MURMUR2_SEED = np.uint32(0x9747B28C)
_MURMUR2_M = np.uint32(0x5BD1E995)


def murmur2(keys: Sequence[bytes]) -> np.ndarray:
    """The murmur2 hash (uint32) of every key, as Kafka computes it."""
    hashes = np.empty(len(keys), dtype=np.uint32)
    by_length: dict[int, list[int]] = defaultdict(list)
    for index, key in enumerate(keys):
        by_length[len(key)].append(index)
    for length, indexes in by_length.items():
        data = np.frombuffer(b"".join(keys[i] for i in indexes), dtype=np.uint8)
        hashes[indexes] = _murmur2_same_length(data.reshape(len(indexes), length))
    return hashes


def _murmur2_same_length(data: np.ndarray) -> np.ndarray:
    rows, length = data.shape
    h = np.full(rows, _MURMUR2_SEED ^ np.uint32(length), dtype=np.uint32)
    words = length // 4
    if words:
        b = data[:, : words * 4].reshape(rows, words, 4).astype(np.uint32)
        k_all = b[:, :, 0] | (b[:, :, 1] << 8) | (b[:, :, 2] << 16) | (b[:, :, 3] << 24)
        for i in range(words):
            k = k_all[:, i] * _MURMUR2_M
            k ^= k >> np.uint32(24)
            k *= _MURMUR2_M
            h *= _MURMUR2_M
            h ^= k
    tail = data[:, words * 4 :].astype(np.uint32)
    extra = length % 4
    if extra >= 3:
        h ^= tail[:, 2] << 16
    if extra >= 2:
        h ^= tail[:, 1] << 8
    if extra >= 1:
        h ^= tail[:, 0]
        h *= _MURMUR2_M
    h ^= h >> np.uint32(13)
    h *= _MURMUR2_M
    h ^= h >> np.uint32(15)
    return h


def partitions_for_keys(keys: Sequence[bytes], partitions: int) -> np.ndarray:
    """The partition (0..partitions-1) Kafka's default partitioner gives every key."""
    return (murmur2(keys) & np.uint32(0x7FFFFFFF)) % np.uint32(partitions)


def build_consumer(
    settings: KafkaSettings,
    *,
    group_id: str | None,
    topics: Sequence[str] = (),
    exactly_once: bool = False,
    **overrides: Any,
) -> KafkaConsumer:
    """A consumer that never auto-commits: the loop commits after it has flushed its outputs."""
    config: dict[str, Any] = {
        **settings.client_config(),
        "group_id": group_id,
        "enable_auto_commit": False,
        "auto_offset_reset": "earliest",
        "isolation_level": "read_committed" if exactly_once else "read_uncommitted",
        "max_partition_fetch_bytes": max(settings.max_message_bytes, 1_048_576),
        # A consumer that joins its group before the metadata of a new topic reached it is
        # assigned nothing until its next metadata refresh: seconds, not kafka-python's 5 min.
        "metadata_max_age_ms": 5_000,
        "session_timeout_ms": settings.session_timeout_ms,
        "heartbeat_interval_ms": settings.session_timeout_ms // 3,
        **overrides,
    }
    consumer = KafkaConsumer(**config)
    if topics:
        consumer.subscribe(list(topics))
        # Know the topics' partitions before the first poll joins the group. Without them the
        # group leader assigns nothing, and kafka-python 3 may never notice the metadata that
        # arrives next (it compares snapshots taken after the fact): under load a predictor sat
        # at 0 rides/s for minutes with "No partition metadata for topic" (bench/predictor_*).
        for topic in topics:
            consumer.partitions_for_topic(topic)
    return consumer


def build_producer(
    settings: KafkaSettings, *, transactional_id: str | None = None, **overrides: Any
) -> KafkaProducer:
    """An idempotent producer (acks=all); transactional when `transactional_id` is given."""
    config: dict[str, Any] = {
        **settings.client_config(),
        "acks": "all",
        # A short linger fills batches under load without hurting latency at a trickle.
        "linger_ms": 5,
        "batch_size": 256 * 1024,
        # Room for the dead letter of any value a consumer accepted (see dead_letter).
        "max_request_size": max(settings.max_message_bytes, BROKER_MAX_MESSAGE_BYTES)
        + DEAD_LETTER_HEADROOM_BYTES,
        "transactional_id": transactional_id,
        "transaction_timeout_ms": settings.transaction_timeout_ms,
        **overrides,
    }
    return KafkaProducer(**config)


def create_topics(
    settings: KafkaSettings,
    names: Iterable[str],
    *,
    partitions: int = 4,
    config: Mapping[str, str] | None = None,
) -> list[str]:
    """Create the topics that do not exist yet; returns the names it created."""
    admin = KafkaAdminClient(**settings.client_config())
    try:
        existing = set(admin.list_topics())
        wanted = [name for name in dict.fromkeys(names) if name not in existing]
        if not wanted:
            return []
        new = [
            NewTopic(name, num_partitions=partitions, replication_factor=1, topic_configs=config)
            for name in wanted
        ]
        # Created meanwhile by another service: that is what we wanted.
        with contextlib.suppress(TopicAlreadyExistsError):
            admin.create_topics(new)
        _wait_for_leaders(admin, wanted, timeout_s=10.0)
        return wanted
    finally:
        admin.close()


def _wait_for_leaders(admin: KafkaAdminClient, names: list[str], timeout_s: float) -> None:
    """Return once every partition of `names` has a leader (or after `timeout_s`), so that a
    consumer subscribing next finds them in its first metadata and is assigned partitions."""
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        described = admin.describe_topics(names)
        if len(described) == len(names) and all(
            topic["error_code"] == 0
            and topic["partitions"]
            and all(p["leader_id"] >= 0 for p in topic["partitions"])
            for topic in described
        ):
            return
        time.sleep(0.1)
    log.warning("topics %s have no leader after %.0f s", ", ".join(names), timeout_s)


def stop_on_signals(stop: threading.Event) -> None:
    """Set `stop` on SIGTERM and SIGINT, so the loop finishes its batch, flushes and commits."""

    def _handle(signum: int, _frame: object) -> None:
        log.info("received %s: finishing the batch in hand", signal.Signals(signum).name)
        stop.set()

    signal.signal(signal.SIGTERM, _handle)
    signal.signal(signal.SIGINT, _handle)


# Environment variables named in connection errors (see ridestream.settings.KafkaSettings).
_ENV_KAFKA = "RIDESTREAM_KAFKA__"


def explain_connection_error(error: BaseException, settings: KafkaSettings) -> str:
    """One line for a service's startup: why Kafka was out of reach or refused the login.

    kafka-python 3 reports a refused SASL login while bootstrapping only as a timeout
    ("Unable to bootstrap from ..."), the same as an unreachable broker; a TCP probe of the
    bootstrap servers tells the two apart. The password never appears in the line.
    """
    from kafka.errors import (
        KafkaConnectionError,
        KafkaTimeoutError,
        SaslAuthenticationFailedError,
        UnsupportedSaslMechanismError,
    )

    where = settings.bootstrap_servers
    login: str = settings.security_protocol
    if settings.sasl_mechanism:
        login += f" {settings.sasl_mechanism} as user {settings.sasl_username!r}"
    credentials = f"check {_ENV_KAFKA}SASL_USERNAME and {_ENV_KAFKA}SASL_PASSWORD"
    if isinstance(error, SaslAuthenticationFailedError):
        line = f"Kafka at {where} refused the login ({login}): {credentials}"
    elif isinstance(error, UnsupportedSaslMechanismError):
        line = (
            f"Kafka at {where} does not offer SASL {settings.sasl_mechanism}: set "
            f"{_ENV_KAFKA}SASL_MECHANISM to a mechanism the broker enables"
        )
    elif isinstance(error, KafkaTimeoutError | KafkaConnectionError):
        if not _bootstrap_answers(settings):
            line = (
                f"nothing answers at {where}: is the broker running (`ridestream broker "
                f"status`) and is {_ENV_KAFKA}BOOTSTRAP_SERVERS right?"
            )
        elif settings.sasl_mechanism:
            line = f"Kafka at {where} answers but the login ({login}) failed: {credentials}"
        else:
            line = (
                f"Kafka at {where} answers but did not let a {login} client in: if it wants "
                f"SASL, set {_ENV_KAFKA}SECURITY_PROTOCOL, SASL_MECHANISM, SASL_USERNAME and "
                "SASL_PASSWORD"
            )
    else:
        detail = " ".join(str(error).split()) or type(error).__name__
        line = f"cannot use Kafka at {where} ({login}): {type(error).__name__}: {detail}"
    if settings.sasl_password is not None:  # no library message may leak it either
        line = line.replace(settings.sasl_password.get_secret_value(), "**********")
    return line


def _bootstrap_answers(settings: KafkaSettings, timeout_s: float = 2.0) -> bool:
    """True when any bootstrap server accepts a TCP connection."""
    import socket

    for server in settings.bootstrap_servers.split(","):
        host, _, port = server.strip().rpartition(":")
        try:
            with socket.create_connection((host.strip("[]") or "localhost", int(port)), timeout_s):
                return True
        except (OSError, ValueError):
            continue
    return False


# kafka-python's configuration keys that hold secrets.
_SECRET_CONFIG_KEYS = frozenset({"sasl_plain_password", "ssl_password"})
_REDACTED = "**********"


class _RedactClientSecrets(logging.Filter):
    """Blank secrets in the client configurations kafka-python logs.

    KafkaAdminClient logs its whole configuration at DEBUG ("Starting KafkaAdminClient with
    configuration: {...}"), SASL password included; a service run with log level DEBUG would
    write the password to its logs. The filter copies such a mapping with the secrets blanked.
    """

    def filter(self, record: logging.LogRecord) -> bool:
        if isinstance(record.args, Mapping):
            record.args = _without_secrets(record.args)
        elif isinstance(record.args, tuple):
            record.args = tuple(_without_secrets(arg) for arg in record.args)
        return True


def _without_secrets(value: Any) -> Any:
    if isinstance(value, Mapping) and not _SECRET_CONFIG_KEYS.isdisjoint(value):
        return {k: _REDACTED if k in _SECRET_CONFIG_KEYS and v else v for k, v in value.items()}
    return value


# On the logger itself, so it holds whatever handlers the service configures.
logging.getLogger("kafka.admin.client").addFilter(_RedactClientSecrets())
