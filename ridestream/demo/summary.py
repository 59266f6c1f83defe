"""The summary the demo prints at the end, built from a run's events.

Each section is a pure function of the run returning its lines, so a new section (a
scorecard, say) is one more function and one more entry in `SECTIONS`.
"""

from __future__ import annotations

from collections.abc import Callable

from ridestream.report import RunEvents, model_switches

Section = Callable[[RunEvents], list[str]]


def count_lines(run: RunEvents) -> list[str]:
    """How many events of each kind the run produced."""
    width = max(len(name) for name in run.counts)
    return [f"{name:<{width}}  {count:>10,}" for name, count in run.counts.items()]


def switch_lines(run: RunEvents) -> list[str]:
    """Each model switch: the mean window RMSE before and after, and the paired score."""
    lines = ["model switches (RMSE in minutes)"]
    scores = {(x.previous_version, x.version): x for x in run.switch_scores}
    switches = model_switches(run)
    for switch in switches:
        before = f"{switch.rmse_before:.2f}" if switch.rmse_before is not None else "-"
        after = f"{switch.rmse_after:.2f}" if switch.rmse_after is not None else "-"
        lines.append(
            f"  v{switch.previous_version} -> v{switch.version} at {switch.window_start:%Y-%m-%d}: "
            f"mean window RMSE before {before}, after {after}"
        )
        fair = scores.get((switch.previous_version or "", switch.version))
        if fair is not None:
            lines.append(
                f"    on the {fair.rides:,} labelled rides v{fair.version} predicted: "
                f"v{fair.previous_version} {fair.rmse_previous:.2f} -> v{fair.version} "
                f"{fair.rmse_new:.2f}"
            )
    if not switches:
        lines.append("  none")
    return lines


def window_lines(run: RunEvents) -> list[str]:
    """Every monitor window: its model(s), rides, RMSE, drifted share and whether it alerted."""
    alerted = {alert.window_id for alert in run.alerts}
    lines = [
        "windows",
        f"  {'window':<19} {'model':>6} {'rides':>7} {'RMSE':>6} {'drifted':>8}  alert",
    ]
    for window in sorted(run.windows, key=lambda w: w.window_start):
        rmse = f"{window.quality.rmse:.2f}" if window.quality.rmse is not None else "-"
        share = f"{window.drifted_share:.2f}" if window.drifted_share is not None else "-"
        alert = "yes" if window.window_id in alerted else ""
        lines.append(
            f"  {window.window_start:%Y-%m-%d %H:%M}  {','.join(window.model_versions):>6} "
            f"{window.rides:>7} {rmse:>6} {share:>8}  {alert}"
        )
    return lines


# In print order, separated by a blank line.
SECTIONS: tuple[Section, ...] = (count_lines, switch_lines, window_lines)


def summary_lines(run: RunEvents, sections: tuple[Section, ...] = SECTIONS) -> list[str]:
    """The end-of-demo summary: a heading, then each section after a blank line."""
    lines = ["", "summary", "-------"]
    for number, section in enumerate(sections):
        lines += ([""] if number else []) + section(run)
    return lines
