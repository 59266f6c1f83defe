"""The live gate on simulated hours of rides: promotes what is better, rejects what is not,
keeps its error rate under repeated looks, and merges partial states to the same answer."""

from __future__ import annotations

from dataclasses import replace
from datetime import datetime, timedelta

import numpy as np
import pytest

from retrainer.gate import (
    LONGEST_RIDE,
    BlockSums,
    GateOptions,
    block_sums,
    evidence_of,
    judge,
    merge_blocks,
)

START = datetime(2022, 5, 2)  # a Monday
HOUR = timedelta(hours=1)
# Rides an hour over a day: night lull, morning and evening peaks (green-taxi-like volume).
RIDES_BY_HOUR = np.array([40, 25, 15, 10, 10, 20, 50, 90, 110, 100, 90, 90] * 2)


def simulate_rides(
    rng: np.random.Generator,
    days: int,
    champion_sd: float,
    challenger_sd: float,
    hour_shock_sd: float = 2.0,
) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    """Pickup times, both models' predictions and the actual durations of `days` days.

    Each hour has a shock shared by all its rides and both models (traffic that neither model
    saw coming): rides of one hour are dependent, as on real streets."""
    pickups, champion, challenger, actual = [], [], [], []
    for hour in range(days * 24):
        n = int(RIDES_BY_HOUR[hour % 24])
        start = np.datetime64(START + hour * HOUR)
        pickups.append(start + rng.integers(0, 3600, n).astype("timedelta64[s]"))
        truth = rng.lognormal(2.4, 0.6, n)
        shock = rng.normal(0, hour_shock_sd)
        actual.append(truth)
        champion.append(truth + shock + rng.normal(0, champion_sd, n))
        challenger.append(truth + shock + rng.normal(0, challenger_sd, n))
    return tuple(np.concatenate(part) for part in (pickups, champion, challenger, actual))  # type: ignore[return-value]


def hourly_blocks(
    rng: np.random.Generator, days: int, champion_sd: float, challenger_sd: float
) -> dict[datetime, BlockSums]:
    pickup, champion, challenger, actual = simulate_rides(rng, days, champion_sd, challenger_sd)
    return block_sums(pickup, champion, challenger, actual)


def first_decision(
    blocks: dict[datetime, BlockSums], options: GateOptions, days: int
) -> tuple[str, datetime]:
    """Look after every hour, as the retrainer does when a block completes."""
    for hour in range(1, days * 24 + 1):
        watermark = START + hour * HOUR + LONGEST_RIDE
        decision = judge(blocks, START, watermark, options)
        if decision.verdict != "continue":
            return decision.verdict, watermark
    return "continue", START + days * 24 * HOUR


def test_clearly_better_challenger_is_promoted_once_it_has_a_day_of_rides() -> None:
    blocks = hourly_blocks(np.random.default_rng(1), 7, champion_sd=7.0, challenger_sd=5.0)
    options = GateOptions()

    verdict, at = first_decision(blocks, options, 7)

    assert verdict == "promote"
    assert at - LONGEST_RIDE >= START + options.min_span
    decision = judge(blocks, START, at, options)
    assert decision.evidence is not None
    assert decision.evidence.rides >= options.min_rides
    assert decision.evidence.challenger_rmse < decision.evidence.champion_rmse
    assert decision.evidence.ci_low > 0
    assert decision.evidence.p_value <= options.alpha


def test_clearly_worse_challenger_is_rejected_for_futility_within_hours() -> None:
    blocks = hourly_blocks(np.random.default_rng(2), 7, champion_sd=5.0, challenger_sd=7.0)

    verdict, at = first_decision(blocks, GateOptions(), 7)

    assert verdict == "reject"
    assert at - LONGEST_RIDE <= START + timedelta(hours=12)
    assert "futility" in judge(blocks, START, at, GateOptions()).reason


def test_challenger_no_better_than_the_margin_is_rejected_when_the_budget_is_spent() -> None:
    # Better by ~1 %: not by the 2 % margin, and not clearly worse than it either.
    blocks = hourly_blocks(np.random.default_rng(3), 3, champion_sd=6.0, challenger_sd=5.93)
    options = GateOptions(max_span=timedelta(days=2))

    verdict, at = first_decision(blocks, options, 3)

    assert verdict == "reject"
    assert "budget" in judge(blocks, START, at, options).reason


