"""The predictor's pure logic: no training/serving skew, one prediction per ride, in order."""

from __future__ import annotations

from datetime import UTC, datetime

import numpy as np
import pandas as pd
import pytest

from predictor.predict import ServingModel, batch_handler, encode_predictions, predict_rides
from ridestream.events import DurationPredicted, RideRequested, decode, encode
from ridestream.features import FEATURES, PICKUP_TIME, RIDE_ID, TARGET, build_features
from ridestream.model import fit
from ridestream.stream.messages import Received

PRODUCED_AT = datetime(2026, 1, 1, tzinfo=UTC)


def synthetic_rides(count: int, seed: int) -> pd.DataFrame:
    rng = np.random.default_rng(seed)
    pickup = pd.Timestamp("2021-02-01") + pd.to_timedelta(
        rng.integers(0, 28 * 24 * 3600, count), unit="s"
    )
    distance = rng.gamma(2.0, 1.5, count).round(2)
    pu = rng.integers(1, 266, count)
    return pd.DataFrame(
        {
            RIDE_ID: [f"green_tripdata_2021-02:{i}" for i in range(count)],
            PICKUP_TIME: pickup,
            "PULocationID": pu,
            "DOLocationID": rng.integers(1, 266, count),
            "trip_distance": distance,
            TARGET: 2 + 3.5 * distance + (pu % 5) + rng.normal(0, 1, count),
        }
    )


def as_events(rides: pd.DataFrame) -> list[RideRequested]:
    """What the producer sends for these rides (through JSON, as on the wire)."""
    events = [
        RideRequested(
            ride_id=row.ride_id,
            event_time=row.pickup_datetime.to_pydatetime(),
            pu_location_id=row.PULocationID,
            do_location_id=row.DOLocationID,
            trip_distance=row.trip_distance,
        )
        for row in rides.itertuples()
    ]
    return [RideRequested.model_validate_json(e.model_dump_json()) for e in events]


@pytest.fixture(scope="module")
def rides() -> pd.DataFrame:
    return synthetic_rides(500, seed=3)


@pytest.fixture(scope="module", params=["gbm", "linear"])
def serving(request: pytest.FixtureRequest) -> ServingModel:
    return ServingModel("ride-duration", "4", fit(request.param, synthetic_rides(2_000, seed=4)))


def test_predictor_features_and_predictions_equal_the_training_path(
    rides: pd.DataFrame, serving: ServingModel
) -> None:
    # Training path: the rides frame of the file, build_features, the pipeline.
    features = build_features(rides)
    expected = serving.model.predict(features)
    # Serving path: the same rides as RideRequested events through the predictor.
    predictions = predict_rides(as_events(rides), serving, PRODUCED_AT)

    assert [p.ride_id for p in predictions] == rides[RIDE_ID].tolist()
    served = pd.DataFrame([p.features for p in predictions])
    pd.testing.assert_frame_equal(served, features[list(FEATURES)].reset_index(drop=True))
    np.testing.assert_array_equal([p.predicted_duration_min for p in predictions], expected)


def test_each_prediction_names_the_model_and_carries_the_pickup_time(
    rides: pd.DataFrame, serving: ServingModel
) -> None:
    events = as_events(rides.head(3))
    predictions = predict_rides(events, serving, PRODUCED_AT)
    for event, prediction in zip(events, predictions, strict=True):
        assert prediction.model_name == "ride-duration" and prediction.model_version == "4"
        assert prediction.event_time == event.event_time
        assert prediction.produced_at == PRODUCED_AT
        assert prediction.key == event.ride_id


def test_predictions_are_valid_events_on_the_wire(
    rides: pd.DataFrame, serving: ServingModel
) -> None:
    (prediction,) = predict_rides(as_events(rides.head(1)), serving, PRODUCED_AT)
    wire = decode(DurationPredicted, prediction.model_dump_json().encode())
    assert wire == prediction
    assert wire.features["PULocationID"] == str(rides["PULocationID"].iloc[0])


def test_fast_encoding_is_byte_for_byte_the_event_encoding(
    rides: pd.DataFrame, serving: ServingModel
) -> None:
    events = as_events(rides.head(50))
    fast = encode_predictions(events, serving, PRODUCED_AT)
    assert fast == [encode(p) for p in predict_rides(events, serving, PRODUCED_AT)]
    assert decode(DurationPredicted, fast[0]).ride_id == events[0].ride_id


def test_no_rides_give_no_predictions(serving: ServingModel) -> None:
    assert predict_rides([], serving) == []


def test_handler_asks_for_the_model_once_per_batch_and_keys_by_ride_id(
    rides: pd.DataFrame, serving: ServingModel
) -> None:
    asked: list[int] = []

    def current() -> ServingModel:
        asked.append(1)
        return serving

    handle = batch_handler(current, "t.rides.predictions")
    batch = [Received("t.rides.requested", 0, i, e) for i, e in enumerate(as_events(rides[:10]))]
    outputs = handle(batch)
    assert len(asked) == 1
    assert [o.key for o in outputs] == [e.event.key.encode() for e in batch]
    assert {o.topic for o in outputs} == {"t.rides.predictions"}
    assert decode(DurationPredicted, outputs[0].value).ride_id == rides[RIDE_ID].iloc[0]
