"""Poison input on a real broker: every bad record is dead-lettered, every good one processed.

Poison records are interleaved with valid rides in one topic; the real StreamLoop runs with a
trivial handler (echo each ride to an output topic). Afterwards the topics must show that each
poison record sits on `<topic>.dlq` with its original key and bytes and the headers saying why
and where from, that each valid ride produced its output, and that the loop never stopped.
"""

from __future__ import annotations

import logging
from collections import Counter
from typing import Any

import pytest
from hypothesis import HealthCheck, Phase, given, settings
from pydantic import ValidationError

from ridestream.events import RideRequested, encode
from ridestream.settings import KafkaSettings
from ridestream.stream.admin import create_topics
from ridestream.stream.clients import build_consumer, build_producer
from ridestream.stream.codec import PoisonRecordError, decode_record
from ridestream.stream.loop import StreamLoop
from ridestream.topics import Topics, dead_letter_topic
from tests.reliability.payloads import (
    OVERSIZED_BYTES,
    POISON_CORPUS,
    SMALL_MAX_VALUE_BYTES,
    record_values,
    valid_ride,
)
from tests.reliability.topic_io import (
    METADATA_MAX_AGE_MS,
    RawRecord,
    by_source,
    echo_to,
    headers_of,
    produce_raw,
    read_topic,
    run_until_polled,
)

pytestmark = [pytest.mark.integration, pytest.mark.reliability]

log = logging.getLogger(__name__)

SERVICE = "poison-test"
GENERATED_PAYLOADS = 200


def make_loop(settings: KafkaSettings, source: str, group_id: str) -> StreamLoop:
    """The service's loop, except that values above SMALL_MAX_VALUE_BYTES are poison."""
    return StreamLoop(
        consumer=build_consumer(
            settings, group_id=group_id, topics=[source], metadata_max_age_ms=METADATA_MAX_AGE_MS
        ),
        producer=build_producer(settings),
        service=SERVICE,
        decoders={source: RideRequested},
        max_value_bytes=SMALL_MAX_VALUE_BYTES,
        poll_timeout_ms=300,
    )


def run_loop(settings: KafkaSettings, source: str, sink: str, group_id: str, records: int) -> Any:
    """Run the loop over `records` input records; returns its stats and committed offsets."""
    loop = make_loop(settings, source, group_id)
    try:
        stats = run_until_polled(loop, echo_to(sink), records)
        assignment = loop.consumer.assignment()
        committed = sum(loop.consumer.committed(tp) or 0 for tp in assignment)
    finally:
        loop.consumer.close()
        loop.producer.close()
    return stats, committed


def assert_dead_letter_points_at_its_source(letter: Any, source: str, inputs: dict) -> Any:
    """The dead letter's headers name a real input record with the same key and bytes."""
    headers = headers_of(letter)
    assert headers["source.topic"] == source
    assert headers["service"] == SERVICE
    assert headers["error.message"].strip()
    original = inputs[(int(headers["source.partition"]), int(headers["source.offset"]))]
    assert letter.key == original.key
    assert letter.value == (original.value if original.value is not None else b"")
    return original


def test_poison_corpus_goes_to_the_dead_letter_topic_and_valid_rides_are_processed(
    client_settings: KafkaSettings, topic_prefix: str, group_id: str
) -> None:
    topics = Topics(topic_prefix)
    source, sink = topics.rides_requested, topics.rides_predictions
    create_topics(client_settings, [source, sink, dead_letter_topic(source)], partitions=3)
    valid = [valid_ride(n) for n in range(len(POISON_CORPUS) + 1)]
    records: list[RawRecord] = []
    for n, ride in enumerate(valid):
        # One valid ride comes with a null key: its value is fine, so it is processed.
        records.append((None if n == 3 else ride.key.encode(), encode(ride)))
        if n < len(POISON_CORPUS):
            records.append((POISON_CORPUS[n].key, POISON_CORPUS[n].value))
    # The input producer may send what the loop refuses (max_request_size 1 MiB > 10 KiB).
    assert max(len(value or b"") for _, value in records) == OVERSIZED_BYTES
    produce_raw(client_settings, source, records)

    stats, committed = run_loop(client_settings, source, sink, group_id, len(records))

    assert (stats.polled, stats.valid, stats.dead_letters) == (
        len(records),
        len(valid),
        len(POISON_CORPUS),
    )
    assert committed == len(records), "every input offset, poison included, is committed"
    inputs = by_source(read_topic(client_settings, source, expect=len(records)))
    letters = read_topic(client_settings, dead_letter_topic(source), expect=len(POISON_CORPUS))
    expected = {(p.key, p.value if p.value is not None else b""): p for p in POISON_CORPUS}
    # Each poison record exactly once (a Counter, so a duplicate would show).
    assert Counter((r.key, r.value) for r in letters) == Counter(expected.keys())
    for letter in letters:
        assert_dead_letter_points_at_its_source(letter, source, inputs)
        poison = expected[(letter.key, letter.value)]
        assert headers_of(letter)["error.type"] == poison.error_type, poison.name
    outputs = read_topic(client_settings, sink, expect=len(valid))
    assert sorted(RideRequested.model_validate_json(r.value).ride_id for r in outputs) == sorted(
        ride.ride_id for ride in valid
    )
    assert all(r.key == RideRequested.model_validate_json(r.value).key.encode() for r in outputs)
    log.info(
        "poison corpus: %d poison tried, %d dead-lettered, %d valid processed",
        len(POISON_CORPUS),
        len(letters),
        len(outputs),
    )


