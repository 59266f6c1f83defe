"""One challenger under live evaluation: its rides, both models' errors on them, the gate's looks.

No Kafka, no MLflow: rides frames go in (the retrainer's completed rides, or its buffer
snapshot), `retrainer.gate` decisions come out. Both models are in memory; every labelled ride
picked up at or after the evaluation start (the newest drop-off in the challenger's training
data) is predicted by both, once (ride keys already counted are skipped: at-least-once delivery
and a buffer seed that overlaps the stream count once), and added to the gate's hourly block
sums.

Looks are taken at block boundaries of event time, not per batch: after rides arrive, the gate
is judged at `block end + longest ride` for every block end the watermark has passed since the
last look, in order, and stops at the first decision. So the decision and its evidence do not
depend on how the rides were batched: a retrainer that installs the challenger after its
training (seeded from the buffer), one restarted mid-evaluation (fed while it re-reads
rides.completed) and a backtest on plain arrays take the same looks on the same blocks.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from typing import Any

import numpy as np
import pandas as pd

from retrainer.buffer import RIDE_KEY, ride_keys
from retrainer.gate import (
    LONGEST_RIDE,
    BlockSums,
    GateDecision,
    GateEvidence,
    GateOptions,
    block_sums,
    judge,
    merge_blocks,
)
from ridestream.events import ChallengerStarted, LiveEvidence
from ridestream.features import PICKUP_TIME, RIDE_ID, TARGET, is_labelled
from ridestream.model import predict


@dataclass(frozen=True)
class LiveDecision:
    """A verdict that ends the evaluation, and the event time of the look that took it."""

    decision: GateDecision
    look: datetime


def _ceil(when: datetime, options: GateOptions) -> datetime:
    """The first block boundary at or after `when`."""
    block_ns = int(pd.Timedelta(options.block).value)
    ns = int(pd.Timestamp(when).value)
    return pd.Timestamp(-(-ns // block_ns) * block_ns).to_pydatetime()


class LiveEvaluation:
    """The gate's state for the challenger of `started`, judged with `options`."""

    def __init__(
        self,
        started: ChallengerStarted,
        champion_model: Any,
        challenger_model: Any,
        options: GateOptions,
    ) -> None:
        self.started = started
        self.champion_model = champion_model
        self.challenger_model = challenger_model
        self.options = options
        self.blocks: dict[datetime, BlockSums] = {}
        self._counted: set[int] = set()
        # The first block that counts starts at the first boundary at or after the start.
        self._next_block_end = _ceil(started.evaluation_start, options) + options.block
        self.last: GateDecision | None = None

    @property
    def version(self) -> str:
        return self.started.version

    @property
    def rides(self) -> int:
        """Labelled rides counted so far (complete blocks or not)."""
        return len(self._counted)

    def add(self, rides: pd.DataFrame) -> int:
        """Count the labelled rides of `rides` picked up at or after the evaluation start and
        not counted yet; returns how many were added. `rides` holds `ride_key` (a buffer
        snapshot) or `ride_id`, the pickup time, zones, distance and `duration_min`."""
        if rides.empty:
            return 0
        keys = (
            rides[RIDE_KEY].to_numpy(dtype="uint64")
            if RIDE_KEY in rides
            else ride_keys(rides[RIDE_ID].to_numpy())
        )
        pickup = rides[PICKUP_TIME].to_numpy(dtype="datetime64[us]")
        wanted = np.asarray(is_labelled(rides[TARGET])) & (
            pickup >= np.datetime64(self.started.evaluation_start, "us")
        )
        # Keep the first of each key, and none already counted.
        _, first = np.unique(keys, return_index=True)
        unique = np.zeros(len(keys), dtype=bool)
        unique[first] = True
        fresh = np.fromiter((int(k) not in self._counted for k in keys), bool, len(keys))
        keep = wanted & unique & fresh
        if not keep.any():
            return 0
        chosen = rides[keep]
        self._counted.update(int(k) for k in keys[keep])
        actual = chosen[TARGET].to_numpy(dtype="float64")
        sums = block_sums(
            pickup[keep],
            predict(self.champion_model, chosen),
            predict(self.challenger_model, chosen),
            actual,
            self.options.block,
        )
        self.blocks = merge_blocks(self.blocks, sums)
        return int(keep.sum())

    def look(self, watermark: datetime | None) -> LiveDecision | None:
        """Judge at every block boundary the event-time `watermark` has passed since the last
        look; the first verdict other than "continue" (None while the gate goes on)."""
        if watermark is None:
            return None
        while self._next_block_end + LONGEST_RIDE <= watermark:
            at = self._next_block_end + LONGEST_RIDE
            self._next_block_end += self.options.block
            decision = judge(self.blocks, self.started.evaluation_start, at, self.options)
            self.last = decision
            if decision.verdict != "continue":
                return LiveDecision(decision, at)
        return None


def live_evidence(evidence: GateEvidence | None, options: GateOptions) -> LiveEvidence | None:
    """The event form of a look's evidence (None when the look had none)."""
    if evidence is None:
        return None
    return LiveEvidence(
        rides=evidence.rides,
        blocks=evidence.blocks,
        first_pickup=evidence.first_block,
        last_pickup=evidence.last_block_end,
        champion_rmse=evidence.champion_rmse,
        challenger_rmse=evidence.challenger_rmse,
        margin=options.margin,
        alpha=options.alpha,
        theta=evidence.theta,
        ci_low=evidence.ci_low,
        ci_high=evidence.ci_high,
        z=evidence.z if np.isfinite(evidence.z) else None,
        p_value=evidence.p_value,
    )
