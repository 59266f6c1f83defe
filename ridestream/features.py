"""The one feature function, and the roles of the columns.

Training, prediction, monitoring and retraining all call `build_features` on a rides frame
(see `RIDE_COLUMNS`), so training/serving skew is ruled out by construction. Zone ids are
categorical everywhere: they are strings in the feature frame, and the drift tests treat
them as categories, never as numbers.
"""

from __future__ import annotations

from collections.abc import Iterable

import numpy as np
import pandas as pd

from ridestream.events import RideCompleted, RideRequested

# A rides frame: what is known at pickup, one row per ride.
RIDE_ID = "ride_id"
PICKUP_TIME = "pickup_datetime"
DROPOFF_TIME = "dropoff_datetime"
RIDE_COLUMNS = (RIDE_ID, PICKUP_TIME, "PULocationID", "DOLocationID", "trip_distance")

CATEGORICAL_FEATURES = ("PULocationID", "DOLocationID", "PU_DO")
NUMERICAL_FEATURES = ("trip_distance", "pickup_hour", "pickup_weekday")
FEATURES = CATEGORICAL_FEATURES + NUMERICAL_FEATURES

# The columns the monitor tests for drift (plus the prediction).
DRIFT_NUMERICAL = ("trip_distance",)
DRIFT_CATEGORICAL = ("PULocationID", "DOLocationID")

TARGET = "duration_min"
PREDICTION = "prediction"

# The course's label rule: rides of 1 to 60 minutes are used for training and scoring.
MIN_DURATION_MIN = 1.0
MAX_DURATION_MIN = 60.0


def build_features(rides: pd.DataFrame) -> pd.DataFrame:
    """Build the model's features from a rides frame (`RIDE_COLUMNS`; other columns ignored)."""
    pickup = pd.to_datetime(rides[PICKUP_TIME])
    pu = rides["PULocationID"].astype("int64").astype(str)
    do = rides["DOLocationID"].astype("int64").astype(str)
    return pd.DataFrame(
        {
            "PULocationID": pu,
            "DOLocationID": do,
            "PU_DO": pu + "_" + do,
            "trip_distance": rides["trip_distance"].astype("float64"),
            # Fractional hour: rush hour starts at 16:30, not at 16:00 or 17:00.
            "pickup_hour": pickup.dt.hour + pickup.dt.minute / 60.0,
            "pickup_weekday": pickup.dt.weekday.astype("int64"),
        },
        index=rides.index,
    )


def duration_minutes(pickup: pd.Series, dropoff: pd.Series) -> pd.Series:
    """Ride duration in minutes from pickup and drop-off times."""
    return (pd.to_datetime(dropoff) - pd.to_datetime(pickup)).dt.total_seconds() / 60.0


def is_labelled(duration_min: pd.Series | np.ndarray) -> np.ndarray:
    """Mask of the rides the course's rule keeps for training and scoring (1 to 60 minutes)."""
    values = np.asarray(duration_min, dtype="float64")
    return (values >= MIN_DURATION_MIN) & (values <= MAX_DURATION_MIN)


def rides_frame(events: Iterable[RideRequested | RideCompleted]) -> pd.DataFrame:
    """A rides frame from ride events; completed rides also get their `duration_min` label."""
    rows = []
    for event in events:
        if isinstance(event, RideCompleted):
            pickup, duration = event.pickup_time, event.duration_min
        else:
            pickup, duration = event.event_time, np.nan
        rows.append(
            {
                RIDE_ID: event.ride_id,
                PICKUP_TIME: pickup,
                "PULocationID": event.pu_location_id,
                "DOLocationID": event.do_location_id,
                "trip_distance": event.trip_distance,
                TARGET: duration,
            }
        )
    frame = pd.DataFrame(rows, columns=[*RIDE_COLUMNS, TARGET])
    frame[PICKUP_TIME] = pd.to_datetime(frame[PICKUP_TIME])
    return frame
