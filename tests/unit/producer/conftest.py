"""Fixtures for the producer's unit tests: small trip tables written as real TLC files."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from tests import tripdata


@pytest.fixture(scope="session")
def shared_data_dir() -> Path:
    """A folder with the real green 2021-01 TLC file (see `tests.tripdata`)."""
    return tripdata.months_dir("2021-01")


def trip_table(color: str = "green", rows: int = 50, seed: int = 1) -> pd.DataFrame:
    """A TLC-shaped table (the full column set of the colour), out of pickup order."""
    rng = np.random.default_rng(seed)
    prefix = "lpep" if color == "green" else "tpep"
    pickup = pd.Timestamp("2021-01-01") + pd.to_timedelta(rng.integers(0, 86_400, rows), unit="s")
    dropoff = pickup + pd.to_timedelta(rng.integers(0, 3_600, rows), unit="s")
    return pd.DataFrame(
        {
            "VendorID": rng.integers(1, 3, rows).astype("int64"),
            f"{prefix}_pickup_datetime": pickup.astype("datetime64[us]"),
            f"{prefix}_dropoff_datetime": dropoff.astype("datetime64[us]"),
            "store_and_fwd_flag": ["N"] * rows,
            "RatecodeID": np.ones(rows),
            "PULocationID": rng.integers(1, 266, rows).astype("int64"),
            "DOLocationID": rng.integers(1, 266, rows).astype("int64"),
            "passenger_count": rng.integers(0, 5, rows).astype("float64"),
            "trip_distance": rng.uniform(0, 20, rows).round(2),
            "fare_amount": rng.uniform(3, 60, rows).round(2),
        }
    )


def write_table(frame: pd.DataFrame, path: Path) -> Path:
    """Write `frame` as parquet or CSV (TLC's CSV time format), by the file's suffix."""
    if path.name.endswith(".parquet"):
        frame.to_parquet(path, index=False)
    else:
        frame.to_csv(path, index=False, date_format="%Y-%m-%d %H:%M:%S")
    return path


@pytest.fixture
def make_trip_file(tmp_path: Path):  # type: ignore[no-untyped-def]
    """Write a TLC-shaped trip file: make_trip_file(name, color=..., rows=..., frame=...)."""

    def make(
        name: str, color: str = "green", rows: int = 50, frame: pd.DataFrame | None = None
    ) -> Path:
        table = trip_table(color, rows) if frame is None else frame
        return write_table(table, tmp_path / name)

    return make


@pytest.fixture
def trip_frame():  # type: ignore[no-untyped-def]
    """The TLC-shaped table builder (see `trip_table`)."""
    return trip_table
