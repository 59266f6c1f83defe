"""The backtest agrees with the real loop: the same short replay through Kafka (predictor,
monitor and retrainer as processes, a real MLflow store) and through `backtest.engine` gives
the same windows and alerts up to the first swap, and the same decision for the first
retraining given the same training rides (the registered challenger's lineage tags name them).

Ten days of green 2021-02 after a champion trained on 2021-01: the demo's first days (the
monitor with the demo's thresholds and lateness, the retrainer with its defaults). Topics have
one partition, so the rides the retrainer had read when it trained are a prefix of
`rides.completed` in log order.
"""

from __future__ import annotations

import os
import subprocess
import sys
from datetime import datetime
from pathlib import Path

import pytest

from backtest.cli import backtest_config
from backtest.engine import gated_retraining, run_backtest, train_first_champion
from backtest.policies import POLICIES
from backtest.rides import read_replay
from retrainer.buffer import RideBuffer
from retrainer.promotion import TAG_DECISION, TAG_TRIGGER_ALERT
from retrainer.retrain import pickup_range
from retrainer.settings import RetrainerOptions
from ridestream.demo import Processes
from ridestream.events import DriftDetected, DriftWindowClosed, RideCompleted
from ridestream.features import DROPOFF_TIME, PICKUP_TIME, is_labelled, rides_frame
from ridestream.registry import ModelRegistry
from ridestream.settings import KafkaSettings, MlflowSettings
from ridestream.stream.admin import create_topics
from ridestream.stream.topic_reader import read_events
from ridestream.topics import Topics
from ridestream.training import train_and_register
from ridestream.trips import month_path, read_trips
from tests.environment import broker_and_registry_environment
from tests.integration.loop.test_closed_loop import wait_for

# Services as processes for over a minute on this machine: run with the fault tests.
pytestmark = [pytest.mark.integration, pytest.mark.slow, pytest.mark.faults]

DATA_DIR = Path(
    os.environ.get("RIDESTREAM_TEST_DATA_DIR", Path(__file__).parents[3] / ".." / "shared" / "data")
)
START, END = datetime(2021, 2, 1), datetime(2021, 2, 11)
SPEED = 43_200  # the demo's: about 2 s a day
TIMEOUT_S = 180


def same_window(kafka: DriftWindowClosed, backtest: DriftWindowClosed) -> bool:
    def numbers(w: DriftWindowClosed) -> tuple:
        return (w.quality.rmse, w.quality.mae, w.drifted_share)

    return (
        kafka.window_id == backtest.window_id
        and (kafka.rides, kafka.labelled, kafka.late, kafka.expired, kafka.model_versions)
        == (
            backtest.rides,
            backtest.labelled,
            backtest.late,
            backtest.expired,
            backtest.model_versions,
        )
        and numbers(kafka) == pytest.approx(numbers(backtest), rel=1e-9)
    )


