"""Kafka client factories: the consumer and the producer every service builds the same way,
with the client `RIDESTREAM_KAFKA__CLIENT` names (kafka-python or confluent-kafka)."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from ridestream.settings import KafkaSettings
from ridestream.stream.client import Consumer, Producer
from ridestream.stream.client_config import consumer_config, producer_config


def build_consumer(
    settings: KafkaSettings,
    *,
    group_id: str | None,
    topics: Sequence[str] = (),
    exactly_once: bool = False,
    **overrides: Any,
) -> Consumer:
    """A consumer that never auto-commits: the loop commits after it has flushed its outputs.

    `overrides` are kafka-python keyword arguments (`ridestream.stream.client_config`
    translates them for confluent-kafka)."""
    config = consumer_config(settings, group_id=group_id, exactly_once=exactly_once, **overrides)
    if settings.client == "confluent":
        return _confluent().ConfluentConsumer(config, topics)
    from kafka import KafkaConsumer

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
) -> Producer:
    """An idempotent producer (acks=all); transactional when `transactional_id` is given."""
    config = producer_config(settings, transactional_id=transactional_id, **overrides)
    if settings.client == "confluent":
        return _confluent().ConfluentProducer(config)
    from kafka import KafkaProducer

    return KafkaProducer(**config)


def _confluent() -> Any:
    """The confluent adapters, imported only when chosen (the extra may not be installed)."""
    try:
        from ridestream.stream import confluent
    except ImportError as error:
        raise SystemExit(
            "RIDESTREAM_KAFKA__CLIENT=confluent needs confluent-kafka: "
            "pip install 'ridestream[confluent]'"
        ) from error
    return confluent
