"""The closed loop, end to end: four services as separate processes on a real broker and a real
MLflow store. Asserts on topics and the registry only.

A champion trained on green 2021-01 meets a stream of normal traffic followed by a slowdown
(trips take 1.5x longer) and then a real week a year later (green 2022-06): alerts fire, a
challenger is trained and promoted, predictions switch to the new version without a ride lost,
and on the drifted rides after the switch the new model beats the old one on the same rides.
"""

from __future__ import annotations

import os
import subprocess
import sys
import time
import urllib.request
from datetime import datetime
from pathlib import Path

import numpy as np
import pytest

from ridestream import model as models
from ridestream.demo import Processes
from ridestream.events import (
    DriftDetected,
    DurationPredicted,
    ModelPromoted,
    RideCompleted,
    RideRequested,
)
from ridestream.features import TARGET, is_labelled, rides_frame
from ridestream.kafka_broker import free_ports
from ridestream.registry import ModelRegistry
from ridestream.settings import KafkaSettings, MlflowSettings
from ridestream.stream.admin import create_topics
from ridestream.stream.topic_reader import read_events
from ridestream.topics import Topics
from ridestream.training import train_and_register
from ridestream.trips import month_path, read_trips
from tests import tripdata
from tests.environment import broker_and_registry_environment

pytestmark = [pytest.mark.integration, pytest.mark.slow]

NORMAL_RIDES, DRIFTED_RIDES = 20_000, 36_000  # about 8 and 14 days at January's rate
# Event time runs 40,000x real time: a day of rides in ~2 s, so the retrain (seconds) lands
# while the drifted stream still flows.
SPEED = 40_000
DRIFT_STARTS = datetime(2021, 3, 9)
REAL_MONTH, REAL_START, REAL_END = "2022-06", "2022-06-01", "2022-06-08"
TIMEOUT_S = 240


def synth(data_dir: Path, out: Path, rides: int, start: str, seed: int, *extra: str) -> Path:
    subprocess.run(
        [
            sys.executable,
            "-m",
            "ridestream.cli",
            "synth",
            "--fit",
            "2021-01",
            "--data-dir",
            str(data_dir),
            "--rides",
            str(rides),
            "--start",
            start,
            "--seed",
            str(seed),
            "--out",
            str(out),
            *extra,
        ],
        check=True,
        capture_output=True,
        timeout=120,
    )
    return out


@pytest.fixture
def mlflow_settings(tmp_path: Path) -> MlflowSettings:
    return MlflowSettings(
        tracking_uri=f"sqlite:///{tmp_path}/mlflow.db",
        artifact_location=str(tmp_path / "mlartifacts"),
    )


# Metrics each service must expose once the stream has gone through it (ridestream/metrics.py).
METRICS = {
    "predictor": {
        "ridestream_events_in_total",
        "ridestream_events_out_total",
        "ridestream_batch_seconds_bucket",
        "ridestream_consumer_lag_records",
        "ridestream_model_version",
    },
    "monitor": {
        "ridestream_events_in_total",
        "ridestream_window_drifted_share",
        "ridestream_window_rmse_minutes",
        "ridestream_drift_alerts_total",
    },
    "retrainer": {
        "ridestream_events_in_total",
        "ridestream_retrains_total",
        "ridestream_model_promotions_total",
        "ridestream_model_version",
    },
}


def scrape(port: int) -> set[str]:
    """The metric names (with a sample) a Prometheus endpoint serves."""
    with urllib.request.urlopen(f"http://127.0.0.1:{port}/metrics", timeout=10) as response:
        text = response.read().decode()
    return {line.split("{")[0].split(" ")[0] for line in text.splitlines() if line[:1].isalpha()}


def wait_for(condition, timeout_s: float, processes: Processes, what: str) -> None:
    deadline = time.monotonic() + timeout_s
    while not condition():
        processes.check()
        if time.monotonic() > deadline:
            pytest.fail(f"timed out waiting for {what}")
        time.sleep(2)


