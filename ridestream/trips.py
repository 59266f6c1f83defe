"""Reading NYC TLC trip record files into rides frames (see `ridestream.features.RIDE_COLUMNS`).

Ride ids are deterministic: `<file stem>:<row number>`, so two replays of the same file, the
training run and the retrainer all name the same ride the same way.
"""

from __future__ import annotations

from pathlib import Path

import pandas as pd

from ridestream.features import DROPOFF_TIME, PICKUP_TIME, RIDE_ID, TARGET, duration_minutes

# TLC column names per colour: green uses lpep_*, yellow tpep_* (the rest is shared).
_TIME_COLUMNS = {
    "green": ("lpep_pickup_datetime", "lpep_dropoff_datetime"),
    "yellow": ("tpep_pickup_datetime", "tpep_dropoff_datetime"),
}


class NotATripFileError(ValueError):
    """The file is not a TLC trip record file (the message says why, in one line)."""


def month_path(data_dir: Path, month: str, color: str = "green") -> Path:
    """Where the monthly TLC file of `month` (YYYY-MM) lives in the data dir."""
    return Path(data_dir) / f"{color}_tripdata_{month}.parquet"


def ride_id(source: str, row: int) -> str:
    """The deterministic ride id of row `row` of the file named `source`."""
    return f"{source}:{row}"


def read_trips(path: Path) -> pd.DataFrame:
    """Read a whole TLC parquet file as a rides frame with drop-off time and `duration_min`."""
    path = Path(path)
    raw = pd.read_parquet(path)
    color = next((c for c, cols in _TIME_COLUMNS.items() if set(cols) <= set(raw.columns)), None)
    if color is None:
        raise NotATripFileError(f"{path}: no lpep_/tpep_ pickup and drop-off columns")
    pickup, dropoff = _TIME_COLUMNS[color]
    frame = pd.DataFrame(
        {
            RIDE_ID: [ride_id(path.stem, row) for row in range(len(raw))],
            PICKUP_TIME: pd.to_datetime(raw[pickup]),
            DROPOFF_TIME: pd.to_datetime(raw[dropoff]),
            # Dtypes changed at 2023-02 (int32 ids): cast so months concatenate cleanly.
            "PULocationID": raw["PULocationID"].astype("int64"),
            "DOLocationID": raw["DOLocationID"].astype("int64"),
            "trip_distance": raw["trip_distance"].astype("float64"),
        }
    )
    frame[TARGET] = duration_minutes(frame[PICKUP_TIME], frame[DROPOFF_TIME])
    frame.attrs["color"] = color
    return frame