def test_backtest_and_kafka_loop_agree_up_to_the_first_swap(
    tmp_path: Path, kafka_settings: KafkaSettings, topic_prefix: str
) -> None:
    if not month_path(DATA_DIR, "2021-02").exists():
        pytest.skip(f"no TLC data in {DATA_DIR} (set RIDESTREAM_TEST_DATA_DIR)")
    mlflow = MlflowSettings(
        tracking_uri=f"sqlite:///{tmp_path}/mlflow.db",
        artifact_location=str(tmp_path / "mlartifacts"),
    )
    topics = Topics(topic_prefix)
    create_topics(kafka_settings, topics.all_with_dead_letters(), partitions=1)
    january = read_trips(month_path(DATA_DIR, "2021-01"))
    february = read_trips(month_path(DATA_DIR, "2021-02"))
    train_and_register(mlflow, january, february, promote=True)

    env = {
        **os.environ,
        **broker_and_registry_environment(kafka_settings, topic_prefix, mlflow),
        "RIDESTREAM_STATE_DIR": str(tmp_path / "state"),
        "RIDESTREAM_BROKER__PARTITIONS": "1",
        # The demo's monitor knobs (ridestream/demo.py), which the backtest uses by default.
        "RIDESTREAM_MONITOR__CAT_THRESHOLD": "0.2",
        "RIDESTREAM_MONITOR__NUM_THRESHOLD": "0.2",
        "RIDESTREAM_MONITOR__LATENESS": "12h",
        "RIDESTREAM_MONITOR__IDLE_PARTITION_S": "5",
        "RIDESTREAM_MONITOR__SNAPSHOTS": "false",
    }
    # The backtest of the same rides, while nothing else runs.
    rides = read_replay([month_path(DATA_DIR, "2021-02")], ["2021-02"])
    rides = rides[rides[PICKUP_TIME] < END].reset_index(drop=True)
    config = backtest_config("1d")
    champion, _ = train_first_champion(january, february, config.retrainer.model_kind)
    [loop], _ = run_backtest([POLICIES["loop"]], rides, champion, config)
    assert len(loop.alerts) >= 2 and loop.retrains >= 1  # 1 and 7 February (see the README)

    processes = Processes()
    try:
        for name, extra in (("predictor", []), ("monitor", ["--window", "1d"]), ("retrainer", [])):
            processes.start(name, ["-m", name, *extra], env, tmp_path)
        replay_args = ["--months", "2021-02", "--data-dir", str(DATA_DIR)]
        replay_args += ["--start", f"{START:%Y-%m-%d}", "--end", f"{END:%Y-%m-%d}"]
        replay = subprocess.run(
            [
                sys.executable,
                "-m",
                "producer",
                *replay_args,
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
        registry = ModelRegistry(mlflow)

        def settled() -> bool:
            windows = read_events(kafka_settings, topics.drift_windows, DriftWindowClosed)
            decided = [v for v in registry.versions() if TAG_DECISION in v.tags]
            return len(windows) >= len(loop.windows) and bool(decided)

        wait_for(settled, 90, processes, "every window and a decided challenger")
    finally:
        processes.stop_all()
        for log in sorted(tmp_path.glob("*.log")):
            print(f"--- {log.name}\n{log.read_text()[-3000:]}")

    kafka_windows = sorted(
        read_events(kafka_settings, topics.drift_windows, DriftWindowClosed),
        key=lambda w: w.window_start,
    )
    kafka_alerts = read_events(kafka_settings, topics.drift_alerts, DriftDetected)
    # Up to the first swap of either run (the Kafka loop swaps later by its training latency).
    swapped = [v for w in kafka_windows for v in w.model_versions if v != "1"]
    first_swap = min(
        [s.at for s in loop.swaps]
        + [w.window_start for w in kafka_windows if set(w.model_versions) - {"1"}]
        + [END],
    )
    before = [w for w in loop.windows if w.event_time <= first_swap]
    assert [w.window_id for w in kafka_windows[: len(before)]] == [w.window_id for w in before]
    for kafka, backtest in zip(kafka_windows, before, strict=False):
        assert same_window(kafka, backtest), (kafka, backtest)
    assert sorted(a.window_id for a in kafka_alerts if a.event_time <= first_swap) == sorted(
        a.window_id for a in loop.alerts if a.event_time <= first_swap
    )
    print(f"{len(before)} windows agree; swaps in Kafka: {sorted(set(swapped))}")

    # The first challenger the retrainer decided on: its training rides were the labelled rides
    # among the first completions it read; their count and pickup range are in its tags.
    first = min(
        (v for v in registry.versions() if TAG_DECISION in v.tags), key=lambda v: int(v.version)
    )
    completed = read_events(kafka_settings, topics.rides_completed, RideCompleted)
    frame = rides_frame(completed)
    frame[DROPOFF_TIME] = [c.event_time for c in completed]
    labelled_so_far = is_labelled(frame["duration_min"]).cumsum()
    read = int((labelled_so_far < int(first.tags["rows"])).sum()) + 1
    buffer = RideBuffer(RetrainerOptions().buffer_age, RetrainerOptions().buffer_rows)
    buffer.append(frame.iloc[:read])
    snapshot = buffer.snapshot()
    assert pickup_range(snapshot) == first.tags["data_range"]
    outcome = gated_retraining(snapshot, champion.model, RetrainerOptions())
    assert not isinstance(outcome, str)
    assert outcome.decision.promote == (first.tags[TAG_DECISION] == "promoted")
    assert outcome.decision.challenger_rmse == pytest.approx(
        float(first.tags["challenger_rmse"]), abs=1e-5
    )
    assert outcome.decision.champion_rmse == pytest.approx(
        float(first.tags["champion_rmse"]), abs=1e-5
    )
    ours = next(r for r in loop.retrainings if r.status != "skipped")
    tags = first.tags
    print(
        f"first decision: Kafka v{first.version} {tags[TAG_DECISION]} for "
        f"{tags[TAG_TRIGGER_ALERT]} on {tags['rows']} rides ({tags['data_range']}); "
        f"backtest {ours.status} for {ours.alert_ids} on {ours.rows} rides ({ours.data_range})"
    )
