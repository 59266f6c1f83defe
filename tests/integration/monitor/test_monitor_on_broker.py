"""The monitor on a real broker: real TLC rides, predictions by a known function, no MLflow.

Events go straight onto the topics with a KafkaProducer; the monitor runs in a thread through
`monitor.service.run` with a reference built here (the `reference_provider` seam).
"""

from __future__ import annotations

import threading
import time
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import pytest
from kafka import KafkaConsumer, KafkaProducer

from monitor.drift import Reference, prepare_reference
from monitor.service import run
from monitor.settings import MonitorOptions, MonitorSettings
from ridestream.events import (
    DriftDetected,
    DriftWindowClosed,
    DurationPredicted,
    Event,
    RideCompleted,
    encode,
)
from ridestream.features import PREDICTION, TARGET, build_features, is_labelled
from ridestream.settings import KafkaSettings
from ridestream.stream.admin import create_topics
from ridestream.topics import Topics
from ridestream.trips import read_trips
from tests import tripdata

pytestmark = pytest.mark.integration

TRAINING_MONTH = "2021-01"
# Three weekdays of the training month, and enough of the next day to close the last window.
FIRST_PICKUP, LAST_PICKUP = "2021-01-05", "2021-01-08 03:00"
DRIFT_FROM = pd.Timestamp("2021-01-06")
WINDOWS = ["1d:2021-01-05T00:00", "1d:2021-01-06T00:00", "1d:2021-01-07T00:00"]
# Evidently's default Jensen-Shannon threshold (0.1) is about the sampling noise of 250 zones in
# a 3,000-ride day (same-month days score 0.11-0.13), so the day windows here use 0.2.
CAT_THRESHOLD = 0.2


def predict(features: pd.DataFrame) -> np.ndarray:
    """A known stand-in model: the course baseline's shape, clipped to the label range."""
    return np.clip(4.0 + 3.2 * features["trip_distance"].to_numpy(), 1.0, 60.0)


@pytest.fixture(scope="module")
def month() -> pd.DataFrame:
    return read_trips(tripdata.month_file(TRAINING_MONTH))


@pytest.fixture(scope="module")
def reference(month: pd.DataFrame) -> Reference:
    """The champion's reference as the registry would give it: labelled training-month rides."""
    rides = month[is_labelled(month[TARGET])].sample(n=10_000, random_state=0)
    frame = build_features(rides)
    frame[PREDICTION] = predict(frame)
    frame[TARGET] = rides[TARGET].to_numpy()
    rmse = float(np.sqrt(np.mean((frame[PREDICTION] - frame[TARGET]) ** 2)))
    return prepare_reference(frame, "1", rmse)


@pytest.fixture(scope="module")
def clean_events(month: pd.DataFrame) -> list[Event]:
    return ride_events(month, drifted=False)


@pytest.fixture(scope="module")
def drifted_events(month: pd.DataFrame) -> list[Event]:
    return ride_events(month, drifted=True)


def ride_events(month: pd.DataFrame, drifted: bool) -> list[Event]:
    """Predictions (at pickup) and completions (at drop-off) of the chosen days, time-ordered.

    `drifted`: from DRIFT_FROM on, distances × 1.5, durations × 2 (the model's error grows with
    them) and both zones moved to other zones.
    """
    pickup = month["pickup_datetime"]
    rides = month[(pickup >= FIRST_PICKUP) & (pickup < LAST_PICKUP)]
    rides = rides[rides[TARGET].between(0, 24 * 60) & (rides["trip_distance"] < 500)].copy()
    if drifted:
        late = rides["pickup_datetime"] >= DRIFT_FROM
        rides.loc[late, "trip_distance"] *= 1.5
        rides.loc[late, TARGET] *= 2.0
        for zone in ("PULocationID", "DOLocationID"):
            rides.loc[late, zone] = (rides.loc[late, zone] * 7) % 263 + 1
    dropoff = rides["pickup_datetime"] + pd.to_timedelta(rides[TARGET], unit="min")
    # Rides still running at the end would push event time further and close an extra window.
    ended = dropoff < pd.Timestamp(LAST_PICKUP) + pd.Timedelta(hours=1)
    rides, dropoff = rides[ended], dropoff[ended]
    features = build_features(rides)
    predicted = predict(features)
    produced_at = datetime(2026, 1, 1, tzinfo=UTC)
    events: list[Event] = []
    for i, (ride, feats) in enumerate(
        zip(rides.itertuples(index=False), features.to_dict("records"), strict=True)
    ):
        events.append(
            DurationPredicted(
                ride_id=ride.ride_id,
                event_time=ride.pickup_datetime,
                predicted_duration_min=float(predicted[i]),
                model_name="ride-duration",
                model_version="1",
                features=feats,
                produced_at=produced_at,
            )
        )
        events.append(
            RideCompleted(
                ride_id=ride.ride_id,
                event_time=dropoff.iloc[i].to_pydatetime(warn=False),
                pickup_time=ride.pickup_datetime,
                duration_min=float(getattr(ride, TARGET)),
                pu_location_id=int(ride.PULocationID),
                do_location_id=int(ride.DOLocationID),
                trip_distance=float(ride.trip_distance),
            )
        )
    events.sort(key=lambda e: e.event_time)
    return events


