"""Synthetic trips: realistic, readable by the loader, deterministic, and drifting on request."""

from __future__ import annotations

from datetime import datetime
from pathlib import Path

import numpy as np
import pyarrow as pa
import pytest

from producer.synth import SynthModel, SynthOptions, fit, generate
from producer.synth_cli import main
from ridestream.trips import iter_trip_batches, month_path, read_trips


@pytest.fixture(scope="module")
def january_model(shared_data_dir: Path) -> SynthModel:
    return fit(iter_trip_batches(month_path(shared_data_dir, "2021-01")))


def rides(model: SynthModel, **options: object) -> pa.Table:
    settings = {"rides": 40_000, "start": datetime(2021, 3, 1), "chunk_rides": 15_000, **options}
    return pa.concat_tables(generate(model, SynthOptions(**settings)))  # type: ignore[arg-type]


def durations_min(table: pa.Table) -> np.ndarray:
    pickup = table.column("lpep_pickup_datetime").to_numpy()
    dropoff = table.column("lpep_dropoff_datetime").to_numpy()
    return (dropoff - pickup).astype("timedelta64[s]").astype(float) / 60


def test_exactly_n_rides_in_bounded_chunks_from_the_start_date(january_model: SynthModel) -> None:
    chunks = list(
        generate(
            january_model,
            SynthOptions(rides=40_000, start=datetime(2021, 3, 1), chunk_rides=15_000),
        )
    )

    assert sum(c.num_rows for c in chunks) == 40_000
    assert max(c.num_rows for c in chunks) <= 15_000
    first = chunks[0].column("lpep_pickup_datetime")[0].as_py()
    assert datetime(2021, 3, 1) <= first < datetime(2021, 3, 1, 1)


def test_same_seed_same_rides_other_seed_other_rides(january_model: SynthModel) -> None:
    assert rides(january_model, seed=1).equals(rides(january_model, seed=1))
    assert not rides(january_model, seed=1).equals(rides(january_model, seed=2))


def test_rides_look_like_the_month_they_were_fitted_on(
    january_model: SynthModel, shared_data_dir: Path
) -> None:
    real = read_trips(month_path(shared_data_dir, "2021-01"))
    real = real[real["duration_min"].between(0.01, 180)]
    synthetic = rides(january_model)

    assert np.median(durations_min(synthetic)) == pytest.approx(
        real["duration_min"].median(), rel=0.1
    )
    real_hours = np.bincount(real["pickup_datetime"].dt.hour, minlength=24) / len(real)
    pickups = synthetic.column("lpep_pickup_datetime").to_numpy()
    synth_hours = np.bincount(pickups.astype("datetime64[h]").astype(int) % 24, minlength=24)
    assert np.corrcoef(real_hours, synth_hours / synthetic.num_rows)[0, 1] > 0.95
    real_top = real["PULocationID"].value_counts(normalize=True).head(10)
    synth_pu = synthetic.column("PULocationID").to_numpy()
    assert np.isin(synth_pu, real_top.index).mean() == pytest.approx(real_top.sum(), abs=0.03)


def test_slowdown_makes_trips_take_longer_and_nothing_else(january_model: SynthModel) -> None:
    base, slow = rides(january_model), rides(january_model, slowdown=1.3)

    ratio = durations_min(slow).mean() / durations_min(base).mean()

    assert ratio == pytest.approx(1.3, rel=0.01)
    assert base.column("PULocationID").equals(slow.column("PULocationID"))


def test_zone_shift_moves_the_zone_mix_towards_rare_zones(january_model: SynthModel) -> None:
    base, shifted = rides(january_model), rides(january_model, zone_shift=0.5)
    popular = np.argsort(np.bincount(january_model.pu_location_id))[-10:]

    base_share = np.isin(base.column("PULocationID").to_numpy(), popular).mean()
    shifted_share = np.isin(shifted.column("PULocationID").to_numpy(), popular).mean()

    assert shifted_share < 0.7 * base_share


def test_the_written_file_reads_back_with_the_trip_loader(
    tmp_path: Path, shared_data_dir: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    out = tmp_path / "synth_2021-03.parquet"

    code = main(
        [
            "--fit",
            "2021-01",
            "--data-dir",
            str(shared_data_dir),
            "--rides",
            "5000",
            "--out",
            str(out),
            "--start",
            "2021-03-01",
            "--slowdown",
            "1.3",
        ]
    )

    assert code == 0
    frame = read_trips(out)
    assert len(frame) == 5_000
    assert frame.attrs["color"] == "green"
    assert frame["ride_id"].iloc[-1] == "synth_2021-03:4999"
    assert (frame["duration_min"] > 0).all()
    assert "wrote 5,000 synthetic rides" in capsys.readouterr().out


def test_fitting_on_a_file_that_is_not_a_trip_file_is_a_one_line_error(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    other = tmp_path / "zones.csv"
    other.write_text("LocationID,Borough\n1,EWR\n")

    code = main(["--fit", str(other), "--rides", "10", "--out", str(tmp_path / "x.parquet")])

    assert code == 2
    assert capsys.readouterr().err.count("\n") == 1
