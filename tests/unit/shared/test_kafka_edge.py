"""The edge's pure parts: decoding records and building dead letters."""

from __future__ import annotations

from dataclasses import dataclass

import pytest
from pydantic import ValidationError

from ridestream.events import RideRequested
from ridestream.stream.codec import PoisonRecordError, decode_record
from ridestream.stream.deadletter import DEAD_LETTER_MAX_VALUE_BYTES, dead_letter


@dataclass
class Record:
    value: bytes | None
    key: bytes | None = b"ride-1"
    topic: str = "rides.requested"
    partition: int = 2
    offset: int = 41


GOOD = (
    b'{"ride_id":"r1","event_time":"2021-01-01T10:00:00","pu_location_id":1,'
    b'"do_location_id":2,"trip_distance":1.5}'
)


def test_valid_record_decodes_to_its_event() -> None:
    event = decode_record(Record(GOOD), RideRequested, max_value_bytes=1024)
    assert isinstance(event, RideRequested) and event.ride_id == "r1"


def test_tombstone_and_oversized_values_are_poison() -> None:
    with pytest.raises(PoisonRecordError, match="tombstone"):
        decode_record(Record(None), RideRequested, max_value_bytes=1024)
    with pytest.raises(PoisonRecordError, match="exceeds 100"):
        decode_record(Record(GOOD), RideRequested, max_value_bytes=100)


def test_dead_letter_keeps_the_original_bytes_and_says_why() -> None:
    record = Record(b'{"ride_id": 1}')
    with pytest.raises(ValidationError) as caught:
        decode_record(record, RideRequested, max_value_bytes=1024)
    letter = dead_letter(record, caught.value, service="predictor")
    headers = dict(letter.headers)
    assert letter.topic == "rides.requested.dlq"
    assert (letter.key, letter.value) == (record.key, record.value)
    assert headers["error.type"] == b"ValidationError"
    assert b"ride_id: Input should be a valid string" in headers["error.message"]
    assert b"event_time: Field required" in headers["error.message"]
    assert headers["source.topic"] == b"rides.requested"
    assert (headers["source.partition"], headers["source.offset"]) == (b"2", b"41")
    assert headers["service"] == b"predictor"


def test_dead_letter_of_a_value_too_large_for_the_broker_is_cut_and_says_so() -> None:
    huge = b"x" * (DEAD_LETTER_MAX_VALUE_BYTES + 10)
    letter = dead_letter(Record(huge), PoisonRecordError("too big"), service="monitor")
    assert letter.value == huge[:DEAD_LETTER_MAX_VALUE_BYTES]
    assert dict(letter.headers)["value.truncated.from"] == str(len(huge)).encode()
    assert dict(letter.headers)["source.offset"] == b"41"  # where the whole value still is


def test_zone_id_must_be_a_json_integer() -> None:
    for zone in (b"true", b"5.0", b'"5"'):
        value = GOOD.replace(b'"pu_location_id":1', b'"pu_location_id":' + zone)
        with pytest.raises(ValidationError, match="pu_location_id"):
            decode_record(Record(value), RideRequested, max_value_bytes=1024)
