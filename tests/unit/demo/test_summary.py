"""The demo's end summary: sections in order, each after a blank line, and open to one more."""

from __future__ import annotations

from datetime import UTC, datetime

from ridestream.demo.summary import SECTIONS, live_gate_lines, scorecard_lines, summary_lines
from ridestream.events import LiveEvidence, ModelPromoted, ModelRejected
from ridestream.report import RunEvents
from ridestream.run_scorecard import PromotionScore, RetrainingScore, RunScorecard
from ridestream.scorecard import ServedError


def test_a_run_without_switches_or_windows_says_none_under_each_heading() -> None:
    run = RunEvents(counts={"rides requested": 1_200, "predictions": 1_200})

    lines = summary_lines(run)

    assert lines[:6] == [
        "",
        "summary",
        "-------",
        "rides requested       1,200",
        "predictions           1,200",
        "",
    ]
    assert lines[6:9] == ["model switches (RMSE in minutes)", "  none", ""]
    assert lines[9] == "windows" and lines[11] == ""
    assert lines[12:15] == [
        "live gate (challengers judged on the rides after their training data)",
        "  none",
        "",
    ]
    assert lines[15:] == ["scorecard", "  not scored (read without the model registry)"]


def test_an_added_section_prints_last_after_a_blank_line() -> None:
    run = RunEvents(counts={"predictions": 5})

    lines = summary_lines(run, (*SECTIONS, lambda run: ["scorecard", "  loop beats never"]))

    assert lines[-3:] == ["", "scorecard", "  loop beats never"]
    assert lines[:-3] == summary_lines(run)


def test_scorecard_lines_put_the_loop_beside_never_retrained_and_flag_harmful_promotions() -> None:
    card = RunScorecard(
        first_version="1",
        windows=90,
        loop=ServedError(count=100, squared_sum=2_500.0, absolute_sum=350.0),
        never_retrained=ServedError(count=100, squared_sum=3_600.0, absolute_sum=420.0),
        promotions=[
            PromotionScore(
                version="4",
                replaced_version="1",
                reason="drift",
                serving_from=datetime(2022, 5, 8, 7, 30),
                served=ServedError(count=40, squared_sum=1_000.0, absolute_sum=150.0),
                replaced=ServedError(count=40, squared_sum=810.0, absolute_sum=140.0),
            )
        ],
        retrainings=[
            RetrainingScore("1d:2022-05-07T00:00:alert", "4", 2, promoted=True, harmful=True),
            RetrainingScore("1d:2022-05-09T00:00:alert", "5", 1, promoted=False, harmful=False),
        ],
        alerts=4,
    )

    assert scorecard_lines(RunEvents(scorecard=card)) == [
        "scorecard (RMSE / MAE in minutes on the 100 labelled rides of the 90 windows of at "
        "least 200 rides)",
        "  the loop (served)        5.00 / 3.50",
        "  never retrained (v1)     6.00 / 4.20",
        "  promotions, each on the rides it served, against the model it replaced",
        "    v4 from 2022-05-08 07:30: 40 rides, RMSE 5.00 vs v1 4.50  HARMFUL",
        "  retrainings for the 4 alerts",
        "    1d:2022-05-07T00:00:alert (2 alerts): v4 promoted, HARMFUL",
        "    1d:2022-05-09T00:00:alert (1 alert): v5 rejected",
        "  alert precision 0.00: 0 of 4 alerts led to a promotion that did not hurt",
    ]


def test_live_gate_lines_show_each_decision_with_its_evidence_in_time_order() -> None:
    evidence = LiveEvidence(
        rides=2_481,
        blocks=24,
        first_pickup=datetime(2022, 5, 6, 14),
        last_pickup=datetime(2022, 5, 7, 14),
        champion_rmse=6.46,
        challenger_rmse=5.44,
        margin=0.02,
        alpha=0.05,
        theta=9.1,
        ci_low=2.3,
        ci_high=15.9,
        z=4.2,
        p_value=0.004,
    )
    promoted = ModelPromoted(
        promotion_id="ride-duration:3",
        event_time=datetime(2026, 11, 28, 12, 1, tzinfo=UTC),
        model_name="ride-duration",
        version="3",
        previous_version="1",
        reason="drift",
        gate=evidence,
    )
    rejected = ModelRejected(
        rejection_id="ride-duration:2",
        event_time=datetime(2026, 11, 28, 12, 0, tzinfo=UTC),
        model_name="ride-duration",
        version="2",
        champion_version="1",
        reason="futility",
        gate=evidence.model_copy(update={"theta": -3.0, "ci_low": -5.0, "ci_high": -1.0}),
    )
    offline = ModelRejected(
        rejection_id="ride-duration:4",
        event_time=datetime(2026, 11, 28, 12, 2, tzinfo=UTC),
        model_name="ride-duration",
        version="4",
        champion_version="3",
        reason="offline",
    )

    lines = live_gate_lines(RunEvents(promotions=[promoted], rejections=[rejected, offline]))

    assert lines[1].startswith("  v2 futility: 2,481 rides in 24 hours (2022-05-06 14:00..")
    assert "theta -3.00 in [-5.00, -1.00]" in lines[1]
    assert lines[2] == (
        "  v3 promoted: 2,481 rides in 24 hours (2022-05-06 14:00..2022-05-07 14:00), RMSE "
        "5.44 vs champion 6.46; theta +9.10 in [+2.30, +15.90], p 0.004"
    )
    assert len(lines) == 3  # the offline rejection had no live evidence
