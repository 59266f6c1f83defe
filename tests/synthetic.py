"""Synthetic rides the tests share: labelled rides for training a model in seconds, ride
requests numbered like the tests count them, completions, and the one-day windows of a run."""

from __future__ import annotations

from datetime import datetime, timedelta

import numpy as np
import pandas as pd

from ridestream.events import DriftWindowClosed, RideCompleted, RideRequested, WindowQuality
from ridestream.features import PICKUP_TIME, RIDE_ID, TARGET


def synthetic_rides(count: int, seed: int, slope: float = 3.5) -> pd.DataFrame:
    """Labelled rides; `slope` (minutes per mile) tells two trained models apart."""
    rng = np.random.default_rng(seed)
    distance = rng.gamma(2.0, 1.5, count).round(2)
    return pd.DataFrame(
        {
            RIDE_ID: [f"train:{seed}:{i}" for i in range(count)],
            PICKUP_TIME: pd.Timestamp("2021-01-01")
            + pd.to_timedelta(rng.integers(0, 28 * 86400, count), unit="s"),
            "PULocationID": rng.integers(1, 266, count),
            "DOLocationID": rng.integers(1, 266, count),
            "trip_distance": distance,
            TARGET: 2 + slope * distance + rng.normal(0, 1, count),
        }
    )


def ride(n: int, prefix: str = "ride") -> RideRequested:
    """Ride request number `n` (id `<prefix>-<n>`), 7 s of pickup time after ride n - 1."""
    return RideRequested(
        ride_id=f"{prefix}-{n}",
        event_time=datetime(2021, 2, 1) + timedelta(seconds=7 * n),
        pu_location_id=1 + n % 265,
        do_location_id=1 + (n * 7) % 265,
        trip_distance=float(n % 20) / 2,
    )


def completion(ride_id: str, pickup: datetime, duration_min: float) -> RideCompleted:
    """A ride of 2 miles from zone 42 to 43 that lasted `duration_min`."""
    return RideCompleted(
        ride_id=ride_id,
        event_time=pickup + timedelta(minutes=duration_min),
        pickup_time=pickup,
        duration_min=duration_min,
        pu_location_id=42,
        do_location_id=43,
        trip_distance=2.0,
    )


def day_window(start: datetime, rides: int, version: str = "1") -> DriftWindowClosed:
    """The monitor's one-day window from `start` holding `rides` rides of `version`, all
    labelled, no drift or quality numbers."""
    return DriftWindowClosed(
        window_id=f"1d:{start:%Y-%m-%dT%H:%M}",
        window_start=start,
        event_time=start + timedelta(days=1),
        reference_version=version,
        model_versions=[version],
        rides=rides,
        labelled=rides,
        late=0,
        expired=0,
        columns=[],
        drifted_share=None,
        prediction_drift=None,
        quality=WindowQuality(count=rides, rmse=None, mae=None, mean_error=None),
    )
