"""The live gate: does the challenger beat the champion on the rides that come after it?

A pure function of event-time data: no Kafka, no MLflow, no wall clock.

Every labelled ride picked up at or after the challenger's training cut-off is predicted by
both models. Per ride, with `c` and `h` the champion's and the challenger's squared errors,
the challenger is better beyond the margin `m` when its RMSE is at most (1 - m) times the
champion's on the same rides, the offline rule of `retrainer.decision` in squares:

    theta = E[(1 - m)^2 c - h] > 0

**Blocks.** Rides of the same hour share traffic, weather and events: they are not independent,
and a test that counted them as such would be sure of itself far too soon. The unit is the
hour of pickup (`GateOptions.block`): the state is, per block, the ride count and the two sums
of squared errors (`BlockSums`), which add, so partial states from several processes merge to
the same answer in any order, and a state rebuilt from the topics after a restart is the
state that was lost. The variance of the estimate is the between-block (cluster-robust) one.

**Repeated looks.** The gate looks again every time a block completes, so a fixed-sample test
would promote a challenger that is no better far more often than its alpha says (each look is
another chance to cross by luck). The gate uses the mixture sequential probability ratio test
(Robbins 1970; Johari, Pekelis and Walsh, "Always valid inference", 2017, the test behind
Optimizely's stats engine): its confidence sequence for theta holds at every look at once with
probability 1 - alpha, however many looks there are. The mixture is normal with scale `tau` =
`effect` x the champion's MSE: centred on effects of the size the margin cares about (a 2 %
RMSE margin is a 3.96 % MSE change; the test's power is flat within a factor of a few around
it). Approximations, said plainly: theta's estimate is taken as normal with the cluster-robust
variance, which needs enough blocks (`min_blocks`); days are not identical, so a challenger
that is better on weekdays only can be promoted on a run of weekdays (`min_span` of one daily
cycle by default, a week of budget to see a weekend).

**Decisions**, at each look, in this order:

- promote: the lower confidence bound of theta is above 0, on at least `min_rides` labelled
  rides spanning at least `min_span` of event time;
- reject, futility: the upper confidence bound is below 0 (at least `min_blocks` blocks): the
  challenger is, with the same confidence, not better by the margin; stopping at once spends
  no more rides on it;
- reject, budget: `max_rides` rides or `max_span` of event time (watermark minus the longest
  ride, from the cut-off, whether rides came or not) without either;
- otherwise go on.

A block is complete once the event-time watermark (drop-offs) has passed its end plus the
longest labelled ride (60 min): every labelled ride picked up in it has then been dropped off.
"""

from __future__ import annotations

import math
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Literal

import numpy as np
import pandas as pd

from ridestream.features import MAX_DURATION_MIN

Verdict = Literal["promote", "reject", "continue"]

# The longest labelled ride: a block's rides have all been dropped off this long after its end.
LONGEST_RIDE = timedelta(minutes=MAX_DURATION_MIN)


@dataclass(frozen=True)
class GateOptions:
    """The live gate's knobs (see the module docstring for what each does)."""

    margin: float = 0.02
    alpha: float = 0.05
    # Scale of the mixture, as a fraction of the champion's MSE: 1 - 0.98^2, the MSE change
    # of the default 2 % RMSE margin.
    effect: float = 0.0396
    min_rides: int = 2_000
    min_span: timedelta = timedelta(hours=24)
    min_blocks: int = 6
    max_rides: int = 100_000
    max_span: timedelta = timedelta(days=7)
    block: timedelta = timedelta(hours=1)

    def __post_init__(self) -> None:
        if not 0 <= self.margin < 1:
            raise ValueError(f"margin must be in [0, 1), got {self.margin}")
        if not 0 < self.alpha < 1:
            raise ValueError(f"alpha must be in (0, 1), got {self.alpha}")
        if self.effect <= 0:
            raise ValueError(f"effect must be > 0, got {self.effect}")
        if self.min_blocks < 2:
            raise ValueError(f"min_blocks must be >= 2, got {self.min_blocks}")
        if self.block <= timedelta(0):
            raise ValueError(f"block must be positive, got {self.block}")


