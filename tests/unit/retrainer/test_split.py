"""The time split: the newest share of rides (by pickup) is held out."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from retrainer.retrain import pickup_range, split_by_time
from ridestream.features import PICKUP_TIME, TARGET


def shuffled_rides(count: int) -> pd.DataFrame:
    pickup = pd.date_range("2021-01-01", periods=count, freq="min")
    order = np.random.default_rng(0).permutation(count)
    return pd.DataFrame({PICKUP_TIME: pickup[order], TARGET: np.arange(count, dtype=float)})


def test_newest_fifth_by_pickup_time_is_held_out():
    rides = shuffled_rides(100)
    train, holdout = split_by_time(rides, 0.2)
    assert len(train) == 80
    assert len(holdout) == 20
    assert train[PICKUP_TIME].max() < holdout[PICKUP_TIME].min()
    assert holdout[PICKUP_TIME].max() == rides[PICKUP_TIME].max()


def test_split_rounds_the_holdout_up_so_it_is_never_empty():
    train, holdout = split_by_time(shuffled_rides(7), 0.2)
    assert (len(train), len(holdout)) == (5, 2)


def test_split_keeps_every_ride_once():
    rides = shuffled_rides(1_000)
    train, holdout = split_by_time(rides, 0.25)
    together = pd.concat([train, holdout])
    assert sorted(together[TARGET]) == sorted(rides[TARGET])


@pytest.mark.parametrize("fraction", [0.0, 1.0, -0.5])
def test_holdout_fraction_outside_zero_to_one_is_refused(fraction):
    with pytest.raises(ValueError):
        split_by_time(shuffled_rides(10), fraction)


def test_pickup_range_spans_first_to_last_pickup():
    assert pickup_range(shuffled_rides(61)) == "2021-01-01T00:00..2021-01-01T01:00"
    assert pickup_range(shuffled_rides(0)) == ""
