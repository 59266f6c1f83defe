"""The retrainer's settings: the shared ones plus a `retrainer` section
(`RIDESTREAM_RETRAINER__*`)."""

from __future__ import annotations

from datetime import timedelta

from pydantic import Field

from retrainer.buffer import DEFAULT_MAX_ROWS
from retrainer.decision import DEFAULT_MARGIN
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
    # Consumer group of the drift.alerts consumer (rides.completed is read without a group).
    group_id: str = "retrainer"
    poll_timeout_ms: int = Field(default=200, gt=0)
    max_poll_records: int = Field(default=5_000, gt=0)

    @property
    def buffer_age(self) -> timedelta:
        return timedelta(days=self.buffer_days)


class RetrainerSettings(Settings):
    """Settings of `ridestream retrainer`, `models`, `promote` and `rollback`."""

    retrainer: RetrainerOptions = RetrainerOptions()
