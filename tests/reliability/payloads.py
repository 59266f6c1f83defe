"""Message values for poison-input tests: a fixed corpus and hypothesis strategies.

The corpus names each way a `rides.requested` value can be wrong (bytes, JSON, shape, types,
ranges, size, schema version, tombstone). The strategies start from a valid RideRequested and
mutate it, or throw raw bytes, so the edge sees both near misses and garbage.
"""

from __future__ import annotations

import json
import random
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any

from hypothesis import strategies as st

from ridestream.events import MAX_TRIP_DISTANCE_MI, MAX_ZONE_ID, MIN_ZONE_ID, RideRequested

OVERSIZED_BYTES = 64 * 1024
# The loop in the tests refuses values above this (the real default is 1 MiB).
SMALL_MAX_VALUE_BYTES = 10 * 1024

RIDE_FIELDS = ("ride_id", "event_time", "pu_location_id", "do_location_id", "trip_distance")


def valid_ride(n: int) -> RideRequested:
    """The n-th valid ride of a test: id `ok-<n>`, a pickup in January 2021."""
    return RideRequested(
        ride_id=f"ok-{n}",
        event_time=datetime(2021, 1, 1) + timedelta(minutes=7 * n),
        pu_location_id=MIN_ZONE_ID + n % MAX_ZONE_ID,
        do_location_id=MIN_ZONE_ID + (n * 31) % MAX_ZONE_ID,
        trip_distance=round(0.3 * (n % 40), 2),
    )


def ride_json(**changes: Any) -> bytes:
    """A valid ride's JSON with `changes` applied (a value of `...` removes the field)."""
    fields: dict[str, Any] = {
        "schema_version": 1,
        "ride_id": "bad",
        "event_time": "2021-01-01T00:10:00",
        "pu_location_id": 42,
        "do_location_id": 236,
        "trip_distance": 2.5,
    }
    for name, value in changes.items():
        if value is ...:
            fields.pop(name, None)
        else:
            fields[name] = value
    return json.dumps(fields).encode()


def ride_json_literal(name: str, literal: bytes) -> bytes:
    """A valid ride's JSON with field `name` set to raw JSON text (NaN, Infinity, 1e999)."""
    return ride_json(**{name: "@@"}).replace(b'"@@"', literal)


@dataclass(frozen=True)
class Poison:
    """One poison record of the corpus and the error the edge must give it."""

    name: str
    value: bytes | None
    error_type: str = "ValidationError"
    null_key: bool = False

    @property
    def key(self) -> bytes | None:
        return None if self.null_key else f"poison-{self.name}".encode()


def _oversized() -> bytes:
    # A valid event padded with JSON whitespace: only its size makes it poison.
    event = valid_ride(10_000).model_dump_json().encode()
    return event + b" " * (OVERSIZED_BYTES - len(event))


