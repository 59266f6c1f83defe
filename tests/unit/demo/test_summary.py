"""The demo's end summary: sections in order, each after a blank line, and open to one more."""

from __future__ import annotations

from ridestream.demo.summary import SECTIONS, summary_lines
from ridestream.report import RunEvents


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
    assert lines[9] == "windows" and len(lines) == 11


def test_an_added_section_prints_last_after_a_blank_line() -> None:
    run = RunEvents(counts={"predictions": 5})

    lines = summary_lines(run, (*SECTIONS, lambda run: ["scorecard", "  loop beats never"]))

    assert lines[-3:] == ["", "scorecard", "  loop beats never"]
    assert lines[:-3] == summary_lines(run)
