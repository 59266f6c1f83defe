"""Shadow and canary: which model serves each ride, and where the other prediction goes."""

from __future__ import annotations

from typing import Any

import numpy as np
import pandas as pd

from predictor.predict import ServingModel, batch_handler
from predictor.shadow import ShadowModel, canary_rides
from ridestream.events import DurationPredicted, decode
from ridestream.stream.messages import Received
from tests.unit.predictor.test_predict import as_events, synthetic_rides

OUT, SHADOW = "t.rides.predictions", "t.rides.shadow"


class ConstantModel:
    """Predicts the same minutes for every ride: tells the two models' outputs apart."""

    def __init__(self, minutes: float) -> None:
        self.minutes = minutes

    def predict(self, features: pd.DataFrame) -> Any:
        return np.full(len(features), self.minutes)


CHAMPION = ServingModel("m", "1", ConstantModel(10.0))
CHALLENGER = ServingModel("m", "2", ConstantModel(20.0))


def handle(shadow: ShadowModel | None, count: int = 400) -> list[tuple[str, DurationPredicted]]:
    rides = as_events(synthetic_rides(count, seed=5))
    batch = [Received("t.rides.requested", 0, i, ride) for i, ride in enumerate(rides)]
    outputs = batch_handler(lambda: CHAMPION, OUT, lambda: shadow, SHADOW)(batch)
    return [(o.topic, decode(DurationPredicted, o.value)) for o in outputs]


def test_canary_selects_about_the_fraction_and_the_same_rides_every_time() -> None:
    ids = [f"yellow_tripdata_2022-06:{i}" for i in range(20_000)]

    chosen = canary_rides(ids, 0.1)

    # Binomial sd at n = 20,000, p = 0.1: 42 rides; 4 sd of tolerance.
    assert abs(sum(chosen) - 2_000) < 170
    assert canary_rides(ids, 0.1) == chosen
    # A larger fraction keeps every ride of a smaller one (ramping up moves no ride back).
    assert all(wide for small, wide in zip(chosen, canary_rides(ids, 0.3), strict=True) if small)


def test_shadow_serves_the_champion_and_sends_the_challenger_to_the_shadow_topic() -> None:
    outputs = handle(ShadowModel(CHALLENGER, "shadow"))

    served = [p for topic, p in outputs if topic == OUT]
    shadowed = [p for topic, p in outputs if topic == SHADOW]
    assert len(served) == len(shadowed) == 400
    assert {(p.model_version, p.predicted_duration_min, p.role) for p in served} == {
        ("1", 10.0, None)
    }
    assert {(p.model_version, p.predicted_duration_min, p.role) for p in shadowed} == {
        ("2", 20.0, "shadow")
    }
    assert [p.ride_id for p in served] == [p.ride_id for p in shadowed]
    assert served[0].features == shadowed[0].features


def test_canary_serves_the_challenger_for_its_rides_only_and_each_ride_once() -> None:
    outputs = handle(ShadowModel(CHALLENGER, "canary", 0.25), count=2_000)

    served = {p.ride_id: p for topic, p in outputs if topic == OUT}
    shadowed = {p.ride_id: p for topic, p in outputs if topic == SHADOW}
    assert len(served) == len(shadowed) == 2_000  # one served and one shadow prediction a ride
    canary = canary_rides(list(served), 0.25)
    for (ride_id, prediction), chosen in zip(served.items(), canary, strict=True):
        other = shadowed[ride_id]
        if chosen:
            assert (prediction.model_version, prediction.role) == ("2", "canary")
            assert (other.model_version, other.role) == ("1", "shadow")
        else:
            assert (prediction.model_version, prediction.role) == ("1", None)
            assert (other.model_version, other.role) == ("2", "shadow")
    assert 400 < sum(canary) < 600  # 500 expected, sd 19


def test_no_challenger_or_a_challenger_that_is_the_champion_means_no_shadow_output() -> None:
    assert {topic for topic, _ in handle(None)} == {OUT}
    assert {topic for topic, _ in handle(ShadowModel(CHAMPION, "shadow"))} == {OUT}
