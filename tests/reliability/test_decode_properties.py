"""Property tests of the edge's decoding, no broker: any bytes give an event or a poison error.

`decode_record` is the only gate between a topic and a handler, so for every possible value it
must either return a valid event or raise one of the two errors the loop turns into dead letters
(pydantic's ValidationError, PoisonRecordError). Anything else would crash a service on input.
"""

from __future__ import annotations

import json
import math
from dataclasses import dataclass

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from pydantic import ValidationError

from ridestream.events import MAX_ZONE_ID, MIN_ZONE_ID, RideRequested, encode
from ridestream.stream.codec import PoisonRecordError, decode_record
from ridestream.stream.deadletter import dead_letter
from tests.reliability.payloads import (
    POISON_CORPUS,
    SMALL_MAX_VALUE_BYTES,
    Poison,
    mutated_rides,
    record_values,
    shapes,
    valid_ride_fields,
)

pytestmark = pytest.mark.reliability

# Enough to meet every branch of the strategies each run, few enough for `make test`.
MANY = settings(max_examples=200, deadline=None, suppress_health_check=[HealthCheck.too_slow])


@dataclass(frozen=True)
class Record:
    """The fields of a consumed record that the edge reads."""

    value: bytes | None
    key: bytes | None = b"k"
    topic: str = "rides.requested"
    partition: int = 0
    offset: int = 7


def decode_or_poison(value: bytes | None) -> RideRequested | Exception:
    """The event, or the poison error; any other exception escapes and fails the test."""
    try:
        event = decode_record(Record(value), RideRequested, SMALL_MAX_VALUE_BYTES)
    except (ValidationError, PoisonRecordError) as error:
        return error
    assert isinstance(event, RideRequested)
    return event


def assert_sound(event: RideRequested) -> None:
    """What every handler may rely on once an event passed the edge."""
    assert MIN_ZONE_ID <= event.pu_location_id <= MAX_ZONE_ID
    assert MIN_ZONE_ID <= event.do_location_id <= MAX_ZONE_ID
    assert math.isfinite(event.trip_distance) and event.trip_distance >= 0
    assert event.event_time.tzinfo is None
    assert decode_record(Record(encode(event)), RideRequested, SMALL_MAX_VALUE_BYTES) == event


@MANY
@given(st.binary(max_size=2_000))
def test_random_bytes_decode_to_a_sound_event_or_a_poison_error(value: bytes) -> None:
    outcome = decode_or_poison(value)
    if isinstance(outcome, RideRequested):
        assert_sound(outcome)


@MANY
@given(mutated_rides())
def test_mutated_ride_decodes_to_a_sound_event_or_a_poison_error(value: bytes) -> None:
    outcome = decode_or_poison(value)
    if isinstance(outcome, RideRequested):
        assert_sound(outcome)


@MANY
@given(shapes())
def test_json_of_any_shape_decodes_to_a_sound_event_or_a_poison_error(value: bytes) -> None:
    outcome = decode_or_poison(value)
    if isinstance(outcome, RideRequested):
        assert_sound(outcome)


@MANY
@given(valid_ride_fields)
def test_every_valid_ride_passes_the_edge_unchanged(fields: dict[str, object]) -> None:
    value = RideRequested.model_validate(fields).model_dump_json().encode()
    outcome = decode_or_poison(value)
    assert isinstance(outcome, RideRequested), outcome
    assert_sound(outcome)


@MANY
@given(record_values())
def test_dead_letter_of_any_poison_keeps_the_original_bytes(value: bytes | None) -> None:
    outcome = decode_or_poison(value)
    if isinstance(outcome, Exception):
        letter = dead_letter(Record(value), outcome, "prop-test")
        assert letter.value == (value if value is not None else b"")
        assert letter.key == b"k"
        headers = dict(letter.headers)
        assert headers["error.type"] == type(outcome).__name__.encode()
        assert headers["error.message"].strip()


@pytest.mark.parametrize("poison", POISON_CORPUS, ids=lambda poison: poison.name)
def test_corpus_record_is_poison_with_the_expected_error(poison: Poison) -> None:
    outcome = decode_or_poison(poison.value)
    assert isinstance(outcome, Exception), f"{poison.name} passed the edge as {outcome!r}"
    assert type(outcome).__name__ == poison.error_type


@pytest.mark.parametrize("zone", [True, 5.0, "5"], ids=["bool", "float", "text"])
def test_zone_id_of_the_wrong_json_type_is_poison(zone: object) -> None:
    fields = dict(
        ride_id="r1",
        event_time="2021-01-01T00:10:00",
        pu_location_id=zone,
        do_location_id=7,
        trip_distance=1.5,
    )
    outcome = decode_or_poison(json.dumps(fields).encode())
    assert isinstance(outcome, ValidationError)
