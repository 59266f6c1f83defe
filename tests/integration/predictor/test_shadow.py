"""Predictors and a challenger under live evaluation, on a real broker and registry: shadow
predictions go to rides.shadow only, a canary serves its share of rides, and a predictor that
starts mid-evaluation shadows from the registry alias."""

from __future__ import annotations

import time
from collections import Counter
from collections.abc import Callable
from datetime import timedelta
from typing import Any

import pytest

from predictor.settings import PredictorSettings
from predictor.shadow import canary_rides
from ridestream.events import (
    ChallengerStarted,
    DurationPredicted,
    ModelRejected,
    decode,
    encode,
    utc_now,
)
from ridestream.registry import CHALLENGER, TAG_CANARY_FRACTION, TAG_GATE, ModelRegistry
from tests.synthetic import ride

from .conftest import produce, produce_rides, read_topic
from .test_predictor import register

pytestmark = pytest.mark.integration


def start_challenger(settings: PredictorSettings, version: str, gate: str, fraction: float) -> None:
    """What the retrainer does when a challenger passes the offline check (tags, alias)."""
    registry = ModelRegistry(settings.mlflow)
    registry.set_version_tags(version, {TAG_GATE: gate, TAG_CANARY_FRACTION: str(fraction)})
    registry.set_alias(CHALLENGER, version)


def champion_and_challenger(settings: PredictorSettings) -> tuple[str, str]:
    """Version 1 (champion) and version 2 (another slope, no alias yet)."""
    return register(settings, slope=3.5, promote=None), register(settings, 5.0, promote=False)


def announce(settings: PredictorSettings, event: ChallengerStarted | ModelRejected) -> None:
    produce(settings.kafka, settings.topics.models_updates, [(event.key.encode(), encode(event))])


def predictions(
    settings: PredictorSettings, topic: str, expect: int, timeout_s: float = 30.0
) -> list[DurationPredicted]:
    records = read_topic(settings.kafka, topic, expect, timeout_s)
    return [decode(DurationPredicted, r.value) for r in records]


def test_canary_serves_its_fraction_of_rides_and_every_ride_once(
    predictor_settings: PredictorSettings, start_predictor: Callable[..., Any]
) -> None:
    settings = predictor_settings
    topics = settings.topics
    champion, challenger = champion_and_challenger(settings)
    start_challenger(settings, challenger, "canary", 0.2)
    start_predictor(settings)  # started mid-evaluation: the canary comes from the alias
    rides = [ride(n, "canary") for n in range(2_000)]
    produce_rides(settings.kafka, topics.rides_requested, rides)

    served = predictions(settings, topics.rides_predictions, len(rides))
    shadowed = predictions(settings, topics.rides_shadow, len(rides))

    assert Counter(p.ride_id for p in served) == Counter(r.ride_id for r in rides)
    assert Counter(p.ride_id for p in shadowed) == Counter(r.ride_id for r in rides)
    by_challenger = {p.ride_id for p in served if p.model_version == challenger}
    # Binomial: n = 2,000, p = 0.2, sd 17.9 rides; 4 sd of tolerance.
    assert abs(len(by_challenger) - 400) < 72
    chosen = canary_rides([r.ride_id for r in rides], 0.2)
    assert by_challenger == {r.ride_id for r, c in zip(rides, chosen, strict=True) if c}
    assert {(p.model_version, p.role) for p in served} == {(champion, None), (challenger, "canary")}
    assert {p.role for p in shadowed} == {"shadow"}
    assert {p.ride_id for p in shadowed if p.model_version == champion} == by_challenger


def test_predictors_shadow_a_started_challenger_and_stop_when_it_is_rejected(
    predictor_settings: PredictorSettings, start_predictor: Callable[..., Any]
) -> None:
    settings = predictor_settings
    topics = settings.topics
    champion, challenger = champion_and_challenger(settings)
    first = start_predictor(settings)

    # The retrainer's ChallengerStarted reaches the running predictor ...
    start_challenger(settings, challenger, "shadow", 0.0)
    started = ChallengerStarted(
        challenge_id=f"{settings.mlflow.model_name}:{challenger}",
        event_time=utc_now(),
        model_name=settings.mlflow.model_name,
        version=challenger,
        champion_version=champion,
        gate="shadow",
        canary_fraction=0.0,
        evaluation_start=ride(0).event_time - timedelta(hours=1),
    )
    announce(settings, started)
    time.sleep(3)  # the watcher loads it off the hot path
    # ... and a second predictor of the group, started mid-evaluation, reads the alias.
    second = start_predictor(settings)
    rides = [ride(n, "shadow") for n in range(600)]
    produce_rides(settings.kafka, topics.rides_requested, rides)
    served = predictions(settings, topics.rides_predictions, len(rides))
    shadowed = predictions(settings, topics.rides_shadow, len(rides))

    assert {p.model_version for p in served} == {champion}
    assert Counter(p.ride_id for p in served) == Counter(r.ride_id for r in rides)
    assert {(p.model_version, p.role) for p in shadowed} == {(challenger, "shadow")}
    assert Counter(p.ride_id for p in shadowed) == Counter(r.ride_id for r in rides)

    # Rejected: the alias is cleared and the event published; shadowing stops.
    ModelRegistry(settings.mlflow).delete_alias(CHALLENGER)
    rejected = ModelRejected(
        rejection_id=started.challenge_id,
        event_time=utc_now(),
        model_name=started.model_name,
        version=challenger,
        champion_version=champion,
        reason="futility",
    )
    announce(settings, rejected)
    time.sleep(3)
    after = [ride(n, "after") for n in range(300)]
    produce_rides(settings.kafka, topics.rides_requested, after)
    served = predictions(settings, topics.rides_predictions, len(rides) + len(after))
    first.close()
    second.close()
    shadowed = predictions(settings, topics.rides_shadow, len(rides) + 1, timeout_s=5.0)

    assert {p.ride_id for p in served} >= {r.ride_id for r in after}
    assert len(shadowed) == len(rides)  # nothing shadowed after the rejection