def produce(kafka: KafkaSettings, topics: Topics, events: list[Event]) -> None:
    create_topics(kafka, topics.all(), partitions=4)
    producer = KafkaProducer(**kafka.client_config(), linger_ms=20, batch_size=512 * 1024)
    try:
        for event in events:
            topic = (
                topics.rides_predictions
                if isinstance(event, DurationPredicted)
                else topics.rides_completed
            )
            producer.send(topic, key=event.key.encode(), value=encode(event))
        producer.flush()
    finally:
        producer.close()


def read_topic(kafka: KafkaSettings, topic: str) -> list[Any]:
    consumer = KafkaConsumer(
        topic,
        **kafka.client_config(),
        auto_offset_reset="earliest",
        enable_auto_commit=False,
        consumer_timeout_ms=1_500,
    )
    try:
        return list(consumer)
    finally:
        consumer.close()


def settings_for(
    kafka: KafkaSettings, prefix: str, group: str, tmp: Path, snapshots: bool = False
) -> MonitorSettings:
    return MonitorSettings(
        kafka=kafka,
        topic_prefix=prefix,
        monitor=MonitorOptions(
            group_id=group,
            window="1d",
            cat_threshold=CAT_THRESHOLD,
            snapshots=snapshots,
            reports_dir=tmp / "reports",
            max_poll_records=500,
            # Nothing here pauses a producer: the last windows close a second after the end.
            idle_partition_s=1.0,
        ),
    )


class MonitorThread:
    """`monitor.service.run` in a thread, stopped on demand."""

    def __init__(
        self, settings: MonitorSettings, reference: Reference, stop_after_windows: int = 0
    ) -> None:
        self.stop = threading.Event()
        self.error: BaseException | None = None
        self.settings = settings
        self.reference = reference
        self.stop_after_windows = stop_after_windows
        self.thread = threading.Thread(target=self._run, daemon=True)

    def _run(self) -> None:
        try:
            run(self.settings, lambda version: self.reference, self.stop, self._on_batch)
        except BaseException as error:  # reported by the test
            self.error = error

    def _on_batch(self, batch: Any) -> None:
        if self.stop_after_windows and batch.produced >= 1:
            self.stop.set()

    def __enter__(self) -> MonitorThread:
        self.thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self.stop.set()
        self.thread.join(60)
        assert not self.thread.is_alive(), "monitor did not stop"
        assert self.error is None, self.error


def wait_for_windows(
    kafka: KafkaSettings, topics: Topics, count: int, timeout_s: float = 60
) -> dict[str, DriftWindowClosed]:
    """The windows on drift.windows once there are `count` of them (each id once in content)."""
    consumer = KafkaConsumer(
        topics.drift_windows,
        **kafka.client_config(),
        auto_offset_reset="earliest",
        enable_auto_commit=False,
    )
    found: dict[str, DriftWindowClosed] = {}
    deadline = time.monotonic() + timeout_s
    try:
        while len(found) < count:
            assert time.monotonic() < deadline, f"only {sorted(found)} after {timeout_s} s"
            for records in consumer.poll(timeout_ms=200).values():
                for record in records:
                    window = DriftWindowClosed.model_validate_json(record.value)
                    assert found.get(window.window_id, window) == window, "republished differently"
                    found[window.window_id] = window
        return found
    finally:
        consumer.close()


def alerts_on(kafka: KafkaSettings, topics: Topics) -> dict[str, DriftDetected]:
    alerts = [
        DriftDetected.model_validate_json(r.value) for r in read_topic(kafka, topics.drift_alerts)
    ]
    return {a.window_id: a for a in alerts}


