"""Every client setting, in one place: the consumer's and the producer's configuration, and its
translation for librdkafka.

The configuration is spelled once, with kafka-python's keyword names (the project's first
client). `librdkafka_config` translates it key by key for confluent-kafka; a key it does not
know raises, so a setting never silently misses one of the two clients
(tests/unit/shared/test_client_config.py checks that every `KafkaSettings` field reaches both).
"""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from typing import Any, Literal

from ridestream.settings import KafkaSettings
from ridestream.stream.deadletter import BROKER_MAX_MESSAGE_BYTES, DEAD_LETTER_HEADROOM_BYTES

Role = Literal["consumer", "producer"]


def consumer_config(
    settings: KafkaSettings, *, group_id: str | None, exactly_once: bool, **overrides: Any
) -> dict[str, Any]:
    """A consumer that never auto-commits: the loop commits after it has flushed its outputs."""
    return {
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


def producer_config(
    settings: KafkaSettings, *, transactional_id: str | None, **overrides: Any
) -> dict[str, Any]:
    """An idempotent producer (acks=all); transactional when `transactional_id` is given."""
    return {
        **settings.client_config(),
        "acks": "all",
        "enable_idempotence": True,
        # A short linger fills batches under load without hurting latency at a trickle.
        "linger_ms": 5,
        "batch_size": 256 * 1024,
        # Room for the dead letter of any value a consumer accepted (see dead_letter).
        "max_request_size": max(settings.max_message_bytes, BROKER_MAX_MESSAGE_BYTES)
        + DEAD_LETTER_HEADROOM_BYTES,
        # kafka-python's default, spelled out so that librdkafka gets the same.
        "delivery_timeout_ms": 120_000,
        "transactional_id": transactional_id,
        "transaction_timeout_ms": settings.transaction_timeout_ms,
        **overrides,
    }


def _same(name: str) -> Callable[[Any], dict[str, Any]]:
    return lambda value: {name: value}


def _optional(name: str) -> Callable[[Any], dict[str, Any]]:
    return lambda value: {} if value is None else {name: value}


# kafka-python keyword -> librdkafka properties. The keys a client handles itself (not
# librdkafka properties) are in ADAPTER_KEYS.
_LIBRDKAFKA: dict[str, Callable[[Any], dict[str, Any]]] = {
    "bootstrap_servers": lambda servers: {"bootstrap.servers": ",".join(servers)},
    "security_protocol": _same("security.protocol"),
    "client_id": _same("client.id"),
    # kafka-python's request timeout bounds every request; librdkafka's socket timeout does.
    "request_timeout_ms": _same("socket.timeout.ms"),
    "reconnect_backoff_max_ms": _same("reconnect.backoff.max.ms"),
    "sasl_mechanism": _same("sasl.mechanism"),
    "sasl_plain_username": _same("sasl.username"),
    "sasl_plain_password": _same("sasl.password"),
    "ssl_cafile": _same("ssl.ca.location"),
    "group_id": _optional("group.id"),
    "enable_auto_commit": _same("enable.auto.commit"),
    "auto_offset_reset": _same("auto.offset.reset"),
    "isolation_level": _same("isolation.level"),
    "max_partition_fetch_bytes": _same("max.partition.fetch.bytes"),
    "metadata_max_age_ms": _same("topic.metadata.refresh.interval.ms"),
    "session_timeout_ms": _same("session.timeout.ms"),
    "heartbeat_interval_ms": _same("heartbeat.interval.ms"),
    "fetch_max_wait_ms": _same("fetch.wait.max.ms"),
    "acks": _same("acks"),
    "enable_idempotence": _same("enable.idempotence"),
    "linger_ms": _same("linger.ms"),
    "batch_size": _same("batch.size"),
    "max_request_size": _same("message.max.bytes"),
    "delivery_timeout_ms": _same("message.timeout.ms"),
    "transactional_id": _optional("transactional.id"),
    "transaction_timeout_ms": _same("transaction.timeout.ms"),
    "compression_type": lambda codec: {"compression.type": codec or "none"},
}

# Keys the confluent adapter (ridestream.stream.confluent) applies itself: how long to wait for
# the first broker, how many records a poll returns, how long a send waits for queue room.
ADAPTER_KEYS = frozenset({"bootstrap_timeout_ms", "max_poll_records", "max_block_ms"})

_PRODUCER_ONLY = frozenset(
    {
        "acks",
        "enable.idempotence",
        "linger.ms",
        "batch.size",
        "message.timeout.ms",
        "transactional.id",
        "transaction.timeout.ms",
        "compression.type",
    }
)
_CONSUMER_ONLY = frozenset(
    {
        "group.id",
        "enable.auto.commit",
        "auto.offset.reset",
        "isolation.level",
        "max.partition.fetch.bytes",
        "session.timeout.ms",
        "heartbeat.interval.ms",
        "fetch.wait.max.ms",
    }
)


def librdkafka_config(config: Mapping[str, Any], role: Role) -> dict[str, Any]:
    """The librdkafka properties of a kafka-python configuration (without ADAPTER_KEYS).

    A producer partitions keys with `murmur2_random`: librdkafka's default (CRC32) is not
    Java's and kafka-python's murmur2, and a ride must land on the same partition whichever
    client wrote it (the monitor joins co-partitioned topics). Raises ValueError on a key with
    no translation, or a property of the other role.
    """
    translated: dict[str, Any] = {}
    for key, value in config.items():
        if key in ADAPTER_KEYS:
            continue
        if key not in _LIBRDKAFKA:
            raise ValueError(f"no librdkafka equivalent for the client setting {key!r}")
        translated.update(_LIBRDKAFKA[key](value))
    wrong = _CONSUMER_ONLY if role == "producer" else _PRODUCER_ONLY
    misplaced: Sequence[str] = sorted(wrong.intersection(translated))
    if misplaced:
        raise ValueError(f"{', '.join(misplaced)} is not a {role} setting")
    if role == "producer":
        translated["partitioner"] = "murmur2_random"
    if "transactional.id" in translated:
        # librdkafka refuses a delivery or request timeout longer than the transaction's.
        for name in ("message.timeout.ms", "socket.timeout.ms"):
            translated[name] = min(
                translated.get(name, 300_000), translated["transaction.timeout.ms"]
            )
    return translated
