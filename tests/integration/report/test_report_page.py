"""The report page renders in a real headless Chromium with every plot drawn."""

from __future__ import annotations

import shutil
import subprocess
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest

from ridestream.events import (
    ColumnDrift,
    DriftDetected,
    DriftWindowClosed,
    ModelPromoted,
    RuleFired,
    WindowQuality,
)
from ridestream.report import PLOT_IDS, RunEvents, build_report, model_switches
from ridestream.run_scorecard import PromotionScore, RetrainingScore, RunScorecard
from ridestream.scorecard import ServedError
from tests.synthetic import day_window

CHROMIUM_FLAGS = [
    "--headless",
    "--no-sandbox",
    "--disable-gpu",
    "--disable-quic",
    "--no-first-run",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
    "--virtual-time-budget=5000",
]


def window(day: int, version: str, rmse: float, share: float) -> DriftWindowClosed:
    drift = ColumnDrift(
        column="trip_distance",
        column_type="numerical",
        method="Wasserstein distance (normed)",
        score=share / 2,
        threshold=0.1,
        drifted=share >= 0.5,
    )
    return day_window(datetime(2021, 2, 1) + timedelta(days=day), 2000, version).model_copy(
        update={
            "labelled": 1900,
            "expired": 3,
            "columns": [drift],
            "drifted_share": share,
            "quality": WindowQuality(count=1900, rmse=rmse, mae=rmse * 0.7, mean_error=0.1),
        }
    )


def sample_run() -> RunEvents:
    windows = [window(d, "1", 5.4, 0.0) for d in range(4)]
    windows += [window(d, "1", 8.0, 0.67) for d in range(4, 6)]
    windows += [window(d, "2", 5.9, 0.33) for d in range(6, 10)]
    alert = DriftDetected(
        alert_id=f"{windows[4].window_id}:alert",
        event_time=windows[4].event_time,
        window_id=windows[4].window_id,
        window_start=windows[4].window_start,
        model_version="1",
        rules=[RuleFired(rule="quality", value=8.0, threshold=6.5)],
    )
    promotion = ModelPromoted(
        promotion_id="ride-duration:2",
        event_time=datetime(2026, 11, 26, tzinfo=UTC),
        model_name="ride-duration",
        version="2",
        previous_version="1",
        reason="drift",
        trigger_alert_id=alert.alert_id,
    )
    second = datetime(2026, 11, 26, 10, 0, 0)
    return RunEvents(
        windows=windows,
        alerts=[alert],
        promotions=[promotion],
        predictions_per_second={second + timedelta(seconds=s): 30_000 for s in range(5)},
        counts={"predictions": 150_000, "windows": len(windows)},
        scorecard=RunScorecard(
            first_version="1",
            windows=len(windows),
            loop=ServedError(count=19_000, squared_sum=19_000 * 36.0, absolute_sum=19_000 * 4.0),
            never_retrained=ServedError(count=19_000, squared_sum=19_000 * 49.0),
            promotions=[
                PromotionScore(
                    version="2",
                    replaced_version="1",
                    reason="drift",
                    serving_from=windows[6].window_start,
                    served=ServedError(count=7_600, squared_sum=7_600 * 25.0),
                    replaced=ServedError(count=7_600, squared_sum=7_600 * 36.0),
                )
            ],
            retrainings=[RetrainingScore(alert.alert_id, "2", 1, promoted=True, harmful=False)],
            alerts=1,
        ),
    )


def test_switch_rmse_compares_the_windows_around_the_first_window_of_the_new_model() -> None:
    (switch,) = model_switches(sample_run())
    assert switch.version == "2" and switch.previous_version == "1"
    assert switch.window_start == datetime(2021, 2, 7)
    assert switch.rmse_after == pytest.approx(5.9)
    # The last four windows of the old model: 5.4, 5.4, 8.0, 8.0.
    assert switch.rmse_before == pytest.approx(6.7)


def test_report_page_is_self_contained_and_every_plot_renders_in_chromium(tmp_path: Path) -> None:
    chromium = shutil.which("chromium") or shutil.which("chromium-browser")
    assert chromium, "chromium is missing: `make install` installs Debian's chromium package"
    page = tmp_path / "report.html"
    page.write_text(build_report(sample_run(), "test run"), encoding="utf-8")
    text = page.read_text()
    # Works offline: no script or stylesheet is fetched from anywhere.
    assert "<script src=" not in text and "<link " not in text

    profile = ["--user-data-dir=" + str(tmp_path / "profile")]
    dom = subprocess.run(
        [chromium, *CHROMIUM_FLAGS, *profile, "--dump-dom", page.as_uri()],
        capture_output=True,
        text=True,
        timeout=120,
    ).stdout
    for plot_id in PLOT_IDS:
        start = dom.index(f'id="{plot_id}"')
        # plotly draws each plot into an <svg class="main-svg"> inside its div.
        assert 'class="main-svg"' in dom[start : start + 5_000], f"{plot_id} was not drawn"
    assert ">v2<" in dom or "v2</text>" in dom  # the switch annotation was drawn
    # The scorecard: the loop beside never retraining, and the alert precision.
    assert "<td>the loop</td><td>19,000</td><td>6.00</td>" in dom
    assert "<td>never retrained (v1)</td><td>19,000</td><td>7.00</td>" in dom
    assert "alert precision: 1.00 (1 of 1 alerts" in dom

    screenshot = tmp_path / "report.png"
    subprocess.run(
        [
            chromium,
            *CHROMIUM_FLAGS,
            *profile,
            f"--screenshot={screenshot}",
            "--window-size=1200,2400",
            page.as_uri(),
        ],
        capture_output=True,
        timeout=120,
    )
    assert screenshot.exists() and screenshot.stat().st_size > 20_000
