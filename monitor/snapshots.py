"""Evidently snapshots of closed windows, built beside the loop (never on the poll thread).

A full Evidently Report costs a few hundred milliseconds per window, so it runs on a
background thread fed by a small bounded queue: when the queue is full the monitor is behind
and the snapshot of that window is skipped (logged and counted), the stream never waits.
Each snapshot is saved as JSON (and HTML with `--html`) under the reports dir, and added to an
Evidently workspace (`--workspace DIR`, then `evidently ui --workspace DIR`).
"""

from __future__ import annotations

import logging
import queue
import threading
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pandas as pd

from monitor.drift import Reference, reweighted_frame
from ridestream.events import DriftWindowClosed
from ridestream.features import DRIFT_CATEGORICAL, DRIFT_NUMERICAL, PICKUP_TIME, PREDICTION

log = logging.getLogger(__name__)

PROJECT_NAME = "ridestream monitor"
SKIP_LOG_EVERY = 100
DRIFT_COLUMNS = [*DRIFT_NUMERICAL, *DRIFT_CATEGORICAL, PREDICTION]


def snapshot_name(window_id: str) -> str:
    """A file-name-safe form of a window id (`1d:2021-01-05T00:00` → `1d_2021-01-05T00-00`)."""
    return window_id.replace(":", "_", 1).replace(":", "-")


def build_snapshot(event: DriftWindowClosed, current: pd.DataFrame, reference: Reference) -> Any:
    """A full Evidently Report (DataDriftPreset on the drift columns) of one window, against
    the reference resampled to the window's hour-of-week mix (`monitor.drift.reweighted_frame`)."""
    from evidently import DataDefinition, Dataset, Report
    from evidently.presets import DataDriftPreset

    definition = DataDefinition(
        numerical_columns=[*DRIFT_NUMERICAL, PREDICTION],
        categorical_columns=list(DRIFT_CATEGORICAL),
    )
    baseline = (
        reweighted_frame(reference, pd.DatetimeIndex(current[PICKUP_TIME]))
        if PICKUP_TIME in current
        else reference.frame
    )
    report = Report(
        [DataDriftPreset(columns=DRIFT_COLUMNS)],
        include_tests=True,
        metadata={"window_id": event.window_id, "reference_version": str(event.reference_version)},
        tags=[event.window_id.split(":", 1)[0]],
    )
    return report.run(
        Dataset.from_pandas(current[DRIFT_COLUMNS], data_definition=definition),
        Dataset.from_pandas(baseline[DRIFT_COLUMNS], data_definition=definition),
        timestamp=event.event_time,
        name=event.window_id,
    )


@dataclass
class _Job:
    event: DriftWindowClosed
    current: pd.DataFrame
    reference: Reference


class SnapshotWriter:
    """Builds and saves window snapshots on a background thread; skips when behind."""

    def __init__(
        self,
        reports_dir: Path,
        *,
        html: bool = False,
        workspace: Path | None = None,
        queue_size: int = 4,
    ) -> None:
        self.reports_dir = Path(reports_dir)
        self.html = html
        self.workspace_dir = workspace
        self.saved = 0
        self.skipped = 0
        self.failed = 0
        self._queue: queue.Queue[_Job | None] = queue.Queue(maxsize=queue_size)
        self._thread = threading.Thread(target=self._work, name="monitor-snapshots", daemon=True)
        self._workspace: Any = None
        self._project_id: Any = None
        self._thread.start()

    def submit(self, event: DriftWindowClosed, current: pd.DataFrame, reference: Reference) -> None:
        """Queue a window's snapshot; skip it (and say so) when the writer is behind."""
        try:
            self._queue.put_nowait(_Job(event, current, reference))
        except queue.Full:
            self.skipped += 1
            if self.skipped % SKIP_LOG_EVERY == 1:  # the first, then every SKIP_LOG_EVERY-th
                log.warning(
                    "snapshot of %s skipped: the snapshot writer is behind (%d skipped so far)",
                    event.window_id,
                    self.skipped,
                )

    def close(self, timeout_s: float = 30.0) -> None:
        """Finish the queued snapshots (up to `timeout_s`) and stop the thread."""
        try:
            self._queue.put(None, timeout=timeout_s)
        except queue.Full:
            return
        self._thread.join(timeout_s)

    def _work(self) -> None:
        while True:
            job = self._queue.get()
            if job is None:
                return
            try:
                self._save(job)
            except Exception:  # a report failure must not stop the monitor: logged, counted
                self.failed += 1
                log.exception("snapshot of %s failed", job.event.window_id)

    def _save(self, job: _Job) -> None:
        snapshot = build_snapshot(job.event, job.current, job.reference)
        self.reports_dir.mkdir(parents=True, exist_ok=True)
        stem = self.reports_dir / snapshot_name(job.event.window_id)
        snapshot.save_json(str(stem.with_suffix(".json")))
        if self.html:
            snapshot.save_html(str(stem.with_suffix(".html")))
        if self.workspace_dir is not None:
            workspace, project_id = self._project()
            workspace.add_run(project_id, snapshot)
        self.saved += 1
        log.info("snapshot of %s saved to %s", job.event.window_id, stem.with_suffix(".json"))

    def _project(self) -> tuple[Any, Any]:
        if self._workspace is None:
            from evidently.ui.workspace import Workspace

            assert self.workspace_dir is not None
            self._workspace = Workspace.create(str(self.workspace_dir))
            found = self._workspace.search_project(PROJECT_NAME)
            project = found[0] if found else self._workspace.create_project(PROJECT_NAME)
            self._project_id = project.id
        return self._workspace, self._project_id
