"""The parts of the job that need no registry: events to buffer rows, and the skip rule."""

from __future__ import annotations

from datetime import datetime, timedelta

import pandas as pd

from retrainer.buffer import RideBuffer, completed_rides
from retrainer.retrain import retrain
from retrainer.settings import RetrainerOptions, RetrainerSettings
from ridestream.events import RideCompleted
from ridestream.features import DROPOFF_TIME, PICKUP_TIME, TARGET
from ridestream.settings import MlflowSettings


def completed(n: int, duration_min: float = 12.0) -> RideCompleted:
    pickup = datetime(2021, 1, 1) + timedelta(minutes=7 * n)
    return RideCompleted(
        ride_id=f"ride-{n}",
        event_time=pickup + timedelta(minutes=duration_min),
        pickup_time=pickup,
        duration_min=duration_min,
        pu_location_id=1 + n % 265,
        do_location_id=1 + (n * 3) % 265,
        trip_distance=1.5,
    )


def test_completed_rides_carry_pickup_dropoff_and_label():
    frame = completed_rides([completed(0), completed(1, duration_min=30.0)])
    assert list(frame[TARGET]) == [12.0, 30.0]
    assert frame[DROPOFF_TIME].iloc[1] - frame[PICKUP_TIME].iloc[1] == pd.Timedelta(minutes=30)
    buffer = RideBuffer()
    buffer.append(frame)
    assert len(buffer) == 2


def test_too_few_labelled_rides_is_a_skip_not_a_crash(tmp_path):
    rides = completed_rides([completed(n) for n in range(50)] + [completed(99, 90.0)])
    published: list = []
    # A store that does not exist: a skip must not touch the registry at all.
    mlflow = MlflowSettings(tracking_uri=f"sqlite:///{tmp_path}/missing/x.db")
    outcome = retrain(
        mlflow, RetrainerOptions(min_labelled_rides=100), rides, ["a1"], published.append
    )
    assert outcome.status == "skipped"
    assert outcome.rows == 50  # the 90-minute ride is not labelled
    assert "fewer than the 100" in outcome.reason
    assert published == []
    assert not (tmp_path / "missing").exists()


def test_retrainer_settings_read_the_nested_section_from_the_environment(monkeypatch):
    monkeypatch.setenv("RIDESTREAM_RETRAINER__MARGIN", "0.05")
    monkeypatch.setenv("RIDESTREAM_RETRAINER__BUFFER_DAYS", "7")
    settings = RetrainerSettings(_env_file=None)
    assert settings.retrainer.margin == 0.05
    assert settings.retrainer.buffer_age == timedelta(days=7)
    assert settings.retrainer.group_id == "retrainer"
