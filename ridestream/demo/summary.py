"""The summary the demo prints at the end, built from a run's events.

Each section is a pure function of the run returning its lines, so a new section (a
scorecard, say) is one more function and one more entry in `SECTIONS`.
"""

from __future__ import annotations

from collections.abc import Callable

from ridestream.events import ModelPromoted, ModelRejected
from ridestream.report import RunEvents, model_switches
from ridestream.scorecard import MIN_SCORED_WINDOW_RIDES

Section = Callable[[RunEvents], list[str]]


def count_lines(run: RunEvents) -> list[str]:
    """How many events of each kind the run produced."""
    width = max(len(name) for name in run.counts)
    return [f"{name:<{width}}  {count:>10,}" for name, count in run.counts.items()]


def switch_lines(run: RunEvents) -> list[str]:
    """Each model switch: the mean window RMSE before and after (different weeks; the
    scorecard compares each promotion with the replaced model on the same rides)."""
    lines = ["model switches (RMSE in minutes)"]
    switches = model_switches(run)
    for switch in switches:
        before = f"{switch.rmse_before:.2f}" if switch.rmse_before is not None else "-"
        after = f"{switch.rmse_after:.2f}" if switch.rmse_after is not None else "-"
        lines.append(
            f"  v{switch.previous_version} -> v{switch.version} at {switch.window_start:%Y-%m-%d}: "
            f"mean window RMSE before {before}, after {after}"
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


def scorecard_lines(run: RunEvents) -> list[str]:
    """The loop's served RMSE / MAE against never retraining on the same rides, each promotion
    on the rides it served (harmful ones flagged), each retraining and the alert precision."""
    card = run.scorecard
    if card is None:
        return ["scorecard", "  not scored (read without the model registry)"]
    loop, never = card.loop, card.never_retrained
    lines = [
        f"scorecard (RMSE / MAE in minutes on the {loop.count:,} labelled rides of the "
        f"{card.windows} windows of at least {MIN_SCORED_WINDOW_RIDES} rides)",
        f"  {'the loop (served)':<24} {_number(loop.rmse)} / {_number(loop.mae)}",
        f"  {f'never retrained (v{card.first_version})':<24} "
        f"{_number(never.rmse)} / {_number(never.mae)}",
        "  promotions, each on the rides it served, against the model it replaced",
    ]
    for p in card.promotions:
        serving_from = f"{p.serving_from:%Y-%m-%d %H:%M}" if p.serving_from else "-"
        lines.append(
            f"    v{p.version} from {serving_from}: {p.served.count:,} rides, RMSE "
            f"{_number(p.served.rmse)} vs v{p.replaced_version} {_number(p.replaced.rmse)}"
            + ("  HARMFUL" if p.harmful else "")
        )
    if not card.promotions:
        lines.append("    none")
    lines.append(f"  retrainings for the {card.alerts} alerts")
    for r in card.retrainings:
        answered = f"{r.alerts} alert{'s' if r.alerts != 1 else ''}"
        lines.append(f"    {r.trigger_alert_id} ({answered}): v{r.version} {r.result}")
    if not card.retrainings:
        lines.append("    none")
    lines.append(
        f"  alert precision {_number(card.alert_precision)}: {card.useful_alerts} of "
        f"{card.alerts} alerts led to a promotion that did not hurt"
    )
    return lines


def live_gate_lines(run: RunEvents) -> list[str]:
    """Each live-gate decision with its evidence (issue 15): the rides after the challenger's
    cut-off both models predicted, their RMSEs, and the test that decided."""
    updates: list[ModelPromoted | ModelRejected] = [*run.promotions, *run.rejections]
    decided = sorted(
        (u for u in updates if u.gate is not None), key=lambda update: update.event_time
    )
    lines = ["live gate (challengers judged on the rides after their training data)"]
    for update in decided:
        gate = update.gate
        assert gate is not None
        verdict = "promoted" if isinstance(update, ModelPromoted) else update.reason
        lines.append(
            f"  v{update.version} {verdict}: {gate.rides:,} rides in {gate.blocks} hours "
            f"({gate.first_pickup:%Y-%m-%d %H:%M}..{gate.last_pickup:%Y-%m-%d %H:%M}), RMSE "
            f"{gate.challenger_rmse:.2f} vs champion {gate.champion_rmse:.2f}; theta "
            f"{gate.theta:+.2f} in [{gate.ci_low:+.2f}, {gate.ci_high:+.2f}], p {gate.p_value:.2g}"
        )
    if not decided:
        lines.append("  none")
    return lines


def _number(value: float | None) -> str:
    return "-" if value is None else f"{value:.2f}"


# In print order, separated by a blank line.
SECTIONS: tuple[Section, ...] = (
    count_lines,
    switch_lines,
    window_lines,
    live_gate_lines,
    scorecard_lines,
)


def summary_lines(run: RunEvents, sections: tuple[Section, ...] = SECTIONS) -> list[str]:
    """The end-of-demo summary: a heading, then each section after a blank line."""
    lines = ["", "summary", "-------"]
    for number, section in enumerate(sections):
        lines += ([""] if number else []) + section(run)
    return lines
