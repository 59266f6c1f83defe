"""Evidently snapshots beside the loop: saved as JSON/HTML, skipped (and counted) when behind."""

from __future__ import annotations

import json
from datetime import datetime, timedelta

import numpy as np
import pandas as pd

from monitor.drift import prepare_reference
from monitor.snapshots import SnapshotWriter, snapshot_name
from ridestream.events import DriftWindowClosed, WindowQuality
from ridestream.features import PREDICTION, TARGET


def rides(n: int, seed: int) -> pd.DataFrame:
    rng = np.random.default_rng(seed)
    distance = rng.exponential(3, n)
    return pd.DataFrame(
        {
            "trip_distance": distance,
            "PULocationID": rng.choice(["7", "74", "75"], n),
            "DOLocationID": rng.choice(["7", "42"], n),
            PREDICTION: 4 + 3 * distance,
            TARGET: 4 + 3 * distance,
        }
    )


def window(day: int) -> DriftWindowClosed:
    start = datetime(2021, 1, 4) + timedelta(days=day)
    return DriftWindowClosed(
        window_id=f"1d:{start:%Y-%m-%dT%H:%M}",
        window_start=start,
        event_time=start + timedelta(days=1),
        reference_version="1",
        model_versions=["1"],
        rides=50,
        labelled=50,
        late=0,
        expired=0,
        columns=[],
        drifted_share=0.0,
        prediction_drift=None,
        quality=WindowQuality(count=50, rmse=1.0, mae=1.0, mean_error=0.0),
    )


def test_snapshot_names_are_file_safe():
    assert snapshot_name("1d:2021-01-05T00:00") == "1d_2021-01-05T00-00"
    assert snapshot_name("5000r:00000012") == "5000r_00000012"


def test_writer_saves_json_and_html_and_skips_what_it_cannot_keep_up_with(tmp_path):
    reference = prepare_reference(rides(300, 0), "1", 1.0)
    writer = SnapshotWriter(tmp_path, html=True, queue_size=1)
    for day in range(6):  # faster than a report is built: most must be skipped, none block
        writer.submit(window(day), rides(50, day + 1), reference)
    writer.close()
    saved = sorted(p.name for p in tmp_path.glob("*.json"))
    assert writer.saved == len(saved) >= 1
    assert writer.saved + writer.skipped == 6 and writer.skipped >= 1
    assert writer.failed == 0
    assert len(list(tmp_path.glob("*.html"))) == writer.saved
    snapshot = json.loads((tmp_path / saved[0]).read_text())
    assert any("ValueDrift" in m["metric_name"] for m in snapshot["metrics"])
