"""Hot-swap: a loaded model waits in the pending slot and serves from the next batch on."""

from __future__ import annotations

import threading
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any

from predictor.predict import ServingModel
from predictor.stats import ThroughputLog
from predictor.swap import ModelHolder, ModelWatcher
from ridestream.events import ChallengerStarted, ModelPromoted, ModelRejected, encode
from ridestream.registry import ModelInfo
from ridestream.stream.loop import BatchStats


def serving(version: str) -> ServingModel:
    return ServingModel("ride-duration", version, model=f"model-{version}")


@dataclass
class Record:
    value: bytes | None
    topic: str = "models.updates"
    partition: int = 0
    offset: int = 0


@dataclass
class FakeUpdatesConsumer:
    """Stands in for kafka-python's consumer (not ours to test): hands out queued records."""

    batches: list[list[Record]] = field(default_factory=list)

    def poll(self, timeout_ms: int = 0) -> dict[str, list[Record]]:
        return {"tp": self.batches.pop(0)} if self.batches else {}


def promoted(version: str, model_name: str = "ride-duration") -> Record:
    event = ModelPromoted(
        promotion_id=f"p-{version}",
        event_time=datetime(2026, 1, 1, tzinfo=UTC),
        model_name=model_name,
        version=version,
        previous_version=None,
        reason="drift",
    )
    return Record(encode(event))


def watcher(holder: ModelHolder, consumer: Any, champion: str | None = None) -> ModelWatcher:
    loads: list[str] = []

    def load(version: str) -> str:
        if version == "broken":
            raise OSError("artifact missing")
        loads.append(version)
        return f"model-{version}"

    w = ModelWatcher(
        holder=holder,
        consumer=consumer,
        model_name="ride-duration",
        load=load,
        champion_version=lambda: champion,
        periodic_check_s=0.0,
    )
    w.loads = loads  # type: ignore[attr-defined]
    return w


def test_pending_model_serves_from_the_next_batch_on() -> None:
    holder = ModelHolder(serving("1"))
    assert holder.current().version == "1"
    holder.offer(serving("2"))
    assert holder.serving.version == "1"  # the batch in hand keeps its model
    assert holder.current().version == "2"
    assert holder.current().version == "2"
    assert holder.swaps == 1


def test_the_latest_offer_wins_even_an_older_version_on_rollback() -> None:
    holder = ModelHolder(serving("3"))
    holder.offer(serving("4"))
    holder.offer(serving("2"))
    assert holder.current().version == "2"


def test_promotion_event_loads_the_version_off_the_hot_path() -> None:
    holder = ModelHolder(serving("1"))
    w = watcher(holder, FakeUpdatesConsumer([[promoted("2")]]))
    for event in w.poll_updates():
        w.switch_to(event.version, "test")
    assert w.loads == ["2"]  # type: ignore[attr-defined]
    assert holder.current().model == "model-2"


def test_updates_of_other_models_and_bad_updates_are_skipped() -> None:
    consumer = FakeUpdatesConsumer([[promoted("9", "other-model"), Record(b"{not json")]])
    w = watcher(ModelHolder(serving("1")), consumer)
    assert w.poll_updates() == []


def test_a_version_that_fails_to_load_keeps_the_current_model() -> None:
    holder = ModelHolder(serving("1"))
    w = watcher(holder, FakeUpdatesConsumer())
    assert not w.switch_to("broken", "test")
    assert holder.current().version == "1" and w.failures == 1


def test_alias_check_loads_a_champion_whose_update_was_missed() -> None:
    holder = ModelHolder(serving("1"))
    w = watcher(holder, FakeUpdatesConsumer(), champion="3")
    w.check_alias()
    w.check_alias()  # already pending: not loaded twice
    assert w.loads == ["3"]  # type: ignore[attr-defined]
    assert holder.current().version == "3"


def test_watcher_thread_swaps_in_a_promoted_model_and_stops() -> None:
    holder = ModelHolder(serving("1"))
    w = watcher(holder, FakeUpdatesConsumer([[promoted("2")]]), champion="2")
    w.start()
    deadline = threading.Event()
    for _ in range(100):
        if holder.wanted_version() == "2":
            break
        deadline.wait(0.02)
    w.stop()
    assert holder.current().version == "2"


def test_throughput_log_reports_rides_per_second_lag_and_version() -> None:
    now = [0.0]
    report = ThroughputLog(5.0, lambda: "7", lambda: 1234, clock=lambda: now[0])
    report(BatchStats(polled=1000, valid=990, dead_letters=10, seconds=0.05))
    now[0] = 5.0
    report(BatchStats(polled=1000, valid=1000, seconds=0.15))
    assert report.lines == 1
    assert report.last_line == (
        "398 rides/s, 2 batches (mean 100.0 ms, max 150.0 ms), 10 dead letters, "
        "lag 1,234, model version 7"
    )
    assert report.report(10.0).startswith("0 rides/s, 0 batches")  # a new interval


def started(version: str, gate: str = "shadow", fraction: float = 0.0) -> Record:
    event = ChallengerStarted(
        challenge_id=f"ride-duration:{version}",
        event_time=datetime(2026, 1, 1, tzinfo=UTC),
        model_name="ride-duration",
        version=version,
        champion_version="1",
        gate=gate,  # type: ignore[arg-type]
        canary_fraction=fraction,
        evaluation_start=datetime(2021, 1, 1),
    )
    return Record(encode(event))


def rejected(version: str) -> Record:
    event = ModelRejected(
        rejection_id=f"ride-duration:{version}",
        event_time=datetime(2026, 1, 1, tzinfo=UTC),
        model_name="ride-duration",
        version=version,
        champion_version="1",
        reason="futility",
    )
    return Record(encode(event))


def test_challenger_started_shadows_from_the_next_batch_and_its_rejection_stops_it() -> None:
    holder = ModelHolder(serving("1"))
    consumer = FakeUpdatesConsumer([[started("2", "canary", 0.1)], [rejected("2")]])
    w = watcher(holder, consumer)

    for update in w.poll_updates():
        w.apply(update)
    shadow = holder.current_shadow()
    assert shadow is not None and (shadow.version, shadow.gate, shadow.canary_fraction) == (
        "2",
        "canary",
        0.1,
    )
    for update in w.poll_updates():
        w.apply(update)
    assert holder.current_shadow() is None
    assert holder.current().version == "1"  # a rejection never touches the champion


def test_promotion_of_the_challenger_ends_the_shadow_and_swaps_the_champion() -> None:
    holder = ModelHolder(serving("1"))
    w = watcher(holder, FakeUpdatesConsumer([[started("2")], [promoted("2")]]))
    for _ in range(2):
        for update in w.poll_updates():
            w.apply(update)

    assert (holder.current().version, holder.current_shadow()) == ("2", None)


def test_alias_check_shadows_the_challenger_of_a_predictor_started_mid_evaluation() -> None:
    holder = ModelHolder(serving("1"))
    alias: list[ModelInfo | None] = [
        ModelInfo("ride-duration", "2", None, tags={"gate": "shadow", "canary_fraction": "0.0"})
    ]
    w = watcher(holder, FakeUpdatesConsumer())
    w.challenger_info = lambda: alias[0]

    w.check_challenger_alias()
    assert holder.current_shadow() is not None
    alias[0] = None  # decided while this predictor missed the event
    w.check_challenger_alias()
    assert holder.current_shadow() is None
