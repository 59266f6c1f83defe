"""Kafka client factories: the consumer and the producer every service builds the same way."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from kafka import KafkaConsumer, KafkaProducer

from ridestream.settings import KafkaSettings
from ridestream.stream.deadletter import BROKER_MAX_MESSAGE_BYTES, DEAD_LETTER_HEADROOM_BYTES


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
