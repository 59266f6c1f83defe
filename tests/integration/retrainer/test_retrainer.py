"""The retrainer on a real broker and a real MLflow store (SQLite under a temporary folder).

A champion is trained on real green 2021-01 rides (small samples, so a training takes about a
second); completions of a drifted stream go on rides.completed, a DriftDetected on
drift.alerts, and the tests assert on models.updates and on the registry only.
"""

from __future__ import annotations

import os
import subprocess
import sys
import threading
import time
import uuid
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from datetime import datetime, timedelta
from pathlib import Path

import pandas as pd
import pytest
from kafka import KafkaConsumer

from retrainer.buffer import completed_rides
from retrainer.live import LiveEvaluation
from retrainer.promotion import promoted_event
from retrainer.settings import RetrainerOptions, RetrainerSettings
from ridestream.events import (
    MAX_TRIP_DISTANCE_MI,
    ChallengerStarted,
    DriftDetected,
    Event,
    ModelPromoted,
    ModelRejected,
    RideCompleted,
    RuleFired,
    decode_model_update,
    encode,
)
from ridestream.features import PICKUP_TIME, TARGET
from ridestream.model import DEFAULT_KIND, LINEAR, labelled
from ridestream.registry import CHALLENGER, PREVIOUS, ModelRegistry
from ridestream.settings import KafkaSettings, MlflowSettings
from ridestream.stream.admin import create_topics
from ridestream.stream.clients import build_producer
from ridestream.topics import Topics
from ridestream.training import TrainedModel, train_and_register
from tests import tripdata
from tests.environment import broker_and_registry_environment

# Small samples keep each training to about a second: the tests are about the loop.
pytestmark = pytest.mark.integration

CHAMPION_TRAIN_RIDES = 4_000
CHAMPION_VAL_RIDES = 1_500
STREAM_RIDES = 5_000
MIN_LABELLED_RIDES = 1_000


@pytest.fixture(scope="module")
def green_rides() -> pd.DataFrame:
    """Labelled green 2021-01 rides picked up in January 2021, in pickup order."""
    from ridestream.trips import read_trips

    rides = labelled(read_trips(tripdata.month_file("2021-01")))
    in_month = (rides[PICKUP_TIME] >= "2021-01-01") & (rides[PICKUP_TIME] < "2021-02-01")
    valid = rides["trip_distance"].between(0, MAX_TRIP_DISTANCE_MI)  # odometer garbage
    return rides[in_month & valid].sort_values(PICKUP_TIME).reset_index(drop=True)


def sample(rides: pd.DataFrame, start: str, end: str, count: int, seed: int = 0) -> pd.DataFrame:
    """`count` rides picked up in [start, end), in pickup order."""
    window = rides[(rides[PICKUP_TIME] >= start) & (rides[PICKUP_TIME] < end)]
    return window.sample(n=min(count, len(window)), random_state=seed).sort_values(PICKUP_TIME)