def test_drift_triggers_a_retrain_that_the_predictors_switch_to_without_losing_a_ride(
    tmp_path: Path,
    kafka_settings: KafkaSettings,
    topic_prefix: str,
    mlflow_settings: MlflowSettings,
) -> None:
    data_dir = tripdata.months_dir("2021-01", "2021-02", REAL_MONTH)
    topics = Topics(topic_prefix)
    create_topics(kafka_settings, topics.all_with_dead_letters(), partitions=4)
    january = read_trips(month_path(data_dir, "2021-01"))
    champion = train_and_register(
        mlflow_settings, january, read_trips(month_path(data_dir, "2021-02")), promote=True
    )
    assert champion.promoted and champion.info.version == "1"

    normal = synth(data_dir, tmp_path / "normal.parquet", NORMAL_RIDES, "2021-03-01", 1)
    drifted = synth(
        data_dir, tmp_path / "drifted.parquet", DRIFTED_RIDES, "2021-03-09", 2, "--slowdown", "1.5"
    )

    env = {
        **os.environ,
        **broker_and_registry_environment(kafka_settings, topic_prefix, mlflow_settings),
        "RIDESTREAM_STATE_DIR": str(tmp_path / "state"),
        # Retrain on the recent past only: a few days after the slowdown starts, the buffer
        # holds little else.
        "RIDESTREAM_RETRAINER__BUFFER_DAYS": "4",
        "RIDESTREAM_RETRAINER__MIN_LABELLED_RIDES": "2000",
        # Evidently's Jensen-Shannon threshold (0.1) is at the sampling noise of a one-day
        # window over ~250 zones; and at 40,000x a second of predictor lag is 11 h of event
        # time, so the lateness must cover it.
        "RIDESTREAM_MONITOR__CAT_THRESHOLD": "0.2",
        "RIDESTREAM_MONITOR__LATENESS": "12h",
        "RIDESTREAM_MONITOR__IDLE_PARTITION_S": "5",
    }
    processes = Processes()
    try:
        ports = dict(zip(METRICS, free_ports(len(METRICS)), strict=True))
        for name, extra in (("predictor", []), ("monitor", ["--window", "1d"]), ("retrainer", [])):
            service_env = env | {"RIDESTREAM_METRICS_PORT": str(ports[name])}
            processes.start(name, ["-m", name, *extra], service_env, tmp_path)
        replay = subprocess.run(
            [
                sys.executable,
                "-m",
                "producer",
                "--files",
                str(normal),
                str(drifted),
                "--speed",
                str(SPEED),
                "--no-progress",
            ],
            env=env,
            capture_output=True,
            text=True,
            timeout=TIMEOUT_S,
        )
        assert replay.returncode == 0, replay.stderr[-2000:]
        # Then a real later week: a year on, zones and trips have moved.
        real_args = ["--months", REAL_MONTH, "--data-dir", str(data_dir), "--start", REAL_START]
        real_args += ["--end", REAL_END, "--speed", str(SPEED), "--no-progress"]
        real = subprocess.run(
            [sys.executable, "-m", "producer", *real_args],
            env=env,
            capture_output=True,
            text=True,
            timeout=TIMEOUT_S,
        )
        assert real.returncode == 0, real.stderr[-2000:]

        requested = read_events(kafka_settings, topics.rides_requested, RideRequested)
        real_rides = len(requested) - NORMAL_RIDES - DRIFTED_RIDES
        assert real_rides > 10_000  # a week of green 2022-06

        def all_predicted() -> bool:
            return len(
                read_events(kafka_settings, topics.rides_predictions, DurationPredicted)
            ) >= len(requested)

        wait_for(all_predicted, 60, processes, "a prediction for every ride")
        # While the services run, each serves its Prometheus metrics.
        for name, wanted in METRICS.items():
            exposed = scrape(ports[name])
            assert wanted <= exposed, f"{name} lacks {sorted(wanted - exposed)}"
    finally:
        processes.stop_all()
        for log in sorted(tmp_path.glob("*.log")):
            print(f"--- {log.name}\n{log.read_text()[-3000:]}")

    alerts = read_events(kafka_settings, topics.drift_alerts, DriftDetected)
    slowdown = [a for a in alerts if a.window_start >= DRIFT_STARTS]
    assert any(r.rule == "quality" for a in slowdown for r in a.rules), "the slowdown went unseen"
    assert any(a.window_start.year == 2022 for a in alerts), "the real shift went unseen"

    # The retrainer announces the champion it found at start ("initial"); after that, every
    # promotion answers an alert, the first one replacing the champion trained on January.
    updates = read_events(kafka_settings, topics.models_updates, ModelPromoted)
    assert {p.reason for p in updates} <= {"initial", "drift"}
    promotions = sorted((p for p in updates if p.reason == "drift"), key=lambda p: p.event_time)
    assert promotions, "no challenger was promoted"
    assert {p.trigger_alert_id for p in promotions} <= {a.alert_id for a in alerts}
    assert promotions[0].previous_version == "1"
    first, last = promotions[0], promotions[-1]

    registry = ModelRegistry(mlflow_settings)
    assert registry.champion().version == last.version  # type: ignore[union-attr]
    assert registry.alias("previous").version == last.previous_version  # type: ignore[union-attr]

    predictions = read_events(kafka_settings, topics.rides_predictions, DurationPredicted)
    by_ride = {p.ride_id: p for p in predictions}
    assert set(by_ride) == {r.ride_id for r in requested}  # none lost (duplicates were by key)
    versions = [p.model_version for p in sorted(predictions, key=lambda p: p.event_time)]
    # Predictions switch from the January champion to the first challenger; later promotions
    # may land after the last ride was predicted.
    assert versions[0] == "1" and first.version in versions
    assert set(versions) <= {"1", *(p.version for p in promotions)}

    # The rides the first challenger predicted: it and the January champion on the same rides.
    completed = read_events(kafka_settings, topics.rides_completed, RideCompleted)
    after = [c for c in completed if by_ride[c.ride_id].model_version == first.version]
    rides = rides_frame(after)
    rides = rides[is_labelled(rides[TARGET])]
    assert len(rides) > 1_000
    truth = rides[TARGET].to_numpy()
    old = models.predict(registry.load_model("1"), rides)
    new = models.predict(registry.load_model(first.version), rides)
    rmse_old = float(np.sqrt(np.mean((old - truth) ** 2)))
    rmse_new = float(np.sqrt(np.mean((new - truth) ** 2)))
    print(
        f"after the switch, on {len(rides)} rides: "
        f"RMSE v1 {rmse_old:.2f}, v{first.version} {rmse_new:.2f}"
    )
    assert rmse_new < rmse_old