@dataclass(frozen=True)
class BlockSums:
    """One block's labelled rides: how many, and each model's sum of squared errors."""

    rides: int
    champion_sq: float
    challenger_sq: float

    def __add__(self, other: BlockSums) -> BlockSums:
        return BlockSums(
            self.rides + other.rides,
            self.champion_sq + other.champion_sq,
            self.challenger_sq + other.challenger_sq,
        )


Blocks = Mapping[datetime, BlockSums]


def block_sums(
    pickup: pd.Series | np.ndarray,
    champion_min: np.ndarray,
    challenger_min: np.ndarray,
    actual_min: np.ndarray,
    block: timedelta = GateOptions.block,
) -> dict[datetime, BlockSums]:
    """Per block of pickup time (keyed by its start), the rides and both sums of squares."""
    block_ns = int(pd.Timedelta(block).value)
    # Block starts as integers (ns since the epoch): floor division, no calendar arithmetic.
    ns = np.asarray(pickup, dtype="datetime64[ns]").view("int64")
    starts = ns - ns % block_ns
    champion_sq = (np.asarray(champion_min, float) - np.asarray(actual_min, float)) ** 2
    challenger_sq = (np.asarray(challenger_min, float) - np.asarray(actual_min, float)) ** 2
    keys, index = np.unique(starts, return_inverse=True)
    rides = np.bincount(index, minlength=len(keys))
    champion = np.bincount(index, weights=champion_sq, minlength=len(keys))
    challenger = np.bincount(index, weights=challenger_sq, minlength=len(keys))
    return {
        pd.Timestamp(int(key)).to_pydatetime(): BlockSums(int(n), float(c), float(h))
        for key, n, c, h in zip(keys, rides, champion, challenger, strict=True)
    }


def merge_blocks(*parts: Blocks) -> dict[datetime, BlockSums]:
    """The blocks of several partial states added up (the order does not matter)."""
    merged: dict[datetime, BlockSums] = {}
    for part in parts:
        for start, sums in part.items():
            merged[start] = merged[start] + sums if start in merged else sums
    return merged


@dataclass(frozen=True)
class GateEvidence:
    """What a look saw: enough to audit the decision without rerunning anything."""

    rides: int
    blocks: int
    first_block: datetime
    last_block_end: datetime
    champion_rmse: float
    challenger_rmse: float
    # theta (min^2 a ride), its confidence sequence at this look, z and the always-valid p
    # of "not better by the margin" (theta <= 0).
    theta: float
    ci_low: float
    ci_high: float
    z: float
    p_value: float

    @property
    def span(self) -> timedelta:
        return self.last_block_end - self.first_block

    @property
    def improvement(self) -> float:
        """The challenger's relative RMSE reduction on these rides (negative: worse)."""
        return 1 - self.challenger_rmse / self.champion_rmse if self.champion_rmse else 0.0


@dataclass(frozen=True)
class GateDecision:
    """The verdict of one look, why, and the evidence (None before the first usable look)."""

    verdict: Verdict
    reason: str
    evidence: GateEvidence | None


def complete_blocks(
    blocks: Blocks, started: datetime, watermark: datetime, block: timedelta
) -> list[tuple[datetime, BlockSums]]:
    """The blocks that count, in time order: picked up at or after `started` (the challenger's
    training cut-off), and complete at `watermark` (see the module docstring)."""
    return sorted(
        (start, sums)
        for start, sums in blocks.items()
        if start >= started and start + block + LONGEST_RIDE <= watermark and sums.rides > 0
    )


