"""The replayed months as one rides frame: the rows `ridestream replay` would send.

Rows go through the producer's own filter (`producer.replay.classify_rows`: the rows that form
valid events), keep the producer's ride ids (`<file>:<row>`), and are limited to pickups inside
the replayed months (the TLC files hold stray rides years off their month; the demo replays
from the first month's first day for the same reason).
"""

from __future__ import annotations

from collections.abc import Sequence
from datetime import datetime
from pathlib import Path

import numpy as np
import pandas as pd

from producer.replay import classify_rows
from ridestream.features import DROPOFF_TIME, PICKUP_TIME, RIDE_ID, TARGET
from ridestream.tripdata_fetch import missing_months
from ridestream.trips import iter_trip_batches, month_path, ride_id, source_name


class MissingMonthError(FileNotFoundError):
    """A month has no data file (the message names the file and the fetch command)."""


def month_files(data_dir: Path, months: Sequence[str], color: str = "green") -> list[Path]:
    """The data files of `months`; raises MissingMonthError naming the missing ones and the
    command that fetches them."""
    missing = missing_months(data_dir, months, color)
    if missing:
        wanted = " ".join(missing)
        raise MissingMonthError(
            f"no {color} file for {wanted} in {data_dir} "
            f"(try `ridestream data fetch --color {color} --months {wanted}`)"
        )
    return [month_path(data_dir, month, color) for month in months]


def month_bounds(month: str) -> tuple[datetime, datetime]:
    """First instant of `month` (YYYY-MM) and of the month after it."""
    start = datetime.strptime(month, "%Y-%m")
    end = datetime(start.year + start.month // 12, start.month % 12 + 1, 1)
    return start, end


def read_replay(paths: Sequence[Path], months: Sequence[str]) -> pd.DataFrame:
    """The rides of `paths` that the producer would send, picked up inside `months`, in
    pickup order (ties in file order): ride id, pickup and drop-off, zones, distance,
    `duration_min`."""
    frames = []
    for path in paths:
        source = source_name(path)
        for batch in iter_trip_batches(path):
            ok, _ = classify_rows(batch)
            rows = batch.rows[ok]
            frames.append(
                pd.DataFrame(
                    {
                        RIDE_ID: [ride_id(source, row) for row in rows.tolist()],
                        PICKUP_TIME: batch.pickup[ok],
                        DROPOFF_TIME: batch.dropoff[ok],
                        "PULocationID": batch.pu_location_id[ok].astype("int64"),
                        "DOLocationID": batch.do_location_id[ok].astype("int64"),
                        "trip_distance": batch.trip_distance[ok].astype("float64"),
                    }
                )
            )
    rides = pd.concat(frames, ignore_index=True)
    pickup = rides[PICKUP_TIME]
    inside = np.zeros(len(rides), dtype=bool)
    for month in months:
        start, end = month_bounds(month)
        inside |= ((pickup >= start) & (pickup < end)).to_numpy()
    rides = rides[inside]
    rides[TARGET] = (rides[DROPOFF_TIME] - rides[PICKUP_TIME]).dt.total_seconds() / 60.0
    return rides.sort_values(PICKUP_TIME, kind="stable").reset_index(drop=True)
