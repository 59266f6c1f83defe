"""Drift numbers: Evidently's own methods and thresholds, zone ids as categories, and parity
with a full Evidently Report on real windows."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from monitor.drift import (
    DriftOptions,
    column_drift,
    prepare_column,
    prepare_reference,
    window_drift,
)
from ridestream.features import PREDICTION, TARGET, build_features, is_labelled
from ridestream.trips import month_path, read_trips
from tests import tripdata

DRIFT_COLUMNS = ["trip_distance", "PULocationID", "DOLocationID", PREDICTION]


def test_zone_ids_are_compared_as_categories_not_as_numbers():
    # Numerically next to each other, categorically disjoint: a numerical test sees nothing.
    reference = prepare_column("PULocationID", "categorical", pd.Series(["1", "100"] * 1000))
    result = column_drift(reference, ["2", "99"] * 500, DriftOptions())
    assert result.column_type == "categorical"
    assert result.method == "Jensen-Shannon distance"
    assert result.score == pytest.approx(np.sqrt(np.log(2)))  # disjoint supports: the maximum
    assert result.drifted


def test_integer_zone_ids_in_the_reference_become_category_strings():
    reference = prepare_column("DOLocationID", "categorical", pd.Series([7, 7, 42]))
    assert reference.counts == {"7": 2, "42": 1}


def test_small_reference_uses_evidentlys_tests_ks_and_chi_square():
    rng = np.random.default_rng(0)
    frame = pd.DataFrame(
        {
            "trip_distance": rng.exponential(3, 500),
            "PULocationID": rng.choice(["1", "2", "3", "4"], 500),
            "DOLocationID": rng.choice(["1", "2"], 500),
            PREDICTION: rng.normal(15, 5, 500),
            TARGET: rng.normal(15, 5, 500),
        }
    )
    reference = prepare_reference(frame, "1", 5.0)
    current = {
        "trip_distance": rng.exponential(3, 300),
        "PULocationID": list(rng.choice(["1", "2", "3", "4"], 300)),
        "DOLocationID": list(rng.choice(["1", "2"], 300)),
        PREDICTION: rng.normal(25, 5, 300),
    }
    drift = window_drift(reference, current)
    assert [c.method for c in drift.columns] == [
        "K-S p_value",
        "chi-square p_value",
        "Z-test p_value",
    ]
    assert drift.prediction_drift is not None and drift.prediction_drift.drifted


def test_thresholds_and_methods_can_be_set_as_in_evidently():
    frame = pd.DataFrame(
        {
            "trip_distance": np.linspace(0, 10, 2000),
            "PULocationID": ["1", "2"] * 1000,
            "DOLocationID": ["1", "2"] * 1000,
            PREDICTION: np.linspace(5, 30, 2000),
        }
    )
    reference = prepare_reference(frame, "1", None)
    current = {
        "trip_distance": np.linspace(0, 10, 100),
        "PULocationID": ["1"] * 60 + ["2"] * 40,
        "DOLocationID": ["1"] * 50 + ["2"] * 50,
        PREDICTION: np.linspace(5, 30, 100),
    }
    options = DriftOptions(cat_threshold=0.5, num_method="ks")
    drift = window_drift(reference, current, options)
    by_column = {c.column: c for c in drift.columns}
    assert by_column["PULocationID"].threshold == 0.5
    assert by_column["trip_distance"].method == "K-S p_value"


def _windows_and_reference():
    data_dir = tripdata.months_dir("2021-01", "2021-02")
    january = month_path(data_dir, "2021-01")
    february = month_path(data_dir, "2021-02")

    def frame(rides: pd.DataFrame) -> pd.DataFrame:
        features = build_features(rides)
        # A known stand-in model: the course's baseline shape, clipped to the label range.
        features[PREDICTION] = np.clip(4.0 + 3.2 * features["trip_distance"], 1, 60)
        features[TARGET] = rides[TARGET].to_numpy()
        return features

    val = read_trips(february)
    val = val[is_labelled(val[TARGET])].sample(n=8000, random_state=0)
    rides = read_trips(january)
    day = rides["pickup_datetime"].dt.floor("D")
    windows = [
        frame(rides[day == pd.Timestamp("2021-01-05")]),  # a plain weekday
        frame(rides[day == pd.Timestamp("2021-01-09")]),  # a Saturday
        frame(rides[(day >= pd.Timestamp("2021-01-11")) & (day < pd.Timestamp("2021-01-16"))]),
    ]
    shifted = frame(rides[day == pd.Timestamp("2021-01-06")])
    shifted["trip_distance"] *= 1.5
    shifted[PREDICTION] *= 1.3
    windows.append(shifted)
    return frame(val), windows


def test_drift_numbers_equal_a_full_evidently_report_on_real_windows():
    from evidently import DataDefinition, Dataset, Report
    from evidently.presets import DataDriftPreset

    reference_frame, windows = _windows_and_reference()
    reference = prepare_reference(reference_frame, "1", 7.0)
    definition = DataDefinition(
        numerical_columns=["trip_distance", PREDICTION],
        categorical_columns=["PULocationID", "DOLocationID"],
    )
    for current in windows:
        snapshot = Report([DataDriftPreset(columns=DRIFT_COLUMNS)], include_tests=True).run(
            Dataset.from_pandas(current[DRIFT_COLUMNS], data_definition=definition),
            Dataset.from_pandas(reference_frame[DRIFT_COLUMNS], data_definition=definition),
        )
        report = snapshot.dict()
        expected = {}
        for metric in report["metrics"]:
            config = metric["config"]
            if config["type"].endswith("ValueDrift"):
                expected[config["column"]] = (
                    config["method"],
                    config["threshold"],
                    metric["value"],
                )
        verdicts = {
            test["name"].rsplit(" ", 1)[-1]: test["status"].endswith("FAIL")
            for test in report["tests"]
            if test["name"].startswith("Value Drift for column")
        }
        values = {c: current[c].to_numpy() for c in ("trip_distance", PREDICTION)}
        values.update({c: current[c].tolist() for c in ("PULocationID", "DOLocationID")})
        drift = window_drift(reference, values)
        assert drift.prediction_drift is not None
        for column in [*drift.columns, drift.prediction_drift]:
            method, threshold, score = expected[column.column]
            assert column.method == method
            assert column.threshold == threshold
            assert column.score == pytest.approx(score, rel=1e-9, abs=1e-12)
            assert column.drifted == verdicts[column.column]
