"""The trip loader: green and yellow, parquet and CSV, streamed in chunks; others refused."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from ridestream.trips import (
    NotATripFileError,
    count_rows,
    iter_trip_batches,
    month_path,
    read_trips,
    ride_id,
    source_name,
)


@pytest.mark.parametrize("color", ["green", "yellow"])
@pytest.mark.parametrize("name", ["trips.parquet", "trips.csv", "trips.csv.gz"])
def test_green_and_yellow_parquet_and_csv_read_the_same_rides(
    make_trip_file, trip_frame, color: str, name: str
) -> None:
    table = trip_frame(color, rows=40)
    path = make_trip_file(name, frame=table)
    prefix = "lpep" if color == "green" else "tpep"

    rides = read_trips(path)

    assert rides.attrs["color"] == color
    assert rides["ride_id"].tolist() == [f"trips:{row}" for row in range(40)]
    assert (rides["pickup_datetime"].to_numpy() == table[f"{prefix}_pickup_datetime"]).all()
    assert (rides["dropoff_datetime"].to_numpy() == table[f"{prefix}_dropoff_datetime"]).all()
    assert rides["PULocationID"].tolist() == table["PULocationID"].tolist()
    assert rides["trip_distance"].tolist() == pytest.approx(table["trip_distance"].tolist())
    expected_min = (
        table[f"{prefix}_dropoff_datetime"] - table[f"{prefix}_pickup_datetime"]
    ).dt.total_seconds() / 60
    assert rides["duration_min"].tolist() == pytest.approx(expected_min.tolist())


@pytest.mark.parametrize("name", ["trips.parquet", "trips.csv"])
def test_batches_stream_every_row_once_in_file_order(make_trip_file, trip_frame, name) -> None:
    table = trip_frame(rows=1_000)
    path = make_trip_file(name, frame=table)

    batches = list(iter_trip_batches(path, batch_rows=128))

    assert [len(b) for b in batches] == [128] * 7 + [104]
    assert [b.first_row for b in batches] == list(range(0, 1_000, 128))
    pickups = np.concatenate([b.pickup for b in batches])
    assert (pickups == table["lpep_pickup_datetime"].to_numpy()).all()
    assert np.concatenate([b.rows for b in batches]).tolist() == list(range(1_000))
    assert count_rows(path) == 1_000


def test_missing_values_stay_missing_not_zero(make_trip_file, trip_frame) -> None:
    table = trip_frame(rows=3)
    table["passenger_count"] = [1.0, None, 2.0]
    table.loc[1, "lpep_dropoff_datetime"] = pd.NaT
    path = make_trip_file("trips.csv", frame=table)

    (batch,) = iter_trip_batches(path)

    assert np.isnan(batch.passenger_count[1])
    assert np.isnat(batch.dropoff[1])
    assert batch.passenger_count[0] == 1.0


def test_a_file_without_vendor_and_passengers_still_reads(make_trip_file, trip_frame) -> None:
    table = trip_frame(rows=5).drop(columns=["VendorID", "passenger_count"])
    path = make_trip_file("trips.parquet", frame=table)

    (batch,) = iter_trip_batches(path)

    assert np.isnan(batch.vendor_id).all() and np.isnan(batch.passenger_count).all()


@pytest.mark.parametrize(
    ("name", "content", "reason"),
    [
        ("zones.csv", "LocationID,Borough,Zone\n1,EWR,Newark Airport\n", "no lpep_/tpep_"),
        ("notes.txt", "hello", "neither a parquet file nor a .csv"),
        ("broken.parquet", "PAR1 this is not parquet PAR1", "unreadable parquet"),
    ],
)
def test_a_file_that_is_not_a_trip_file_is_refused_with_a_one_line_reason(
    tmp_path: Path, name: str, content: str, reason: str
) -> None:
    path = tmp_path / name
    path.write_text(content)

    with pytest.raises(NotATripFileError) as caught:
        iter_trip_batches(path)

    assert reason in str(caught.value)
    assert "\n" not in str(caught.value)
    assert str(path) in str(caught.value)


def test_a_parquet_of_other_data_is_refused_naming_the_missing_columns(
    make_trip_file, trip_frame
) -> None:
    table = trip_frame(rows=3).drop(columns=["PULocationID"])
    path = make_trip_file("trips.parquet", frame=table)

    with pytest.raises(NotATripFileError, match="missing: PULocationID"):
        read_trips(path)


def test_a_missing_file_is_refused(tmp_path: Path) -> None:
    with pytest.raises(NotATripFileError, match="no such file"):
        iter_trip_batches(tmp_path / "nope.parquet")


def test_ride_ids_and_paths_keep_their_meaning() -> None:
    assert ride_id("green_tripdata_2021-01", 7) == "green_tripdata_2021-01:7"
    assert month_path(Path("data"), "2021-02") == Path("data/green_tripdata_2021-02.parquet")
    assert month_path(Path("d"), "2021-02", "yellow").name == "yellow_tripdata_2021-02.parquet"
    assert source_name(Path("x/yellow_tripdata_2019-01.csv.gz")) == "yellow_tripdata_2019-01"


def test_real_month_reads_all_rows_with_the_course_label_count(shared_data_dir: Path) -> None:
    rides = read_trips(month_path(shared_data_dir, "2021-01"))

    assert len(rides) == 76_518
    assert rides["duration_min"].between(1, 60).sum() == 73_908
    assert rides["PULocationID"].dtype == "int64"
