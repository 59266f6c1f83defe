"""The shared feature function: column roles, categorical zone ids, borough pair, rides frames."""

from __future__ import annotations

from datetime import datetime

import numpy as np
import pandas as pd

from ridestream.events import RideCompleted, RideRequested
from ridestream.features import (
    CATEGORICAL_FEATURES,
    FEATURES,
    NUMERICAL_FEATURES,
    PICKUP_TIME,
    RIDE_COLUMNS,
    TARGET,
    build_features,
    is_labelled,
    rides_frame,
)
from ridestream.zones import BOROUGH_OF_ZONE, borough


def rides(**columns: object) -> pd.DataFrame:
    base: dict[str, object] = {
        "ride_id": ["a", "b", "c"],
        PICKUP_TIME: pd.to_datetime(["2021-01-04 16:30", "2021-01-09 00:15", "2021-01-10 23:45"]),
        "PULocationID": [74, 132, 7],
        "DOLocationID": [236, 74, 7],
        "trip_distance": [2.4, 18.0, 0.0],
    }
    return pd.DataFrame(base | columns)


def test_features_have_every_role_column_in_order() -> None:
    features = build_features(rides())
    assert list(features.columns) == list(FEATURES)
    assert set(CATEGORICAL_FEATURES) | set(NUMERICAL_FEATURES) == set(FEATURES)


def test_zone_ids_are_categorical_strings() -> None:
    features = build_features(rides())
    assert features["PULocationID"].tolist() == ["74", "132", "7"]
    assert features["PU_DO"].tolist() == ["74_236", "132_74", "7_7"]
    for column in CATEGORICAL_FEATURES:
        assert all(isinstance(value, str) for value in features[column])


def test_borough_pair_and_same_zone_come_from_the_zone_lookup() -> None:
    features = build_features(rides())
    assert features["borough_pair"].tolist() == [
        "Manhattan_Manhattan",
        "Queens_Manhattan",
        "Queens_Queens",
    ]
    assert features["same_zone"].tolist() == [0, 0, 1]


def test_pickup_hour_is_fractional_and_weekday_is_monday_zero() -> None:
    features = build_features(rides())
    assert features["pickup_hour"].tolist() == [16.5, 0.25, 23.75]
    assert features["pickup_weekday"].tolist() == [0, 5, 6]


def test_zone_ids_outside_the_lookup_still_get_features() -> None:
    features = build_features(rides(PULocationID=[999, 1, 265]))
    assert features["PULocationID"].tolist() == ["999", "1", "265"]
    assert features["borough_pair"].tolist()[0] == "Unknown_Manhattan"
    assert features["borough_pair"].tolist()[2] == "Outside of NYC_Queens"


def test_features_keep_the_rides_index() -> None:
    frame = rides().set_axis([10, 20, 30])
    assert build_features(frame).index.tolist() == [10, 20, 30]


def test_every_tlc_zone_has_a_borough() -> None:
    assert sorted(BOROUGH_OF_ZONE) == list(range(1, 266))
    assert borough(1) == "EWR"
    assert borough(132) == "Queens"
    assert borough(0) == "Unknown"


def test_label_rule_keeps_one_to_sixty_minutes() -> None:
    mask = is_labelled(pd.Series([0.5, 1.0, 30.0, 60.0, 60.5, np.nan]))
    assert mask.tolist() == [False, True, True, True, False, False]


def test_rides_frame_from_events_matches_the_file_columns() -> None:
    events: list[RideRequested | RideCompleted] = [
        RideRequested(
            ride_id="r1",
            event_time=datetime(2021, 1, 4, 16, 30),
            pu_location_id=74,
            do_location_id=236,
            trip_distance=2.4,
        ),
        RideCompleted(
            ride_id="r2",
            event_time=datetime(2021, 1, 4, 17, 0),
            pickup_time=datetime(2021, 1, 4, 16, 40),
            duration_min=20.0,
            pu_location_id=7,
            do_location_id=7,
            trip_distance=0.5,
        ),
    ]
    frame = rides_frame(events)
    assert list(frame.columns) == [*RIDE_COLUMNS, TARGET]
    assert frame["ride_id"].tolist() == ["r1", "r2"]
    assert frame[PICKUP_TIME].tolist() == [
        pd.Timestamp("2021-01-04 16:30"),
        pd.Timestamp("2021-01-04 16:40"),
    ]
    assert np.isnan(frame[TARGET].iloc[0])
    assert frame[TARGET].iloc[1] == 20.0
    assert build_features(frame)["PU_DO"].tolist() == ["74_236", "7_7"]


def test_rides_frame_of_no_events_is_empty_with_the_columns() -> None:
    frame = rides_frame([])
    assert list(frame.columns) == [*RIDE_COLUMNS, TARGET]
    assert build_features(frame).empty
