"""The Kafka edge, written once: the consume-process-produce loop, its commit order, dead letters.

One batch goes through five steps, in this order:

1. poll a batch of records;
2. decode and validate each record; a poison record (bad bytes, bad JSON, schema violation)
   becomes a dead letter on `<topic>.dlq` and takes no further part;
3. hand the valid events, the whole batch at once, to the service's handler (pure logic);
4. produce the handler's outputs and the dead letters, then flush;
5. commit the input offsets.

Committing after the flush is what makes delivery at-least-once: a crash between 4 and 5
re-delivers the batch, and because every output is keyed by a stable id, duplicates can be
removed by key downstream. With `exactly_once=True` steps 4 and 5 run inside one Kafka
transaction (`send_offsets_to_transaction`), so a `read_committed` reader sees each output once.

Bugs in the handler (KeyError, TypeError, ...) are not caught: they crash the service loudly,
before the commit, and the batch is replayed after the restart.
"""

from __future__ import annotations

import contextlib
import logging
import signal
import threading
import time
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

from kafka import KafkaAdminClient, KafkaConsumer, KafkaProducer, TopicPartition
from kafka.admin import NewTopic
from kafka.errors import TopicAlreadyExistsError
from kafka.structs import OffsetAndMetadata
from pydantic import ValidationError

from ridestream.events import Event, encode
from ridestream.settings import KafkaSettings
from ridestream.topics import dead_letter_topic

log = logging.getLogger(__name__)

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


@dataclass(frozen=True, slots=True)
class Received:
    """A valid event and where it came from."""

    topic: str
    partition: int
    offset: int
    event: Event


@dataclass(frozen=True, slots=True)
class Outgoing:
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
    return event_type.model_validate_json(record.value, strict=True)


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
        if not records:
            return batch

        received, dead = self._decode(records)
        outputs = list(handle(received))
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
        if to_commit:
            self.consumer.commit(offsets=to_commit)


def send_all(producer: KafkaProducer, outputs: Iterable[Outgoing]) -> int:
    """Produce every message, flush, and raise the first delivery error (nothing is dropped)."""
    futures = [
        producer.send(out.topic, key=out.key, value=out.value, headers=list(out.headers))
        for out in outputs
    ]
    producer.flush()
    for future in futures:
        if future.failed():
            raise future.exception
    return len(futures)


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
        **overrides,
    }
    consumer = KafkaConsumer(**config)
    if topics:
        consumer.subscribe(list(topics))
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
