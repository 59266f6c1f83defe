"""The scorecard of a small run read back from a real broker and a real MLflow store.

Three models are registered (v1 the first champion; v2 promoted on one alert and better; v3
promoted on two coalesced alerts and worse than v2 on the rides it served) plus a rejected v4.
The run's events go on the test's own topics; `read_run` must find the numbers computed here
by hand from the same rides, and the demo summary and the report page must show them.
"""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from ridestream.demo.summary import scorecard_lines
from ridestream.events import (
    DriftDetected,
    DurationPredicted,
    Event,
    ModelPromoted,
    ModelRejected,
    RideCompleted,
    RuleFired,
    encode,
)
from ridestream.features import PICKUP_TIME, RIDE_ID, TARGET, is_labelled
from ridestream.model import LINEAR, predict
from ridestream.report import build_report, read_run
from ridestream.settings import KafkaSettings, MlflowSettings, Settings
from ridestream.stream.admin import create_topics
from ridestream.stream.clients import build_producer
from ridestream.topics import Topics
from ridestream.training import TrainedModel, train_and_register
from tests.synthetic import day_window, synthetic_rides

pytestmark = pytest.mark.integration

START = datetime(2021, 2, 1)
# The truth is 5 min a mile; v1 learnt 3.5, v2 5.0, v3 2.0 (so v3 serves worse than v2).
TRUE_SLOPE = 5.0
# Rides per day window; the last day is a stray window of 5 rides, too small to count.
WINDOW_RIDES = {0: 250, 1: 300, 2: 220, 9: 5}
SERVED_BY = {0: "1", 1: "2", 2: "3", 9: "3"}


def model_event_time(minute: int) -> datetime:
    return datetime(2026, 11, 28, 12, minute, tzinfo=UTC)


def train(mlflow: MlflowSettings, slope: float, seed: int, tags: dict[str, str]) -> TrainedModel:
    rides = synthetic_rides(600, seed=seed, slope=slope)
    return train_and_register(mlflow, rides[:400], rides[400:], LINEAR, tags, promote=False)