def test_training_month_gives_windows_and_no_alert(
    clean_events, reference, kafka_settings, topic_prefix, group_id, tmp_path
):
    topics = Topics(topic_prefix)
    produce(kafka_settings, topics, clean_events)
    settings = settings_for(kafka_settings, topic_prefix, group_id, tmp_path, snapshots=True)
    with MonitorThread(settings, reference):
        windows = wait_for_windows(kafka_settings, topics, len(WINDOWS))
    assert sorted(windows) == WINDOWS
    for window in windows.values():
        assert window.rides > 2_500 and window.labelled > 2_400
        assert window.reference_version == "1" and window.model_versions == ["1"]
        assert [c.column for c in window.columns] == [
            "trip_distance",
            "PULocationID",
            "DOLocationID",
        ]
        assert window.drifted_share == 0.0
        assert window.prediction_drift is not None and not window.prediction_drift.drifted
        assert window.quality.rmse is not None and window.quality.p_value is not None
        assert window.quality.p_value > 0.01  # the champion as good as on its reference
    assert alerts_on(kafka_settings, topics) == {}
    snapshots = sorted(p.name for p in (tmp_path / "reports").glob("*.json"))
    assert snapshots == [f"1d_{w[3:].replace(':', '-')}.json" for w in WINDOWS]


def test_drift_made_on_purpose_raises_the_matching_alert_where_it_starts(
    drifted_events, reference, kafka_settings, topic_prefix, group_id, tmp_path
):
    topics = Topics(topic_prefix)
    produce(kafka_settings, topics, drifted_events)
    settings = settings_for(kafka_settings, topic_prefix, group_id, tmp_path)
    with MonitorThread(settings, reference):
        windows = wait_for_windows(kafka_settings, topics, len(WINDOWS))
    before, first, second = (windows[w] for w in WINDOWS)
    assert before.drifted_share == 0.0 and before.prediction_drift is not None
    assert not before.prediction_drift.drifted
    zones = [c for c in first.columns if c.column in ("PULocationID", "DOLocationID")]
    assert all(c.drifted and c.column_type == "categorical" for c in zones)
    alerts = alerts_on(kafka_settings, topics)
    assert list(alerts) == [WINDOWS[1]]  # the first drifted day; the next one is in cooldown
    alert = alerts[WINDOWS[1]]
    assert alert.alert_id == f"alert:{WINDOWS[1]}"
    fired = {r.rule: r for r in alert.rules}
    assert set(fired) == {"data_drift_share", "prediction_drift", "quality"}
    assert fired["data_drift_share"].value == first.drifted_share >= 0.5
    assert fired["quality"].value == first.quality.rmse
    assert first.quality.expected_rmse is not None and first.quality.p_value is not None
    assert fired["quality"].threshold == pytest.approx(first.quality.expected_rmse * 1.04)
    assert (
        first.quality.p_value <= 0.01
        and f"p {first.quality.p_value:.2g}" in fired["quality"].detail
    )
    assert fired["prediction_drift"].value == first.prediction_drift.score  # type: ignore[union-attr]
    assert second.prediction_drift is not None and second.prediction_drift.drifted


def test_restart_mid_stream_reproduces_the_uninterrupted_windows(
    drifted_events, reference, kafka_settings, topic_prefix, group_id, tmp_path
):
    events = drifted_events
    straight, restarted = Topics(topic_prefix + "a."), Topics(topic_prefix + "b.")
    produce(kafka_settings, straight, events)
    produce(kafka_settings, restarted, events)

    with MonitorThread(
        settings_for(kafka_settings, straight.prefix, group_id, tmp_path), reference
    ):
        expected = wait_for_windows(kafka_settings, straight, len(WINDOWS))

    settings = settings_for(kafka_settings, restarted.prefix, group_id + "b", tmp_path)
    first_run = MonitorThread(settings, reference, stop_after_windows=1)
    with first_run:
        first_run.thread.join(60)  # stops itself after the batch that published a window
    partial = wait_for_windows(kafka_settings, restarted, 1)
    assert len(partial) < len(WINDOWS), "the first run should stop mid-stream"
    with MonitorThread(settings, reference):
        windows = wait_for_windows(kafka_settings, restarted, len(WINDOWS))
    assert windows == expected
    assert alerts_on(kafka_settings, restarted) == alerts_on(kafka_settings, straight)
