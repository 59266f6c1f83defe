"""The predictor's settings: the shared ones plus `RIDESTREAM_PREDICTOR__*`."""

from __future__ import annotations

from pydantic import BaseModel, Field

from ridestream.settings import Settings


class PredictorOptions(BaseModel):
    """How the predictor consumes, batches, swaps models and reports."""

    group_id: str = "predictor"
    # Large batches amortise the per-batch cost of pandas and scikit-learn (~5 ms a call).
    max_poll_records: int = Field(default=5_000, gt=0)
    poll_timeout_ms: int = Field(default=200, gt=0)
    exactly_once: bool = False
    # transactional.id = "<prefix>-<hostname>-<pid>" in exactly-once mode.
    transactional_id_prefix: str = "predictor"
    # The fallback for a missed ModelPromoted: how often to ask the registry for the champion.
    alias_check_s: float = Field(default=30.0, gt=0)
    # With no champion yet: how long to wait between two registry checks.
    champion_wait_s: float = Field(default=5.0, gt=0)
    log_interval_s: float = Field(default=5.0, gt=0)
    # Young-generation GC threshold after startup, with startup objects frozen out of the
    # collector (Python's default: 700; 0 leaves the collector alone).
    gc_threshold: int = Field(default=50_000, ge=0)


class PredictorSettings(Settings):
    """Settings of the predictor service."""

    predictor: PredictorOptions = PredictorOptions()