def stream_rides() -> pd.DataFrame:
    """The replayed rides, by day: ~1 in 20 lasts over an hour (not labelled)."""
    frames = []
    for day, count in WINDOW_RIDES.items():
        rides = synthetic_rides(count, seed=100 + day, slope=TRUE_SLOPE)
        rides[RIDE_ID] = [f"day{day}-{i}" for i in range(count)]
        rides[PICKUP_TIME] = (
            START
            + timedelta(days=day)
            + pd.to_timedelta(np.arange(count) * (86_000 // count), unit="s")
        )
        rides.loc[rides.index % 20 == 7, TARGET] = 75.0
        rides["day"] = day
        frames.append(rides)
    return pd.concat(frames, ignore_index=True)


def produce(settings: KafkaSettings, topic: str, events: list[Event]) -> None:
    producer = build_producer(settings)
    for event in events:
        producer.send(topic, key=event.key.encode(), value=encode(event))
    producer.flush()
    producer.close()


def test_report_scores_the_loop_against_never_retraining_and_flags_the_harmful_promotion(
    kafka_settings: KafkaSettings, topic_prefix: str, tmp_path: Path
) -> None:
    mlflow = MlflowSettings(
        tracking_uri=f"sqlite:///{tmp_path}/mlflow.db",
        artifact_location=str(tmp_path / "mlartifacts"),
    )
    models = {
        "1": train(mlflow, 3.5, 1, {}),
        "2": train(mlflow, 5.0, 2, {"trigger_alert_ids": "A1"}),
        "3": train(mlflow, 2.0, 3, {"trigger_alert_ids": "A2,A3"}),
        "4": train(mlflow, 9.0, 4, {"trigger_alert_ids": "A4"}),
    }
    assert [m.info.version for m in models.values()] == list(models)

    rides = stream_rides()
    served = np.concatenate(
        [predict(models[SERVED_BY[day]].model, rides[rides["day"] == day]) for day in WINDOW_RIDES]
    )
    completed = [
        RideCompleted(
            ride_id=r[RIDE_ID],
            event_time=r[PICKUP_TIME].to_pydatetime() + timedelta(minutes=r[TARGET]),
            pickup_time=r[PICKUP_TIME].to_pydatetime(),
            duration_min=float(r[TARGET]),
            pu_location_id=int(r["PULocationID"]),
            do_location_id=int(r["DOLocationID"]),
            trip_distance=float(r["trip_distance"]),
        )
        for r in rides.to_dict("records")
    ]
    predictions = [
        DurationPredicted(
            ride_id=c.ride_id,
            event_time=c.pickup_time,
            predicted_duration_min=float(minutes),
            model_name=mlflow.model_name,
            model_version=SERVED_BY[day],
            features={},
            produced_at=model_event_time(0) + timedelta(milliseconds=i),
        )
        for i, (c, minutes, day) in enumerate(zip(completed, served, rides["day"], strict=True))
    ]
    windows = [
        day_window(START + timedelta(days=day), count, SERVED_BY[day])
        for day, count in WINDOW_RIDES.items()
    ]
    alerts = [
        DriftDetected(
            alert_id=f"A{n}",
            event_time=windows[0].event_time,
            window_id=windows[0].window_id,
            window_start=windows[0].window_start,
            model_version="1",
            rules=[RuleFired(rule="quality", value=8.0, threshold=6.5)],
        )
        for n in range(1, 6)
    ]
    updates: list[Event] = [
        ModelPromoted(
            promotion_id=f"{mlflow.model_name}:{version}",
            event_time=model_event_time(minute),
            model_name=mlflow.model_name,
            version=version,
            previous_version=previous,
            reason="drift" if trigger else "initial",
            trigger_alert_id=trigger,
        )
        for version, previous, minute, trigger in [
            ("1", None, 0, None),
            ("2", "1", 10, "A1"),
            ("3", "2", 20, "A3"),
        ]
    ]
    updates.append(
        ModelRejected(
            rejection_id=f"{mlflow.model_name}:4",
            event_time=model_event_time(30),
            model_name=mlflow.model_name,
            version="4",
            champion_version="3",
            trigger_alert_id="A4",
        )
    )
    topics = Topics(topic_prefix)
    create_topics(kafka_settings, topics.all_with_dead_letters(), partitions=2)
    produce(kafka_settings, topics.rides_completed, list(completed))
    produce(kafka_settings, topics.rides_predictions, list(predictions))
    produce(kafka_settings, topics.drift_windows, list(windows))
    produce(kafka_settings, topics.drift_alerts, list(alerts))
    produce(kafka_settings, topics.models_updates, updates)

    run = read_run(Settings(kafka=kafka_settings, mlflow=mlflow), topics)

    # By hand: the labelled rides of the three windows that count (not the 5-ride one).
    counted = (rides["day"] < 9).to_numpy() & is_labelled(rides[TARGET])
    actual = rides[TARGET].to_numpy()

    def rmse(predicted: np.ndarray, mask: np.ndarray) -> float:
        return float(np.sqrt(np.mean((predicted[mask] - actual[mask]) ** 2)))

    never = predict(models["1"].model, rides)
    by_v2 = counted & (rides["day"] == 1).to_numpy()
    by_v3 = counted & (rides["day"] == 2).to_numpy()
    card = run.scorecard
    assert card is not None
    assert (card.first_version, card.windows, card.loop.count) == ("1", 3, counted.sum())
    assert card.loop.rmse == pytest.approx(rmse(served, counted))
    assert card.loop.mae == pytest.approx(np.mean(np.abs(served - actual)[counted]))
    assert card.never_retrained.rmse == pytest.approx(rmse(never, counted))
    # v3's harm (3 min a mile short) outweighs v2's gain: here the loop lost to never retraining.
    assert card.loop.rmse > card.never_retrained.rmse
    v2, v3 = card.promotions
    assert (v2.version, v2.served.count) == ("2", by_v2.sum())
    assert v2.serving_from == rides.loc[by_v2, PICKUP_TIME].min()
    assert v2.served.rmse == pytest.approx(rmse(served, by_v2))
    assert v2.replaced.rmse == pytest.approx(rmse(never, by_v2))
    assert not v2.harmful
    v2_on_v3_rides = predict(models["2"].model, rides)
    assert v3.served.rmse == pytest.approx(rmse(served, by_v3))
    assert v3.replaced.rmse == pytest.approx(rmse(v2_on_v3_rides, by_v3))
    assert v3.harmful
    # 5 alerts: A1 -> v2 (useful), A2+A3 -> v3 (harmful), A4 -> v4 (rejected), A5 nothing.
    assert [(r.version, r.alerts, r.result) for r in card.retrainings] == [
        ("2", 1, "promoted"),
        ("3", 2, "promoted, HARMFUL"),
        ("4", 1, "rejected"),
    ]
    assert card.alert_precision == pytest.approx(0.2)

    lines = scorecard_lines(run)
    assert f"  never retrained (v1)     {card.never_retrained.rmse:.2f} /" in lines[2]
    v3_from = rides.loc[by_v3, PICKUP_TIME].min()
    assert lines[5].startswith(f"    v3 from {v3_from:%Y-%m-%d %H:%M}: {by_v3.sum():,} rides, RMSE")
    assert lines[5].endswith("  HARMFUL")
    assert lines[-1] == "  alert precision 0.20: 1 of 5 alerts led to a promotion that did not hurt"
    page = build_report(run, "scorecard run")
    assert "never retrained (v1)" in page and page.count("HARMFUL") == 2
    assert "alert precision: 0.20 (1 of 5 alerts" in page