def test_equal_models_are_rarely_promoted_however_often_the_gate_looks() -> None:
    """At theta = 0 exactly (no margin, same error), a look after every hour for a week
    promotes at most about alpha of the time; a fixed-sample z test at each look would not."""
    options = GateOptions(margin=0.0, min_rides=0, min_span=timedelta(0), min_blocks=6)
    rng = np.random.default_rng(4)
    runs, promoted, naive_promoted = 200, 0, 0
    for _ in range(runs):
        blocks = sorted(hourly_blocks(rng, 7, champion_sd=6.0, challenger_sd=6.0).items())
        verdict, naive = "continue", False
        for count in range(options.min_blocks, len(blocks) + 1):
            evidence = evidence_of(blocks[:count], options)
            assert evidence is not None
            naive = naive or evidence.z > 1.645  # one-sided 5 % at every look
            if verdict == "continue" and evidence.ci_low > 0:
                verdict = "promote"
            elif verdict == "continue" and evidence.ci_high < 0:
                verdict = "reject"
        promoted += verdict == "promote"
        naive_promoted += naive
    # Binomial(200, 0.05): mean 10, sd ~3.1; the mixture test is conservative in practice.
    assert promoted / runs <= 0.08
    assert naive_promoted / runs > 0.15


def test_partial_states_of_two_processes_merge_to_the_same_decision() -> None:
    rng = np.random.default_rng(5)
    pickup, champion, challenger, actual = simulate_rides(rng, 2, 7.0, 5.0)
    half = rng.random(len(pickup)) < 0.5
    whole = block_sums(pickup, champion, challenger, actual)
    parts = [
        block_sums(pickup[mask], champion[mask], challenger[mask], actual[mask])
        for mask in (half, ~half)
    ]
    watermark = START + 2 * 24 * HOUR + LONGEST_RIDE

    merged_ab, merged_ba = merge_blocks(*parts), merge_blocks(*reversed(parts))

    assert merged_ab.keys() == whole.keys()
    for start, sums in whole.items():
        assert merged_ab[start].rides == sums.rides
        assert merged_ab[start].champion_sq == pytest.approx(sums.champion_sq)
        assert merged_ba[start].challenger_sq == pytest.approx(sums.challenger_sq)
    decisions = [judge(b, START, watermark, GateOptions()) for b in (whole, merged_ab, merged_ba)]
    assert {d.verdict for d in decisions} == {"promote"}
    assert decisions[1].evidence is not None and decisions[0].evidence is not None
    assert decisions[1].evidence.theta == pytest.approx(decisions[0].evidence.theta)


def test_rides_before_the_cutoff_and_blocks_not_yet_complete_do_not_count() -> None:
    blocks = {
        START - HOUR: BlockSums(1_000, 1e9, 0.0),  # before the cut-off: would decide at once
        START: BlockSums(100, 3_000.0, 2_000.0),
        START + HOUR: BlockSums(100, 3_100.0, 2_100.0),
        START + 2 * HOUR: BlockSums(100, 1e9, 0.0),  # not complete at the watermark below
    }
    watermark = START + 2 * HOUR + LONGEST_RIDE

    decision = judge(blocks, START, watermark, GateOptions())

    assert decision.evidence is not None
    assert decision.evidence.rides == 200
    assert decision.evidence.blocks == 2
    assert decision.verdict == "continue"


def test_gate_options_refuse_values_that_make_no_sense() -> None:
    with pytest.raises(ValueError, match="alpha"):
        replace(GateOptions(), alpha=1.5)
    with pytest.raises(ValueError, match="min_blocks"):
        GateOptions(min_blocks=1)


def test_challenger_that_sees_no_labelled_ride_is_rejected_when_the_time_budget_is_spent() -> None:
    options = GateOptions(max_span=timedelta(days=2))
    early = judge({}, START, START + timedelta(days=1) + LONGEST_RIDE, options)
    late = judge({}, START, START + timedelta(days=2) + LONGEST_RIDE, options)

    assert early.verdict == "continue"
    assert (late.verdict, late.evidence) == ("reject", None)
    assert "budget" in late.reason
