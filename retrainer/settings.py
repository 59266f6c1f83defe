"""The retrainer's settings: the shared ones plus a `retrainer` section
(`RIDESTREAM_RETRAINER__*`)."""

from __future__ import annotations

from datetime import timedelta

from pydantic import Field

from retrainer.buffer import DEFAULT_MAX_ROWS
from retrainer.decision import DEFAULT_MARGIN
from retrainer.gate import GateOptions
from ridestream.events import GateMode
from ridestream.model import DEFAULT_KIND, MODEL_KINDS
from ridestream.registry_retry import RegistryRetryOptions
from ridestream.settings import Settings


class RetrainerOptions(RegistryRetryOptions):
    """Knobs of the buffer, the training job and the promotion rule (and the registry retries)."""

    # Event-time span of the buffer, from the newest drop-off seen (not the wall clock).
    buffer_days: float = Field(default=14.0, gt=0)
    # Row bound of the buffer: ~40 bytes a ride, so 500k rides are ~20 MB.
    buffer_rows: int = Field(default=DEFAULT_MAX_ROWS, gt=0)
    # Below this many labelled rides in the buffer a drift alert is a logged skip.
    min_labelled_rides: int = Field(default=5_000, gt=0)
    # Newest share of the buffer (by pickup time) held out to score champion and challenger.
    holdout_fraction: float = Field(default=0.2, gt=0, lt=1)
    # The challenger must beat the champion's RMSE by this fraction to be promoted.
    margin: float = Field(default=DEFAULT_MARGIN, ge=0, lt=1)
    model_kind: str = Field(default=DEFAULT_KIND, pattern="|".join(MODEL_KINDS))
    # The live gate (README, "The live gate"): "offline" promotes on the holdout check alone;
    # "shadow" and "canary" promote only on the rides that come after the challenger.
    gate: GateMode = "shadow"
    # canary: the share of rides (by a stable hash of the ride id) the challenger serves.
    canary_fraction: float = Field(default=0.1, gt=0, lt=1)
    # The gate's confidence sequence holds at every look with probability 1 - alpha.
    gate_alpha: float = Field(default=0.05, gt=0, lt=1)
    # Promote only on at least this many labelled rides over at least this much event time
    # (a daily cycle: a challenger better at night only is not promoted at 3 am).
    gate_min_rides: int = Field(default=2_000, gt=0)
    gate_min_span_h: float = Field(default=24.0, ge=0)
    # Budget: reject without a verdict after this many rides or this much event time.
    gate_max_rides: int = Field(default=100_000, gt=0)
    gate_max_span_days: float = Field(default=7.0, gt=0)
    # Consumer group of the drift.alerts consumer (rides.completed is read without a group).
    group_id: str = "retrainer"
    poll_timeout_ms: int = Field(default=200, gt=0)
    max_poll_records: int = Field(default=5_000, gt=0)

    @property
    def buffer_age(self) -> timedelta:
        return timedelta(days=self.buffer_days)

    @property
    def gate_options(self) -> GateOptions:
        """The live gate's options (`retrainer.gate`), the margin shared with the offline rule."""
        return GateOptions(
            margin=self.margin,
            alpha=self.gate_alpha,
            effect=max(1 - (1 - self.margin) ** 2, GateOptions.effect / 10),
            min_rides=self.gate_min_rides,
            min_span=timedelta(hours=self.gate_min_span_h),
            max_rides=self.gate_max_rides,
            max_span=timedelta(days=self.gate_max_span_days),
        )


class RetrainerSettings(Settings):
    """Settings of `ridestream retrainer`, `models`, `promote` and `rollback`."""

    retrainer: RetrainerOptions = RetrainerOptions()