def evidence_of(
    blocks: Iterable[tuple[datetime, BlockSums]], options: GateOptions
) -> GateEvidence | None:
    """The estimate of theta over `blocks` with its always-valid confidence interval; None
    with fewer than two blocks (no between-block variance)."""
    ordered = list(blocks)
    if len(ordered) < 2:
        return None
    rides = np.array([s.rides for _, s in ordered], dtype=float)
    champion = np.array([s.champion_sq for _, s in ordered])
    challenger = np.array([s.challenger_sq for _, s in ordered])
    total = rides.sum()
    factor = (1 - options.margin) ** 2
    per_block = factor * champion - challenger
    theta = per_block.sum() / total
    k = len(ordered)
    # Cluster-robust variance of the ratio estimate, blocks as the units (k / (k - 1) small-sample
    # correction, as in the usual CR1 estimator).
    variance = k / (k - 1) * float(((per_block - rides * theta) ** 2).sum()) / total**2
    champion_mse = champion.sum() / total
    tau2 = (options.effect * champion_mse) ** 2
    half_width, p_value = _confidence_sequence(theta, variance, tau2, options.alpha)
    return GateEvidence(
        rides=int(total),
        blocks=k,
        first_block=ordered[0][0],
        last_block_end=ordered[-1][0] + options.block,
        champion_rmse=math.sqrt(champion_mse),
        challenger_rmse=math.sqrt(challenger.sum() / total),
        theta=float(theta),
        ci_low=float(theta - half_width),
        ci_high=float(theta + half_width),
        z=float(theta / math.sqrt(variance)) if variance > 0 else math.copysign(math.inf, theta),
        p_value=p_value,
    )


def _confidence_sequence(
    theta: float, variance: float, tau2: float, alpha: float
) -> tuple[float, float]:
    """Half-width of the mSPRT confidence sequence around `theta`, and the always-valid p-value
    of theta <= 0 at this look (1 / the mixture likelihood ratio at 0, capped at 1)."""
    if variance <= 0:
        return 0.0, 0.0 if theta > 0 else 1.0
    # Lambda(theta0) = sqrt(V / (V + tau2)) * exp(tau2 (theta - theta0)^2 / (2 V (V + tau2)))
    log_shrink = 0.5 * math.log(variance / (variance + tau2))
    scale = 2 * variance * (variance + tau2) / tau2
    half_width = math.sqrt(scale * (math.log(1 / alpha) - log_shrink))
    if theta <= 0:
        return half_width, 1.0
    log_ratio = log_shrink + theta**2 / scale
    return half_width, float(min(1.0, math.exp(-log_ratio)))


def judge(
    blocks: Blocks, started: datetime, watermark: datetime, options: GateOptions
) -> GateDecision:
    """One look of the gate: promote, reject, or go on (see the module docstring)."""
    counted = complete_blocks(blocks, started, watermark, options.block)
    evidence = evidence_of(counted, options)
    # The time budget runs on event time passed, not on the span of the counted blocks: a
    # challenger that sees no labelled rides at all must still be rejected in the end.
    span = max(timedelta(0), watermark - LONGEST_RIDE - started)
    rides = sum(sums.rides for _, sums in counted)
    budget_spent = rides >= options.max_rides or span >= options.max_span
    if evidence is None:
        if budget_spent:
            return GateDecision("reject", "budget spent with fewer than two blocks", None)
        return GateDecision("continue", f"{len(counted)} complete block(s)", None)
    summary = (
        f"challenger RMSE {evidence.challenger_rmse:.4f} vs champion {evidence.champion_rmse:.4f} "
        f"on {evidence.rides:,} rides in {evidence.blocks} blocks; margin {options.margin:.0%}: "
        f"theta {evidence.theta:+.3f} in [{evidence.ci_low:+.3f}, {evidence.ci_high:+.3f}] "
        f"(alpha {options.alpha:g}), p {evidence.p_value:.3g}"
    )
    if (
        evidence.ci_low > 0
        and evidence.rides >= options.min_rides
        and evidence.span >= options.min_span
    ):
        return GateDecision("promote", f"better beyond the margin: {summary}", evidence)
    if evidence.ci_high < 0 and evidence.blocks >= options.min_blocks:
        return GateDecision("reject", f"futility, not better by the margin: {summary}", evidence)
    if budget_spent:
        return GateDecision("reject", f"budget spent without a decision: {summary}", evidence)
    return GateDecision("continue", summary, evidence)
