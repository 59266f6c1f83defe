"""Synthetic rides for model, training and registry tests (no data files needed)."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from ridestream.features import PICKUP_TIME, RIDE_ID, TARGET


def synthetic_rides(count: int, seed: int = 0) -> pd.DataFrame:
    """Rides whose duration depends on distance, zone and hour, like real ones, plus noise."""
    rng = np.random.default_rng(seed)
    pu = rng.integers(1, 266, count)
    do = rng.integers(1, 266, count)
    distance = rng.gamma(2.0, 1.5, count).round(2)
    pickup = pd.Timestamp("2021-01-01") + pd.to_timedelta(
        rng.integers(0, 31 * 24 * 3600, count), unit="s"
    )
    rush = ((pickup.hour >= 16) & (pickup.hour < 19)).astype(float)
    duration = 2 + 3.5 * distance + (pu % 7) + 4 * rush + rng.normal(0, 1.5, count)
    return pd.DataFrame(
        {
            RIDE_ID: [f"synthetic:{i}" for i in range(count)],
            PICKUP_TIME: pickup,
            "PULocationID": pu,
            "DOLocationID": do,
            "trip_distance": distance,
            TARGET: duration,
        }
    )


@pytest.fixture
def train_rides() -> pd.DataFrame:
    return synthetic_rides(3_000, seed=1)


@pytest.fixture
def val_rides() -> pd.DataFrame:
    return synthetic_rides(1_000, seed=2)