@pytest.fixture(scope="module")
def mlflow_store(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """One SQLite MLflow store per module (each test registers its own model name)."""
    return tmp_path_factory.mktemp("mlflow")


@pytest.fixture
def mlflow_settings(mlflow_store: Path) -> MlflowSettings:
    """The test's own registered model in the module's real MLflow store."""
    return MlflowSettings(
        tracking_uri=f"sqlite:///{mlflow_store}/mlflow.db",
        artifact_location=str(mlflow_store / "mlartifacts"),
        experiment="ride-duration-tests",
        model_name=f"ride-duration-{uuid.uuid4().hex[:8]}",
    )


@pytest.fixture
def champion(green_rides: pd.DataFrame, mlflow_settings: MlflowSettings) -> TrainedModel:
    """Version 1, champion: trained on rides of 2021-01-01..10, validated on 01-11..14."""
    train = sample(green_rides, "2021-01-01", "2021-01-11", CHAMPION_TRAIN_RIDES)
    val = sample(green_rides, "2021-01-11", "2021-01-15", CHAMPION_VAL_RIDES)
    trained = train_and_register(
        mlflow_settings, train, val, kind=LINEAR, tags={"trigger": "manual"}
    )
    assert trained.promoted and trained.info.version == "1"
    return trained


@pytest.fixture
def retrainer_settings(
    kafka_settings: KafkaSettings,
    mlflow_settings: MlflowSettings,
    topic_prefix: str,
    group_id: str,
) -> RetrainerSettings:
    """Settings of a retrainer on the test's topics, group and registered model."""
    return RetrainerSettings(
        kafka=kafka_settings,
        mlflow=mlflow_settings,
        topic_prefix=topic_prefix,
        retrainer=RetrainerOptions(
            group_id=group_id,
            min_labelled_rides=MIN_LABELLED_RIDES,
            poll_timeout_ms=100,
            model_kind=LINEAR,
            # These tests are about the training run; the live gate has tests of its own.
            gate="offline",
        ),
    )


def completions(rides: pd.DataFrame, duration_factor: float = 1.0) -> list[RideCompleted]:
    """RideCompleted events of `rides`, their durations stretched by `duration_factor`."""
    duration_min = rides[TARGET].to_numpy() * duration_factor
    pickup = rides[PICKUP_TIME]
    dropoff = (pickup + pd.to_timedelta(duration_min, unit="min")).dt.floor("us")
    return [
        RideCompleted(
            ride_id=f"{ride_id}:x{duration_factor}",
            event_time=d.to_pydatetime(),
            pickup_time=p.to_pydatetime(),
            duration_min=float(m),
            pu_location_id=int(pu),
            do_location_id=int(do),
            trip_distance=float(dist),
        )
        for ride_id, p, d, m, pu, do, dist in zip(
            rides["ride_id"],
            pickup,
            dropoff,
            duration_min,
            rides["PULocationID"],
            rides["DOLocationID"],
            rides["trip_distance"],
            strict=True,
        )
    ]


def drift_alert(alert_id: str, when: datetime = datetime(2021, 1, 25)) -> DriftDetected:
    """A DriftDetected as the monitor would emit it."""
    return DriftDetected(
        alert_id=alert_id,
        event_time=when,
        window_id=f"w-{alert_id}",
        window_start=when.replace(hour=0),
        model_version="1",
        rules=[RuleFired(rule="quality", value=9.1, threshold=7.0, detail="rmse")],
    )


def produce(settings: KafkaSettings, topic: str, events: list[Event]) -> None:
    """Produce keyed events and wait until the broker has them."""
    create_topics(settings, [topic])
    producer = build_producer(settings)
    for event in events:
        producer.send(topic, key=event.key.encode(), value=encode(event))
    producer.flush()
    producer.close()


ModelEvent = ModelPromoted | ModelRejected | ChallengerStarted


def model_events(settings: KafkaSettings, topics: Topics) -> list[ModelEvent]:
    """Every ModelPromoted / ModelRejected on models.updates, oldest first (by event time)."""
    consumer = KafkaConsumer(
        topics.models_updates,
        **settings.client_config(),
        group_id=None,
        auto_offset_reset="earliest",
        consumer_timeout_ms=1_000,
    )
    events = [decode_model_update(record.value) for record in consumer]
    consumer.close()
    return sorted(events, key=lambda e: e.event_time)


def wait_for_model_event(
    settings: KafkaSettings,
    topics: Topics,
    found: Callable[[list[ModelEvent]], bool],
    timeout_s: float = 60.0,
) -> list[ModelEvent]:
    """Read models.updates until `found(events)` holds; fail after `timeout_s`."""
    create_topics(settings, [topics.models_updates])
    consumer = KafkaConsumer(
        topics.models_updates,
        **settings.client_config(),
        group_id=None,
        auto_offset_reset="earliest",
    )
    deadline = time.monotonic() + timeout_s
    events: list[ModelEvent] = []
    try:
        while time.monotonic() < deadline:
            for records in consumer.poll(timeout_ms=200).values():
                events.extend(decode_model_update(record.value) for record in records)
            events.sort(key=lambda e: e.event_time)
            if found(events):
                return events
    finally:
        consumer.close()
    raise AssertionError(f"models.updates never matched in {timeout_s} s; it holds {events}")


@dataclass
class RunningRetrainer:
    """A retrainer running in a thread of the test process."""

    thread: threading.Thread
    stop: threading.Event
    errors: list[BaseException]


@pytest.fixture
def start_retrainer() -> Iterator[Callable[[RetrainerSettings], RunningRetrainer]]:
    """Start `retrainer.__main__.run` in a thread; stopped (and its errors raised) at teardown."""
    from retrainer.scheduler import run

    started: list[RunningRetrainer] = []

    def start(settings: RetrainerSettings) -> RunningRetrainer:
        stop = threading.Event()
        errors: list[BaseException] = []

        def target() -> None:
            try:
                run(settings, stop)
            except BaseException as error:
                errors.append(error)

        thread = threading.Thread(target=target, name="retrainer", daemon=True)
        thread.start()
        running = RunningRetrainer(thread, stop, errors)
        started.append(running)
        return running

    yield start
    for running in started:
        running.stop.set()
        running.thread.join(timeout=60)
        assert not running.thread.is_alive(), "retrainer did not stop within 60 s"
        if running.errors:
            raise running.errors[0]


def promotions(events: list[ModelEvent]) -> list[ModelPromoted]:
    return [e for e in events if isinstance(e, ModelPromoted)]


def test_drift_alert_trains_registers_and_promotes_a_better_challenger(
    green_rides, champion, retrainer_settings, start_retrainer
):
    # The default pipeline of `ridestream train` (gradient boosting), end to end.
    options = retrainer_settings.retrainer.model_copy(update={"model_kind": DEFAULT_KIND})
    settings = retrainer_settings.model_copy(update={"retrainer": options})
    topics = settings.topics
    stream = sample(green_rides, "2021-01-15", "2021-01-25", STREAM_RIDES, seed=1)
    produce(settings.kafka, topics.rides_completed, completions(stream, duration_factor=1.4))
    produce(settings.kafka, topics.drift_alerts, [drift_alert("alert-a")])

    start_retrainer(settings)
    events = wait_for_model_event(
        settings.kafka, topics, lambda es: any(e.version == "2" for e in promotions(es))
    )

    # v1 came from `ridestream train`, which publishes nothing: announced at start, then v2.
    announced = promotions(events)
    assert [(e.version, e.reason) for e in announced] == [("1", "initial"), ("2", "drift")]
    promoted = announced[-1]
    assert promoted.promotion_id == f"{settings.mlflow.model_name}:2"
    assert promoted.previous_version == "1"
    assert promoted.trigger_alert_id == "alert-a"
    assert promoted.metrics["challenger_rmse"] < promoted.metrics["champion_rmse"] * 0.98

    registry = ModelRegistry(settings.mlflow)
    assert registry.champion().version == "2"
    assert registry.alias(PREVIOUS).version == "1"
    assert registry.alias(CHALLENGER) is None  # decided: nothing is under live evaluation
    tags = registry.version("2").tags
    assert tags["trigger_alert_id"] == "alert-a"
    assert tags["parent_version"] == "1"
    assert tags["decision"] == "promoted"
    assert tags["data_range"].startswith("2021-01-15")
    assert tags["model_kind"] == DEFAULT_KIND
    assert int(tags["rows"]) == int(tags["train_rows"]) + int(tags["holdout_rows"]) > 2_500
    assert float(tags["challenger_rmse"]) == pytest.approx(promoted.metrics["challenger_rmse"])
    assert float(tags["champion_rmse"]) == pytest.approx(promoted.metrics["champion_rmse"])


def test_challenger_that_misses_the_margin_is_rejected_and_champion_stays(
    green_rides, champion, retrainer_settings, start_retrainer
):
    # Undrifted rides and a margin no challenger can meet (50% better than the champion).
    settings = retrainer_settings.model_copy(
        update={"retrainer": retrainer_settings.retrainer.model_copy(update={"margin": 0.5})}
    )
    topics = settings.topics
    stream = sample(green_rides, "2021-01-15", "2021-01-25", STREAM_RIDES, seed=2)
    produce(settings.kafka, topics.rides_completed, completions(stream))
    produce(settings.kafka, topics.drift_alerts, [drift_alert("alert-b")])

    start_retrainer(settings)
    events = wait_for_model_event(
        settings.kafka, topics, lambda es: any(isinstance(e, ModelRejected) for e in es)
    )

    rejected = [e for e in events if isinstance(e, ModelRejected)]
    assert [(e.version, e.champion_version, e.trigger_alert_id) for e in rejected] == [
        ("2", "1", "alert-b")
    ]
    assert rejected[0].metrics["challenger_rmse"] > rejected[0].metrics["champion_rmse"] * 0.5
    assert [e.version for e in promotions(events)] == ["1"]  # only the initial announcement
    registry = ModelRegistry(settings.mlflow)
    assert registry.champion().version == "1"
    assert registry.alias(PREVIOUS) is None
    assert registry.alias(CHALLENGER) is None  # a rejected model is never shadowed
    assert registry.version("2").tags["decision"] == "rejected"


def test_too_few_labelled_rides_is_a_skip_and_a_later_alert_still_trains(
    green_rides, champion, retrainer_settings, start_retrainer
):
    settings = retrainer_settings
    topics = settings.topics
    few = sample(green_rides, "2021-01-15", "2021-01-25", MIN_LABELLED_RIDES // 2, seed=3)
    produce(settings.kafka, topics.rides_completed, completions(few, duration_factor=1.4))
    produce(settings.kafka, topics.drift_alerts, [drift_alert("alert-few")])
    running = start_retrainer(settings)
    # The skip is only a log line: wait until the alert's offset is committed.
    wait_until(lambda: committed_alerts(settings) == 1, timeout_s=30)
    assert ModelRegistry(settings.mlflow).champion().version == "1"
    assert [e.version for e in promotions(model_events(settings.kafka, topics))] == ["1"]

    more = sample(green_rides, "2021-01-15", "2021-01-25", STREAM_RIDES, seed=4)
    produce(settings.kafka, topics.rides_completed, completions(more, duration_factor=1.4))
    produce(settings.kafka, topics.drift_alerts, [drift_alert("alert-more")])
    wait_for_model_event(
        settings.kafka, topics, lambda es: any(e.version == "2" for e in promotions(es))
    )
    assert not running.errors


def committed_alerts(settings: RetrainerSettings) -> int:
    """Sum of the committed offsets of the retrainer's group on drift.alerts."""
    from kafka import KafkaAdminClient

    admin = KafkaAdminClient(**settings.kafka.client_config())
    try:
        group = settings.retrainer.group_id
        offsets = admin.list_group_offsets(group).get(group, {})
    except Exception:  # the group has not committed yet
        return 0
    finally:
        admin.close()
    return sum(
        meta.offset for tp, meta in offsets.items() if tp.topic == settings.topics.drift_alerts
    )


def wait_until(condition: Callable[[], bool], timeout_s: float) -> None:
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        if condition():
            return
        time.sleep(0.3)
    raise AssertionError(f"condition not met in {timeout_s} s")


def test_champion_moved_but_never_announced_is_announced_when_the_retrainer_starts(
    green_rides, champion, retrainer_settings, start_retrainer
):
    # What a retrainer killed between the alias move and the publish leaves behind.
    settings = retrainer_settings
    topics = settings.topics
    train = sample(green_rides, "2021-01-15", "2021-01-22", 2_000, seed=5)
    val = sample(green_rides, "2021-01-22", "2021-01-25", 800, seed=5)
    challenger = train_and_register(
        settings.mlflow,
        train,
        val,
        kind=LINEAR,
        tags={"trigger": "drift", "trigger_alert_id": "alert-x"},
        promote=False,
    )
    registry = ModelRegistry(settings.mlflow)
    registry.promote(challenger.info.version)  # the commit point ... and then the kill
    produce(settings.kafka, topics.models_updates, [promoted_event(champion.info, None, "initial")])

    start_retrainer(settings)
    events = wait_for_model_event(
        settings.kafka, topics, lambda es: any(e.version == "2" for e in promotions(es))
    )
    announced = promotions(events)
    assert [(e.version, e.reason, e.previous_version) for e in announced] == [
        ("1", "initial", None),
        ("2", "drift", "1"),
    ]
    assert announced[-1].trigger_alert_id == "alert-x"
    assert announced[-1].promotion_id == f"{settings.mlflow.model_name}:2"


def test_retrainer_killed_mid_training_leaves_no_half_made_promotion(
    green_rides, champion, retrainer_settings, start_retrainer, tmp_path
):
    settings = retrainer_settings
    topics = settings.topics
    stream = sample(green_rides, "2021-01-15", "2021-01-25", STREAM_RIDES, seed=6)
    produce(settings.kafka, topics.rides_completed, completions(stream, duration_factor=1.4))
    produce(settings.kafka, topics.drift_alerts, [drift_alert("alert-c")])

    env = {
        **os.environ,
        **broker_and_registry_environment(settings.kafka, settings.topic_prefix, settings.mlflow),
        "RIDESTREAM_RETRAINER__GROUP_ID": settings.retrainer.group_id,
        "RIDESTREAM_RETRAINER__MIN_LABELLED_RIDES": str(MIN_LABELLED_RIDES),
        "RIDESTREAM_RETRAINER__MODEL_KIND": LINEAR,
        "RIDESTREAM_RETRAINER__GATE": "offline",
    }
    process = subprocess.Popen(
        [sys.executable, "-m", "retrainer"],
        cwd=tmp_path,  # no .env, state under tmp_path
        env=env,
        stderr=subprocess.PIPE,
        text=True,
    )
    watchdog = threading.Timer(90, process.kill)  # a hung start must not hang the suite
    watchdog.start()
    try:
        assert process.stderr is not None
        for line in process.stderr:
            if "training a challenger" in line:
                break
        else:
            pytest.fail("the retrainer exited (or hung) before training")
        process.kill()  # kill -9, mid-training
    finally:
        watchdog.cancel()
        process.kill()
        process.wait(timeout=30)

    registry = ModelRegistry(settings.mlflow)
    champion_after_kill = registry.champion().version
    announced = [e.version for e in promotions(model_events(settings.kafka, topics))]
    if champion_after_kill == "1":
        assert announced == ["1"]  # nothing half-made: no promotion of anything else
    # Restarted: a moved-but-unannounced champion is announced, the uncommitted alert retrains.
    start_retrainer(settings)
    events = wait_for_model_event(
        settings.kafka,
        topics,
        lambda es: (
            bool(promotions(es))
            and promotions(es)[-1].version == registry.champion().version != "1"
        ),
    )
    latest = promotions(events)[-1]
    assert latest.reason == "drift"
    assert registry.alias(PREVIOUS).version == "1"
    versions = registry.versions()
    promoted_tags = [v.version for v in versions if v.tags.get("decision") == "promoted"]
    assert promoted_tags in ([], [latest.version])


def test_manual_promote_and_rollback_move_aliases_and_publish_model_promoted(
    green_rides, champion, retrainer_settings, monkeypatch, tmp_path, capsys
):
    from retrainer.models_cli import list_main, promote_main, rollback_main

    settings = retrainer_settings
    train = sample(green_rides, "2021-01-15", "2021-01-22", 2_000, seed=7)
    val = sample(green_rides, "2021-01-22", "2021-01-25", 800, seed=7)
    train_and_register(settings.mlflow, train, val, kind=LINEAR, promote=False)
    monkeypatch.chdir(tmp_path)  # no .env
    for name, value in broker_and_registry_environment(
        settings.kafka, settings.topic_prefix, settings.mlflow
    ).items():
        monkeypatch.setenv(name, value)

    assert promote_main(["2"]) == 0
    registry = ModelRegistry(settings.mlflow)
    assert (registry.champion().version, registry.alias(PREVIOUS).version) == ("2", "1")
    assert rollback_main([]) == 0
    assert (registry.champion().version, registry.alias(PREVIOUS).version) == ("1", "2")
    assert promote_main(["7"]) == 2  # no such version: one line, nothing moved
    assert registry.champion().version == "1"

    events = wait_for_model_event(settings.kafka, settings.topics, lambda es: len(es) >= 2)
    assert [(e.version, e.reason, e.previous_version) for e in promotions(events)] == [
        ("2", "manual", "1"),
        ("1", "rollback", "2"),
    ]
    capsys.readouterr()
    assert list_main([]) == 0
    table = capsys.readouterr().out.splitlines()
    assert table[1].split()[:2] == ["VERSION", "ALIASES"]
    assert [line.split()[:2] for line in table[2:]] == [["1", "champion"], ["2", "previous"]]


# -- the live gate ------------------------------------------------------------------------
# A challenger trained on slowed-down rides (x1.4) passes the offline check; what decides is the
# rides picked up after its training cut-off: still slow (it is better) or back to normal
# (it is worse). Small thresholds keep the stream short: 500 rides over 12 h of event time.
PRE_GATE = ("2021-01-15", "2021-01-22")
POST_GATE = ("2021-01-22 06:00", "2021-01-31")


def in_dropoff_order(events: list[RideCompleted]) -> list[RideCompleted]:
    """Completions as the producer emits them: at their drop-off, so in drop-off order."""
    return sorted(events, key=lambda e: e.event_time)


def live_gate_settings(settings: RetrainerSettings) -> RetrainerSettings:
    options = settings.retrainer.model_copy(
        update={"gate": "shadow", "gate_min_rides": 500, "gate_min_span_h": 12.0}
    )
    return settings.model_copy(update={"retrainer": options})


def start_slow_challenger(
    green_rides: pd.DataFrame,
    settings: RetrainerSettings,
    start_retrainer: Callable[[RetrainerSettings], RunningRetrainer],
    seed: int,
) -> tuple[RunningRetrainer, pd.DataFrame, ChallengerStarted]:
    """Slowed-down rides and an alert; the retrainer trains version 2 on them, which passes
    the offline check. Returns the retrainer, the rides and version 2's ChallengerStarted."""
    topics = settings.topics
    slow = sample(green_rides, *PRE_GATE, STREAM_RIDES, seed=seed)
    produce(settings.kafka, topics.rides_completed, completions(slow, duration_factor=1.4))
    produce(settings.kafka, topics.drift_alerts, [drift_alert(f"alert-{seed}")])
    running = start_retrainer(settings)
    events = wait_for_model_event(
        settings.kafka, topics, lambda es: any(isinstance(e, ChallengerStarted) for e in es)
    )
    (started,) = [e for e in events if isinstance(e, ChallengerStarted)]
    return running, slow, started


def test_challenger_worse_on_the_rides_after_its_cutoff_is_rejected_for_futility(
    green_rides, champion, retrainer_settings, start_retrainer
):
    settings = live_gate_settings(retrainer_settings)
    topics = settings.topics
    _, _, started = start_slow_challenger(green_rides, settings, start_retrainer, seed=8)
    registry = ModelRegistry(settings.mlflow)
    assert (started.version, started.champion_version, started.gate) == ("2", "1", "shadow")
    assert registry.alias(CHALLENGER).version == "2"
    assert registry.champion().version == "1"  # passed offline, not promoted

    back_to_normal = sample(green_rides, *POST_GATE, 3_000, seed=9)
    produce(settings.kafka, topics.rides_completed, in_dropoff_order(completions(back_to_normal)))
    events = wait_for_model_event(
        settings.kafka, topics, lambda es: any(isinstance(e, ModelRejected) for e in es)
    )

    (rejected,) = [e for e in events if isinstance(e, ModelRejected)]
    assert (rejected.version, rejected.reason) == ("2", "futility")
    assert rejected.gate is not None
    assert rejected.gate.challenger_rmse > rejected.gate.champion_rmse
    assert rejected.gate.ci_high < 0
    assert rejected.gate.first_pickup >= started.evaluation_start
    assert [e.version for e in promotions(events)] == ["1"]
    assert registry.champion().version == "1"
    assert registry.alias(CHALLENGER) is None
    assert registry.version("2").tags["decision"] == "rejected"


def test_better_challenger_is_promoted_on_live_rides_and_a_restart_does_not_change_the_decision(
    green_rides, champion, retrainer_settings, start_retrainer
):
    settings = live_gate_settings(retrainer_settings)
    topics = settings.topics
    first, slow, started = start_slow_challenger(green_rides, settings, start_retrainer, seed=10)

    # Four hours of slow rides after the cut-off: too short to promote (12 h). Then a restart.
    still_slow = in_dropoff_order(completions(sample(green_rides, *POST_GATE, 3_000, seed=11), 1.4))
    cut = started.evaluation_start + timedelta(hours=4)
    early = [c for c in still_slow if c.event_time < cut]
    later = [c for c in still_slow if c.event_time >= cut]
    produce(settings.kafka, topics.rides_completed, early)
    time.sleep(2)
    registry = ModelRegistry(settings.mlflow)
    assert registry.champion().version == "1"
    first.stop.set()
    first.thread.join(timeout=60)
    start_retrainer(settings)  # rebuilds the buffer and the gate from rides.completed
    produce(settings.kafka, topics.rides_completed, later)
    events = wait_for_model_event(
        settings.kafka, topics, lambda es: any(e.version == "2" for e in promotions(es))
    )

    promoted = promotions(events)[-1]
    evidence = promoted.gate
    assert evidence is not None
    assert evidence.rides >= 500
    assert evidence.last_pickup - evidence.first_pickup >= timedelta(hours=12)
    assert evidence.challenger_rmse < evidence.champion_rmse * 0.98
    assert evidence.ci_low > 0 and evidence.p_value <= 0.05
    assert registry.champion().version == "2"
    assert registry.alias(CHALLENGER) is None
    assert not [e for e in events if isinstance(e, ModelRejected)]

    # The decision of one uninterrupted evaluation of the same rides: the same look, rides and
    # blocks (the restarted retrainer took the looks in the same order).
    live = LiveEvaluation(
        started,
        registry.load_model("1"),
        registry.load_model("2"),
        settings.retrainer.gate_options,
    )
    every = completions(slow, 1.4) + still_slow
    live.add(completed_rides(every))
    verdict = live.look(max(c.event_time for c in every))
    assert verdict is not None and verdict.decision.evidence is not None
    alone = verdict.decision.evidence
    assert (evidence.rides, evidence.blocks, evidence.first_pickup, evidence.last_pickup) == (
        alone.rides,
        alone.blocks,
        alone.first_block,
        alone.last_block_end,
    )
    assert evidence.theta == pytest.approx(alone.theta)