def generated_values(count: int) -> list[bytes | None]:
    """`count` values drawn by hypothesis from `record_values()` (derandomized: reproducible)."""
    drawn: list[bytes | None] = []

    @settings(
        max_examples=count,
        database=None,
        derandomize=True,
        phases=[Phase.generate],
        deadline=None,
        suppress_health_check=list(HealthCheck),
    )
    @given(record_values())
    def collect(value: bytes | None) -> None:
        drawn.append(value)

    collect()
    return drawn


def expected_outcome(value: bytes | None) -> RideRequested | None:
    """What the edge must make of `value` (the unit-tested decode): the event, or None."""
    record = type("Record", (), {"value": value})()
    try:
        return decode_record(record, RideRequested, SMALL_MAX_VALUE_BYTES)  # type: ignore[return-value]
    except (ValidationError, PoisonRecordError):
        return None


def test_generated_payloads_are_each_dead_lettered_or_processed(
    kafka_settings: KafkaSettings, topic_prefix: str, group_id: str
) -> None:
    topics = Topics(topic_prefix)
    source, sink = topics.rides_requested, topics.rides_predictions
    create_topics(kafka_settings, [source, sink, dead_letter_topic(source)], partitions=2)
    values = generated_values(GENERATED_PAYLOADS)
    records: list[RawRecord] = [(f"gen-{i}".encode(), value) for i, value in enumerate(values)]
    outcomes = {key: expected_outcome(value) for key, value in records}
    valid = [event for event in outcomes.values() if event is not None]
    poison = [key for key, event in outcomes.items() if event is None]
    produce_raw(kafka_settings, source, records)

    stats, committed = run_loop(kafka_settings, source, sink, group_id, len(records))

    assert (stats.polled, stats.valid, stats.dead_letters) == (
        len(records),
        len(valid),
        len(poison),
    )
    assert committed == len(records)
    inputs = by_source(read_topic(kafka_settings, source, expect=len(records)))
    letters = read_topic(kafka_settings, dead_letter_topic(source), expect=len(poison))
    assert sorted(letter.key for letter in letters) == sorted(poison)
    for letter in letters:
        assert_dead_letter_points_at_its_source(letter, source, inputs)
    outputs = read_topic(kafka_settings, sink, expect=len(valid))
    assert Counter(r.value for r in outputs) == Counter(encode(event) for event in valid)
    log.info(
        "generated: %d payloads, %d poison dead-lettered, %d valid processed",
        len(records),
        len(letters),
        len(outputs),
    )
    # The strategies must exercise both paths, or this test proves little.
    assert poison and valid, f"{len(poison)} poison, {len(valid)} valid of {len(records)}"


def test_oversized_record_is_dead_lettered_when_the_service_shares_one_size_limit(
    client_settings: KafkaSettings, topic_prefix: str, group_id: str
) -> None:
    # As the services wire it: one KafkaSettings for the consumer, the producer and the loop.
    small = client_settings.model_copy(update={"max_message_bytes": SMALL_MAX_VALUE_BYTES})
    source, sink = f"{topic_prefix}in", f"{topic_prefix}out"
    create_topics(client_settings, [source, sink, dead_letter_topic(source)], partitions=1)
    oversized = next(p for p in POISON_CORPUS if p.name == "oversized")
    ride = valid_ride(1)
    produce_raw(client_settings, source, [(oversized.key, oversized.value), (b"r1", encode(ride))])
    loop = StreamLoop(
        consumer=build_consumer(
            small, group_id=group_id, topics=[source], metadata_max_age_ms=METADATA_MAX_AGE_MS
        ),
        producer=build_producer(small),
        service=SERVICE,
        decoders={source: RideRequested},
        max_value_bytes=small.max_message_bytes,
        poll_timeout_ms=300,
    )
    try:
        stats = run_until_polled(loop, echo_to(sink), 2)
    finally:
        loop.consumer.close()
        loop.producer.close()

    assert (stats.valid, stats.dead_letters) == (1, 1)
    letters = read_topic(client_settings, dead_letter_topic(source), expect=1)
    assert [letter.value for letter in letters] == [oversized.value]
