"""The monitor's settings: the shared ones plus a `monitor` section (`RIDESTREAM_MONITOR__*`)."""

from __future__ import annotations

from pathlib import Path

from pydantic import Field, field_validator

from monitor.windows import parse_duration
from ridestream.registry_retry import RegistryRetryOptions
from ridestream.settings import STATE_DIR, Settings


class MonitorOptions(RegistryRetryOptions):
    """Windows, lateness, alert rules, Evidently knobs, where snapshots go, registry retries."""

    group_id: str = "monitor"
    # Tumbling event-time windows by duration (`1d`, `6h`, `30m`) ...
    window: str = "1d"
    # ... or by ride count (set: count windows, assembled from closed `slice` time slices).
    window_rides: int | None = Field(default=None, gt=0)
    slice: str = "1h"
    # How far event time may run ahead of a ride before its window closes without it.
    lateness: str = "2h"
    # Alert rules (see monitor.alerts).
    drift_share_threshold: float = Field(default=0.5, gt=0, le=1)
    # Quality rule (see monitor.quality and monitor.alerts): one-sided significance of the
    # window's MSE over the expected one, and the minimum relative RMSE rise worth a retrain.
    quality_alpha: float = Field(default=0.01, gt=0, lt=1)
    quality_min_rise: float = Field(default=0.04, ge=0)
    # Calendar (see monitor.calendar): the reference is reweighted to each window's
    # hour-of-week mix; cells hold at least this many reference rides; holidays as Sundays.
    calendar: bool = True
    min_cell_rows: int = Field(default=200, ge=1)
    holidays_as_sunday: bool = True
    debounce_windows: int = Field(default=1, ge=1)
    cooldown_windows: int = Field(default=3, ge=0)
    # Windows with fewer rides raise no alert (stray rides years off their month).
    min_window_rides: int = Field(default=200, ge=0)
    # Evidently's drift knobs; None keeps Evidently's default for the data size.
    num_method: str | None = None
    cat_method: str | None = None
    num_threshold: float | None = Field(default=None, gt=0)
    cat_threshold: float | None = Field(default=None, gt=0)
    # Evidently snapshots, written beside the loop (skipped when it falls behind).
    snapshots: bool = True
    reports_dir: Path = STATE_DIR / "reports"
    html: bool = False
    workspace: Path | None = None
    snapshot_queue: int = Field(default=4, ge=1)
    # Wall-clock seconds a ride partition must stay read to its end, with no new record, before
    # it stops holding the watermark back (see monitor.join). Longer than a predictor restart
    # (a group session plus a start-up), or the windows of such a gap close without its
    # predictions; the last windows of a finished stream close this long after its end.
    idle_partition_s: float = Field(default=60.0, ge=0)
    # Records per poll: bounds the work between two polls.
    max_poll_records: int = Field(default=5_000, gt=0)
    # Young-generation GC threshold (Python's default is 700; see monitor.__main__.tune_gc).
    gc_threshold: int = Field(default=50_000, ge=0)
    # Reading the already published windows at start (restart safety).
    restore_timeout_s: float = Field(default=60.0, gt=0)

    @field_validator("window", "slice", "lateness")
    @classmethod
    def _duration(cls, value: str) -> str:
        parse_duration(value)
        return value


class MonitorSettings(Settings):
    """Settings of `ridestream monitor`."""

    monitor: MonitorOptions = MonitorOptions()
