"""The retrainer's settings: the shared ones plus a `retrainer` section
(`RIDESTREAM_RETRAINER__*`)."""

from __future__ import annotations

from datetime import timedelta

from pydantic import BaseModel, Field

from retrainer.backoff import Backoff
from retrainer.buffer import DEFAULT_MAX_ROWS
from retrainer.decision import DEFAULT_MARGIN
from ridestream.model import DEFAULT_KIND, MODEL_KINDS
from ridestream.settings import Settings


class RetrainerOptions(BaseModel):
    """Knobs of the buffer, the training job and the promotion rule."""

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
    # Consumer group of the drift.alerts consumer (rides.completed is read without a group).
    group_id: str = "retrainer"
    poll_timeout_ms: int = Field(default=200, gt=0)
    max_poll_records: int = Field(default=5_000, gt=0)
    # An unreachable registry is retried per call, waiting backoff_s, 2x, 4x ... capped at
    # registry_retry_max_backoff_s; the defaults wait 1+2+4+8+16+30+30 = 91 s in all before
    # the service exits non-zero (retrainer.backoff).
    registry_retry_attempts: int = Field(default=8, ge=1)
    registry_retry_backoff_s: float = Field(default=1.0, ge=0)
    registry_retry_max_backoff_s: float = Field(default=30.0, ge=0)

    @property
    def buffer_age(self) -> timedelta:
        return timedelta(days=self.buffer_days)

    @property
    def registry_backoff(self) -> Backoff:
        """The retry policy of every registry call the retrainer makes."""
        return Backoff(
            self.registry_retry_attempts,
            self.registry_retry_backoff_s,
            self.registry_retry_max_backoff_s,
        )


class RetrainerSettings(Settings):
    """Settings of `ridestream retrainer`, `models`, `promote` and `rollback`."""

    retrainer: RetrainerOptions = RetrainerOptions()
