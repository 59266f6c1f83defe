"""Every event model's validation: good events round-trip, bad values are refused clearly."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import UTC, datetime

import pytest
from pydantic import ValidationError

from ridestream.events import (
    MODEL_UPDATES,
    ChallengerStarted,
    ColumnDrift,
    DriftDetected,
    DriftWindowClosed,
    DurationPredicted,
    LiveEvidence,
    ModelPromoted,
    ModelRejected,
    RideCompleted,
    RideRequested,
    RuleFired,
    WindowQuality,
    decode,
    decode_model_update,
    encode,
)
from ridestream.stream.codec import decode_record

PICKUP = datetime(2021, 1, 5, 8, 30)
DROPOFF = datetime(2021, 1, 5, 8, 52)


def requested(**overrides: object) -> dict[str, object]:
    fields: dict[str, object] = {
        "ride_id": "green_tripdata_2021-01:7",
        "event_time": PICKUP,
        "pu_location_id": 74,
        "do_location_id": 236,
        "trip_distance": 2.4,
        "vendor_id": 2,
        "passenger_count": 1,
    }
    return fields | overrides


def completed(**overrides: object) -> dict[str, object]:
    fields = requested(event_time=DROPOFF, pickup_time=PICKUP, duration_min=22.0)
    return fields | overrides


def drift(column: str = "trip_distance") -> ColumnDrift:
    return ColumnDrift(
        column=column,
        column_type="numerical",
        method="K-S p_value",
        score=0.2,
        threshold=0.05,
        drifted=False,
    )


def window() -> DriftWindowClosed:
    return DriftWindowClosed(
        window_id="1d:2021-01-05T00:00",
        window_start=datetime(2021, 1, 5),
        event_time=datetime(2021, 1, 6),
        reference_version="1",
        model_versions=["1"],
        rides=10,
        labelled=9,
        late=0,
        expired=1,
        columns=[drift()],
        drifted_share=0.0,
        prediction_drift=drift("prediction"),
        quality=WindowQuality(count=9, rmse=5.0, mae=4.0, mean_error=0.5),
    )


def alert() -> DriftDetected:
    return DriftDetected(
        alert_id="1d:2021-01-05T00:00:alert",
        event_time=datetime(2021, 1, 6),
        window_id="1d:2021-01-05T00:00",
        window_start=datetime(2021, 1, 5),
        model_version="1",
        rules=[RuleFired(rule="quality", value=9.1, threshold=6.6)],
    )


EVERY_EVENT = [
    RideRequested(**requested()),  # type: ignore[arg-type]
    RideCompleted(**completed()),  # type: ignore[arg-type]
    DurationPredicted(
        ride_id="green_tripdata_2021-01:7",
        event_time=PICKUP,
        predicted_duration_min=20.5,
        model_name="ride-duration",
        model_version="3",
        features={"PULocationID": "74", "trip_distance": 2.4, "pickup_weekday": 1},
        produced_at=datetime(2026, 11, 26, tzinfo=UTC),
    ),
    window(),
    alert(),
    ModelPromoted(
        promotion_id="ride-duration:4",
        event_time=datetime(2026, 11, 26, tzinfo=UTC),
        model_name="ride-duration",
        version="4",
        previous_version="3",
        reason="drift",
        trigger_alert_id="a",
        metrics={"rmse": 5.1},
    ),
    ModelRejected(
        rejection_id="ride-duration:5",
        event_time=datetime(2026, 11, 26, tzinfo=UTC),
        model_name="ride-duration",
        version="5",
        champion_version="4",
    ),
]


@pytest.mark.parametrize("event", EVERY_EVENT, ids=lambda e: type(e).__name__)
def test_every_event_round_trips_through_json_with_its_key(event) -> None:
    again = decode(type(event), encode(event))
    assert again == event
    assert again.schema_version == 1
    assert again.key and again.key == event.key


def test_ride_key_is_the_ride_id() -> None:
    assert RideRequested(**requested()).key == "green_tripdata_2021-01:7"  # type: ignore[arg-type]


@pytest.mark.parametrize(
    ("field", "value", "message"),
    [
        ("pu_location_id", 0, "greater than or equal to 1"),
        ("do_location_id", 266, "less than or equal to 265"),
        ("pu_location_id", "74x", "valid integer"),
        ("trip_distance", -1.0, "greater than or equal to 0"),
        ("trip_distance", 244_152.0, "less than or equal to 1000"),
        ("trip_distance", float("nan"), "finite number"),
        ("trip_distance", float("inf"), "finite number"),
        ("event_time", datetime(1999, 1, 1), "outside 2009-01-01..2100-01-01"),
        ("event_time", datetime(2300, 1, 1), "outside 2009-01-01..2100-01-01"),
        ("event_time", datetime(2021, 1, 1, tzinfo=UTC), "naive local TLC timestamp"),
        ("ride_id", "", "at least 1 character"),
        ("ride_id", "x" * 129, "at most 128 characters"),
        ("passenger_count", 99, "less than or equal to 20"),
    ],
)
def test_ride_requested_refuses_bad_values_with_a_clear_message(field, value, message) -> None:
    with pytest.raises(ValidationError, match=message):
        RideRequested(**requested(**{field: value}))  # type: ignore[arg-type]


def test_unknown_fields_and_wrong_schema_version_are_refused() -> None:
    with pytest.raises(ValidationError, match="Extra inputs are not permitted"):
        RideRequested(**requested(surge=2.0))  # type: ignore[arg-type]
    with pytest.raises(ValidationError, match="schema_version"):
        RideRequested(**requested(schema_version=2))  # type: ignore[arg-type]


def test_missing_field_is_refused() -> None:
    fields = requested()
    del fields["pu_location_id"]
    with pytest.raises(ValidationError, match="pu_location_id\n  Field required"):
        RideRequested(**fields)  # type: ignore[arg-type]


def test_completion_before_pickup_is_refused() -> None:
    with pytest.raises(ValidationError, match=r"drop-off .* is before pickup_time"):
        RideCompleted(**completed(event_time=PICKUP.replace(hour=7)))  # type: ignore[arg-type]


def test_negative_duration_is_refused() -> None:
    with pytest.raises(ValidationError, match="duration_min"):
        RideCompleted(**completed(duration_min=-3.0))  # type: ignore[arg-type]


def test_prediction_needs_a_wall_clock_time_zone() -> None:
    fields = EVERY_EVENT[2].model_dump() | {"produced_at": datetime(2026, 11, 26)}
    with pytest.raises(ValidationError, match="must carry a time zone"):
        DurationPredicted(**fields)


def test_alert_needs_at_least_one_rule() -> None:
    fields = alert().model_dump() | {"rules": []}
    with pytest.raises(ValidationError, match="at least 1 item"):
        DriftDetected(**fields)


def test_unknown_alert_rule_is_refused() -> None:
    with pytest.raises(ValidationError, match="rule"):
        RuleFired(rule="vibes", value=1.0, threshold=0.5)  # type: ignore[arg-type]


def test_window_counts_cannot_be_negative() -> None:
    fields = window().model_dump() | {"rides": -1}
    with pytest.raises(ValidationError, match="rides"):
        DriftWindowClosed(**fields)


def test_promotion_reason_is_one_of_the_known_ones() -> None:
    fields = EVERY_EVENT[5].model_dump() | {"reason": "because"}
    with pytest.raises(ValidationError, match="reason"):
        ModelPromoted(**fields)


def test_invalid_json_bytes_are_refused() -> None:
    with pytest.raises(ValidationError, match="Invalid JSON"):
        decode(RideRequested, b"\xff\xfe{not json")


def test_events_are_immutable() -> None:
    ride = RideRequested(**requested())  # type: ignore[arg-type]
    with pytest.raises(ValidationError, match="frozen"):
        ride.trip_distance = 3.0  # type: ignore[misc]


# models.updates values exactly as the code before the ModelUpdate union wrote them
# (`encode(ModelPromoted(...))`, `encode(ModelRejected(...))`): no type field.
PROMOTED_ON_THE_TOPIC = (
    b'{"schema_version":1,"event_time":"2026-11-28T17:36:59.576803Z","promotion_id":"p1",'
    b'"model_name":"m","version":"2","previous_version":"1","reason":"drift",'
    b'"trigger_alert_id":null,"metrics":{}}'
)
REJECTED_ON_THE_TOPIC = (
    b'{"schema_version":1,"event_time":"2026-11-28T17:36:59.576840Z","rejection_id":"r1",'
    b'"model_name":"m","version":"3","champion_version":"2","trigger_alert_id":null,'
    b'"metrics":{}}'
)


def test_model_update_reads_promotions_and_rejections_already_on_the_topic() -> None:
    promoted = decode_model_update(PROMOTED_ON_THE_TOPIC)
    rejected = decode_model_update(REJECTED_ON_THE_TOPIC)

    assert isinstance(promoted, ModelPromoted)
    assert (promoted.promotion_id, promoted.version, promoted.reason) == ("p1", "2", "drift")
    assert isinstance(rejected, ModelRejected)
    assert (rejected.rejection_id, rejected.version, rejected.champion_version) == ("r1", "3", "2")


@pytest.mark.parametrize("event", EVERY_EVENT[-2:], ids=lambda e: type(e).__name__)
def test_model_update_round_trips_what_the_retrainer_encodes(event) -> None:
    assert decode_model_update(encode(event)) == event


@pytest.mark.parametrize(
    "value",
    [
        b'{"version": "1"}',
        b"[1]",
        b"not json",
        b'{"promotion_id": "p1"}',
        REJECTED_ON_THE_TOPIC[:-1],
    ],
)
def test_model_update_refuses_what_is_neither_update(value: bytes) -> None:
    with pytest.raises(ValidationError):
        decode_model_update(value)


def test_a_record_with_both_ids_is_refused_as_the_promotion_it_claims_to_be() -> None:
    both = PROMOTED_ON_THE_TOPIC.replace(b'"promotion_id"', b'"rejection_id":"r1","promotion_id"')
    with pytest.raises(ValidationError, match="rejection_id"):
        decode_model_update(both)


@dataclass
class _Record:
    value: bytes
    topic: str = "models.updates"


def test_the_stream_loop_decodes_models_updates_with_the_union() -> None:
    assert isinstance(
        decode_record(_Record(REJECTED_ON_THE_TOPIC), MODEL_UPDATES, 1_000), ModelRejected
    )
    assert isinstance(
        decode_record(_Record(PROMOTED_ON_THE_TOPIC), MODEL_UPDATES, 1_000), ModelPromoted
    )


EVIDENCE = LiveEvidence(
    rides=2_412,
    blocks=27,
    first_pickup=datetime(2022, 6, 3, 14),
    last_pickup=datetime(2022, 6, 4, 17),
    champion_rmse=5.9,
    challenger_rmse=5.1,
    margin=0.02,
    alpha=0.05,
    theta=7.2,
    ci_low=1.3,
    ci_high=13.1,
    z=4.4,
    p_value=0.003,
)
LIVE_GATE_UPDATES = [
    ChallengerStarted(
        challenge_id="ride-duration:6",
        event_time=datetime(2026, 11, 26, tzinfo=UTC),
        model_name="ride-duration",
        version="6",
        champion_version="4",
        gate="canary",
        canary_fraction=0.1,
        evaluation_start=datetime(2022, 6, 3, 13, 12),
        trigger_alert_ids=["a1", "a2"],
        metrics={"challenger_rmse": 5.0},
    ),
    ModelPromoted(
        promotion_id="ride-duration:6",
        event_time=datetime(2026, 11, 26, tzinfo=UTC),
        model_name="ride-duration",
        version="6",
        previous_version="4",
        reason="drift",
        gate=EVIDENCE,
    ),
    ModelRejected(
        rejection_id="ride-duration:7",
        event_time=datetime(2026, 11, 26, tzinfo=UTC),
        model_name="ride-duration",
        version="7",
        champion_version="6",
        reason="futility",
        gate=EVIDENCE.model_copy(update={"z": None}),
    ),
]


@pytest.mark.parametrize("event", LIVE_GATE_UPDATES, ids=lambda e: type(e).__name__)
def test_live_gate_updates_round_trip_through_the_model_update_union(event) -> None:
    assert decode_model_update(encode(event)) == event
    assert decode_model_update(encode(event)).key == "ride-duration:" + event.version


def test_updates_written_before_the_live_gate_decode_with_no_evidence() -> None:
    promoted = decode_model_update(PROMOTED_ON_THE_TOPIC)
    rejected = decode_model_update(REJECTED_ON_THE_TOPIC)

    assert isinstance(promoted, ModelPromoted) and promoted.gate is None
    assert isinstance(rejected, ModelRejected) and (rejected.gate, rejected.reason) == (None, None)


def test_prediction_written_before_roles_is_a_served_prediction() -> None:
    before = (
        b'{"schema_version":1,"event_time":"2021-01-05T08:30:00","ride_id":"r1",'
        b'"predicted_duration_min":20.5,"model_name":"m","model_version":"3",'
        b'"features":{},"produced_at":"2026-11-26T00:00:00Z"}'
    )
    assert decode(DurationPredicted, before).role is None
    with pytest.raises(ValidationError):
        decode(DurationPredicted, before.replace(b'"features"', b'"role":"champion","features"'))


def test_challenger_canary_fraction_must_be_a_share() -> None:
    with pytest.raises(ValidationError):
        LIVE_GATE_UPDATES[0].model_validate(
            LIVE_GATE_UPDATES[0].model_dump() | {"canary_fraction": 1.5}
        )
