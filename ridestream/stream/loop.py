"""The Kafka edge, written once: the consume-process-produce loop, its commit order, dead letters.

The consumer and the producer are either client's (`ridestream.stream.client`: kafka-python or
confluent-kafka); the steps, the commit order and the guarantees are the same with both.

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

Offsets are committed only through step 5, in that order. A stateful service's commit gate
holds back the offsets of records still in open state; state closed between two polls (the
retrainer's training run that finished) releases them through `commit_released`, which takes
the same path: after the commit in flight, retried (`commit_with_retries`), inside a
transaction with `exactly_once`. A consumer without a group commits nothing (its state is
rebuilt from the topic at start).

Committing after the flush is what makes delivery at-least-once: a crash between 4 and 5
re-delivers the batch, and because every output is keyed by a stable id, duplicates can be
removed by key downstream. With `exactly_once=True` steps 4 and 5 run inside one Kafka
transaction (`send_offsets_to_transaction`), so a `read_committed` reader sees each output once.

Bugs in the handler (KeyError, TypeError, ...) are not caught: they crash the service loudly,
before the commit, and the batch is replayed after the restart.
"""

from __future__ import annotations

import logging
import threading
import time
from collections import Counter
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from operator import attrgetter
from typing import Any

from kafka import TopicPartition
from kafka.errors import KafkaError
from kafka.structs import OffsetAndMetadata
from pydantic import ValidationError

from ridestream.stream.client import Consumer, Producer
from ridestream.stream.codec import Decoder, PoisonRecordError, decode_record, one_line
from ridestream.stream.deadletter import dead_letter, source_topic
from ridestream.stream.messages import Outgoing, Received
from ridestream.stream.produce import send_all

log = logging.getLogger(__name__)

_TOPIC = attrgetter("topic")

# kafka-python 3.0.12's commit() raises KafkaConnectionError at once when the broker goes away
# while it looks up the group coordinator (ensure_coordinator_ready_async waits for a metadata
# refresh and catches only KafkaTimeoutError) instead of retrying until request_timeout_ms:
# the loop retries the commit itself, for about as long as a broker restart takes.
COMMIT_RETRY_S = 60.0


@dataclass
class BatchStats:
    """What one pass of the loop did (the `*_by_topic` counts: per topic, for the metrics of
    a service that reads or writes several topics)."""

    polled: int = 0
    valid: int = 0
    dead_letters: int = 0
    produced: int = 0
    seconds: float = 0.0
    polled_by_topic: dict[str, int] = field(default_factory=dict)
    dead_letters_by_topic: dict[str, int] = field(default_factory=dict)
    produced_by_topic: dict[str, int] = field(default_factory=dict)


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
        consumer: Consumer,
        producer: Producer,
        service: str,
        decoders: Mapping[str, Decoder],
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
        # A group-less consumer (assigned partitions, state rebuilt from the topic) has no
        # group to commit to.
        self._commits = getattr(consumer, "config", {}).get("group_id") is not None

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
        for tp, recs in polled.items():
            batch.polled_by_topic[tp.topic] = batch.polled_by_topic.get(tp.topic, 0) + len(recs)
        batch.dead_letters_by_topic = dict(Counter(source_topic(out) for out in dead))
        # map(attrgetter) counts in C: ~30 ns an output on the predictor's hot path.
        batch.produced_by_topic = dict(Counter(map(_TOPIC, outputs)))

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

    def commit_released(self) -> None:
        """Commit what the commit gate releases now, between two polls (state closed outside a
        batch), by the path of a batch's step 5: after the commit in flight, retried, inside
        a transaction with `exactly_once`. Nothing is produced."""
        if self.commit_gate is None or not self._commits:
            return
        offsets = self._committable({})
        if offsets:
            self.finish_commit()
            self._deliver([], offsets)

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
                    one_line(error)[:200],
                )
                dead.append(dead_letter(record, error, self.service))
            else:
                received.append(Received(record.topic, record.partition, record.offset, event))
        return received, dead

    def _committable(self, next_offsets: dict[TopicPartition, int]) -> dict[TopicPartition, int]:
        if not self._commits:
            return {}
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
    consumer: Consumer,
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
                one_line(error),
            )
            time.sleep(delay_s)
            delay_s = min(delay_s * 2, 5.0)