POISON_CORPUS: tuple[Poison, ...] = (
    Poison("random-bytes", random.Random(7).randbytes(96)),
    Poison("invalid-utf8", b"\xff\xfe\xfd not utf-8 \xc3\x28"),
    Poison("invalid-utf8-inside-json-string", ride_json(ride_id="XX").replace(b"XX", b"\xff\xfe")),
    Poison("utf8-byte-order-mark", b"\xef\xbb\xbf" + ride_json()),
    Poison("not-json", b"ride_id=r1&pu=42"),
    Poison("json-list", b"[1, 2, 3]"),
    Poison("json-number", b"42"),
    Poison("json-null", b"null"),
    Poison("json-string", b'"ride"'),
    Poison("json-trailing-garbage", ride_json() + b" }"),
    Poison("json-nested-too-deep", b"[" * 3_000 + b"]" * 3_000),
    Poison("empty-bytes", b""),
    Poison("missing-ride-id", ride_json(ride_id=...)),
    Poison("missing-trip-distance", ride_json(trip_distance=...)),
    Poison("extra-field", ride_json(tip_amount=3.0)),
    Poison("ride-id-is-number", ride_json(ride_id=123)),
    Poison("ride-id-empty", ride_json(ride_id="")),
    Poison("ride-id-too-long", ride_json(ride_id="r" * 129)),
    Poison("zone-is-text", ride_json(pu_location_id="midtown")),
    Poison("zone-is-list", ride_json(do_location_id=[42])),
    Poison("distance-is-text", ride_json(trip_distance="far")),
    Poison("distance-nan-literal", ride_json_literal("trip_distance", b"NaN")),
    Poison("distance-infinity-literal", ride_json_literal("trip_distance", b"Infinity")),
    Poison("distance-nan-string", ride_json(trip_distance="NaN")),
    Poison("distance-inf-string", ride_json(trip_distance="-inf")),
    Poison("distance-overflows-to-inf", ride_json_literal("trip_distance", b"1e999")),
    Poison("distance-negative", ride_json(trip_distance=-0.5)),
    Poison("distance-absurd", ride_json(trip_distance=MAX_TRIP_DISTANCE_MI * 1000)),
    Poison("zone-0", ride_json(pu_location_id=0)),
    Poison("zone-266", ride_json(do_location_id=MAX_ZONE_ID + 1)),
    Poison("zone-minus-1", ride_json(pu_location_id=-1)),
    Poison("zone-huge-int", ride_json(pu_location_id=10**30)),
    Poison("time-far-past", ride_json(event_time="1900-01-01T00:00:00")),
    Poison("time-far-future", ride_json(event_time="2999-12-31T23:59:59")),
    Poison("time-with-zone", ride_json(event_time="2021-01-01T00:10:00+05:00")),
    Poison("time-utc-z", ride_json(event_time="2021-01-01T00:10:00Z")),
    Poison("time-not-a-time", ride_json(event_time="yesterday")),
    Poison("schema-version-2", ride_json(schema_version=2)),
    Poison("schema-version-text", ride_json(schema_version="1")),
    Poison("oversized", _oversized(), error_type="PoisonRecordError"),
    Poison("tombstone", None, error_type="PoisonRecordError"),
    Poison("null-key-and-bad-json", b"{oops", null_key=True),
)


# --- hypothesis strategies ----------------------------------------------------------------------

_tlc_times = st.datetimes(min_value=datetime(2009, 1, 1), max_value=datetime(2099, 12, 31))
_zones = st.integers(min_value=MIN_ZONE_ID, max_value=MAX_ZONE_ID)

valid_ride_fields = st.fixed_dictionaries(
    {
        "ride_id": st.text(
            alphabet=st.characters(codec="utf-8", exclude_categories=("Cs",)),
            min_size=1,
            max_size=40,
        ),
        "event_time": _tlc_times.map(datetime.isoformat),
        "pu_location_id": _zones,
        "do_location_id": _zones,
        "trip_distance": st.floats(min_value=0, max_value=MAX_TRIP_DISTANCE_MI),
    }
)

json_scalars = (
    st.none()
    | st.booleans()
    | st.integers()
    | st.floats(allow_nan=True, allow_infinity=True)
    | st.text(max_size=30)
    | st.sampled_from(["NaN", "inf", "-Infinity", "2021-01-01T00:10:00+01:00", "1900-01-01", ""])
)
json_values = st.recursive(
    json_scalars,
    lambda children: (
        st.lists(children, max_size=4) | st.dictionaries(st.text(max_size=10), children, max_size=4)
    ),
    max_leaves=10,
)


@st.composite
def mutated_rides(draw: st.DrawFn) -> bytes:
    """A valid ride's JSON with zero or more fields replaced, removed or added."""
    fields: dict[str, Any] = dict(draw(valid_ride_fields))
    for _ in range(draw(st.integers(min_value=0, max_value=3))):
        mutation = draw(st.sampled_from(["replace", "remove", "add"]))
        if mutation == "replace":
            fields[draw(st.sampled_from(RIDE_FIELDS))] = draw(json_values)
        elif mutation == "remove":
            fields.pop(draw(st.sampled_from(RIDE_FIELDS)), None)
        else:
            fields[draw(st.text(min_size=1, max_size=12))] = draw(json_values)
    # allow_nan: Python writes NaN / Infinity literals, which some producers do send.
    return json.dumps(fields, allow_nan=True).encode()


def shapes() -> st.SearchStrategy[bytes]:
    """JSON documents of any shape (list, number, null, object of anything)."""
    return json_values.map(lambda value: json.dumps(value, allow_nan=True).encode())


def record_values() -> st.SearchStrategy[bytes | None]:
    """Everything a topic may hold: raw bytes, any JSON, mutated rides, tombstones."""
    return st.one_of(
        st.binary(max_size=300),
        shapes(),
        mutated_rides(),
        st.just(None),
    )
