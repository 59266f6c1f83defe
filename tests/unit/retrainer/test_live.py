"""The live evaluation: the same looks and the same decision however the rides are batched."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from typing import Any

import numpy as np
import pandas as pd

from retrainer.gate import GateOptions
from retrainer.live import LiveDecision, LiveEvaluation, live_evidence
from ridestream.events import ChallengerStarted, ModelPromoted
from ridestream.features import DROPOFF_TIME, PICKUP_TIME, TARGET
from tests.synthetic import synthetic_rides

START = datetime(2021, 1, 8, 9, 17)  # not on an hour: the partial first hour does not count
OPTIONS = GateOptions(min_rides=2_000, min_span=timedelta(hours=24))


class SlopeModel:
    """Minutes = 2 + slope x distance (synthetic rides are 2 + 3.5 x distance + noise)."""

    def __init__(self, slope: float) -> None:
        self.slope = slope

    def predict(self, features: pd.DataFrame) -> Any:
        return 2 + self.slope * features["trip_distance"].to_numpy(dtype=float)


def started() -> ChallengerStarted:
    return ChallengerStarted(
        challenge_id="m:2",
        event_time=datetime(2026, 11, 28, tzinfo=UTC),
        model_name="m",
        version="2",
        champion_version="1",
        gate="shadow",
        canary_fraction=0.0,
        evaluation_start=START,
    )


def completed(count: int, seed: int) -> pd.DataFrame:
    """Completed rides in drop-off order (the order rides.completed delivers them)."""
    rides = synthetic_rides(count, seed)
    duration = pd.to_timedelta(rides[TARGET], unit="min")
    rides[DROPOFF_TIME] = (rides[PICKUP_TIME] + duration).dt.floor("us")
    return rides.sort_values(DROPOFF_TIME).reset_index(drop=True)


def run(rides: pd.DataFrame, chunk: int, champion: float, challenger: float) -> LiveDecision:
    """Feed `rides` in chunks, looking at the newest drop-off after each, as the retrainer does."""
    live = LiveEvaluation(started(), SlopeModel(champion), SlopeModel(challenger), OPTIONS)
    for first in range(0, len(rides), chunk):
        part = rides.iloc[first : first + chunk]
        live.add(part)
        verdict = live.look(part[DROPOFF_TIME].max().to_pydatetime())
        if verdict is not None:
            return verdict
    raise AssertionError("no decision")


def test_better_challenger_is_promoted_at_the_same_look_however_the_rides_are_batched() -> None:
    rides = completed(40_000, seed=1)

    one_by_batch = run(rides, 5_000, champion=3.0, challenger=3.5)
    small_batches = run(rides, 97, champion=3.0, challenger=3.5)

    assert one_by_batch.decision.verdict == small_batches.decision.verdict == "promote"
    assert one_by_batch.look == small_batches.look
    evidence, same = one_by_batch.decision.evidence, small_batches.decision.evidence
    assert evidence is not None and same is not None
    # The same rides in the same blocks; the sums only differ by float rounding (order).
    assert (same.rides, same.blocks, same.first_block) == (
        evidence.rides,
        evidence.blocks,
        evidence.first_block,
    )
    assert np.isclose(same.theta, evidence.theta, rtol=1e-9)
    assert evidence is not None and evidence.rides >= OPTIONS.min_rides
    assert evidence.first_block == datetime(2021, 1, 8, 10)  # the first whole hour after START
    assert evidence.span >= OPTIONS.min_span


def test_worse_challenger_is_rejected_for_futility() -> None:
    verdict = run(completed(40_000, seed=2), 1_000, champion=3.5, challenger=2.5)

    assert verdict.decision.verdict == "reject"
    assert "futility" in verdict.decision.reason


def test_rides_before_the_start_unlabelled_rides_and_replayed_rides_count_once_or_not_at_all():
    rides = completed(5_000, seed=3)
    live = LiveEvaluation(started(), SlopeModel(3.0), SlopeModel(3.5), OPTIONS)

    added = live.add(rides)
    again = live.add(rides.iloc[:1_000])

    wanted = (rides[PICKUP_TIME] >= START) & rides[TARGET].between(1, 60)
    assert added == live.rides == int(wanted.sum()) > 0
    assert again == 0
    assert sum(s.rides for s in live.blocks.values()) == added


def test_evidence_becomes_the_event_fields_of_the_decision() -> None:
    verdict = run(completed(40_000, seed=1), 5_000, champion=3.0, challenger=3.5)
    evidence = verdict.decision.evidence
    assert evidence is not None

    fields = live_evidence(evidence, OPTIONS)

    assert fields is not None
    assert (fields.rides, fields.blocks, fields.margin) == (evidence.rides, evidence.blocks, 0.02)
    assert fields.first_pickup == evidence.first_block
    assert fields.challenger_rmse < fields.champion_rmse
    assert fields.ci_low > 0 and 0 <= fields.p_value <= OPTIONS.alpha
    promoted = ModelPromoted(
        promotion_id="m:2",
        event_time=datetime(2026, 11, 28, tzinfo=UTC),
        model_name="m",
        version="2",
        previous_version="1",
        reason="drift",
        gate=fields,
    )
    assert promoted.gate is not None and np.isclose(promoted.gate.theta, evidence.theta)
    assert live_evidence(None, OPTIONS) is None
