"""The backtest's outputs: the scorecard table, a JSON document, and an HTML page with a plot.

The page inlines plotly.js as the run report does (`ridestream.report`, whose helpers draw the
per-window lines with the replay's gaps broken), so it works offline.
"""

from __future__ import annotations

import html
from collections.abc import Sequence
from typing import Any

from backtest.engine import PolicyResult
from ridestream.report import html_table, time_gaps, window_series
from ridestream.scorecard import is_scored_window

COLUMNS = (
    "policy",
    "RMSE",
    "MAE",
    "retrains",
    "promotions",
    "rejections",
    "harmful",
    "alerts",
    "alert precision",
    "seconds",
)


def _number(value: float | None, digits: int = 3) -> str:
    return "-" if value is None else f"{value:.{digits}f}"


def scorecard_rows(results: Sequence[PolicyResult]) -> list[tuple[str, ...]]:
    """One row of `COLUMNS` per policy, formatted."""
    return [
        (
            r.policy.name,
            _number(r.served.rmse),
            _number(r.served.mae),
            str(r.retrains),
            str(r.count("promoted")),
            str(r.count("rejected")),
            str(r.harmful),
            str(len(r.alerts)),
            _number(r.alert_precision, 2),
            f"{r.seconds:.1f}",
        )
        for r in results
    ]


def format_table(results: Sequence[PolicyResult]) -> str:
    """The scorecard as a plain-text table (one line a policy)."""
    rows = [COLUMNS, *scorecard_rows(results)]
    widths = [max(len(row[i]) for row in rows) for i in range(len(COLUMNS))]
    lines = [
        "  ".join(
            cell.ljust(w) if i == 0 else cell.rjust(w)
            for i, (cell, w) in enumerate(zip(row, widths, strict=True))
        )
        for row in rows
    ]
    return "\n".join(lines)


def to_json(results: Sequence[PolicyResult], run: dict[str, Any]) -> dict[str, Any]:
    """The whole backtest as plain data: the run's arguments, and per policy its scorecard,
    every window, retraining and swap."""
    return {
        "run": run,
        "policies": [
            {
                "policy": r.policy.name,
                "served_rmse": r.served.rmse,
                "served_mae": r.served.mae,
                "scored_rides": r.served.count,
                "retrains": r.retrains,
                "promotions": r.count("promoted"),
                "rejections": r.count("rejected"),
                "skipped": r.count("skipped"),
                "harmful_promotions": r.harmful,
                "alerts": len(r.alerts),
                "alert_precision": r.alert_precision,
                "seconds": r.seconds,
                "windows": [
                    {
                        "window_id": w.window_id,
                        "start": w.window_start.isoformat(),
                        "rides": w.rides,
                        "labelled": w.quality.count,
                        "rmse": w.quality.rmse,
                        "mae": w.quality.mae,
                        "drifted_share": w.drifted_share,
                        "reference_version": w.reference_version,
                        "served_version": version,
                    }
                    for w, version in zip(r.windows, r.served_versions, strict=True)
                ],
                "alert_windows": [a.window_id for a in r.alerts],
                "retrainings": [
                    {
                        "at": x.at.isoformat(),
                        "status": x.status,
                        "reason": x.reason,
                        "alert_ids": list(x.alert_ids),
                        "version": x.version,
                        "data_range": x.data_range,
                        "rows": x.rows,
                        "seconds": x.seconds,
                    }
                    for x in r.retrainings
                ],
                "swaps": [
                    {
                        "at": s.at.isoformat(),
                        "version": s.version,
                        "replaced": s.replaced,
                        "rides": s.served.count,
                        "rmse": s.served.rmse,
                        "replaced_rmse": s.replaced_served.rmse,
                        "harmful": s.harmful,
                    }
                    for s in r.swaps
                ],
            }
            for r in results
        ],
    }


PLOT_ID = "plot-backtest-rmse"


def build_page(results: Sequence[PolicyResult], title: str) -> str:
    """The HTML page: the scorecard table and window RMSE per policy, alerts (dotted) and
    swaps (solid) marked in each policy's colour."""
    import plotly.graph_objects as go
    from plotly.colors import qualitative
    from plotly.offline import get_plotlyjs

    figure = go.Figure()
    all_windows = []
    for index, result in enumerate(results):
        colour = qualitative.Plotly[index % len(qualitative.Plotly)]
        windows = [w for w in result.windows if is_scored_window(w.rides)]
        all_windows.extend(windows)
        figure.add_scatter(
            **window_series(windows, lambda w: w.quality.rmse),
            mode="lines",
            name=result.policy.name,
            line={"color": colour},
        )
        alerted = {a.window_id for a in result.alerts}
        marked = [w for w in windows if w.window_id in alerted]
        if marked:
            figure.add_scatter(
                x=[w.window_start for w in marked],
                y=[w.quality.rmse for w in marked],
                mode="markers",
                marker={"symbol": "triangle-up", "size": 10, "color": colour},
                name=f"{result.policy.name}: alert",
            )
        if result.swaps:
            by_end = {w.event_time: w for w in result.windows}
            figure.add_scatter(
                x=[s.at for s in result.swaps],
                y=[by_end[s.at].quality.rmse if s.at in by_end else None for s in result.swaps],
                mode="markers",
                marker={"symbol": "circle-open", "size": 11, "color": colour, "line": {"width": 2}},
                name=f"{result.policy.name}: model swap",
            )
    all_windows.sort(key=lambda w: w.window_start)
    figure.update_xaxes(rangebreaks=time_gaps(all_windows))
    figure.update_layout(
        title="Served RMSE per window (triangles: alerts, circles: swaps at the window end)"
    )
    figure.update_yaxes(title="minutes")
    plot = figure.to_html(full_html=False, include_plotlyjs=False, div_id=PLOT_ID)
    return _PAGE.format(
        title=html.escape(title),
        plotly=get_plotlyjs(),
        table=html_table(COLUMNS, scorecard_rows(results)),
        plot=plot,
    )


_PAGE = """<!DOCTYPE html>
<html lang="en"><head><meta charset="utf-8"><title>{title}</title>
<style>
body {{ font-family: system-ui, sans-serif; margin: 2rem; color: #222; }}
table {{ border-collapse: collapse; margin: 0.5rem 0 1.5rem; }}
td, th {{ border: 1px solid #ccc; padding: 0.25rem 0.6rem; text-align: left; }}
</style>
<script>{plotly}</script>
</head><body>
<h1>{title}</h1>
<h2>Scorecard</h2>{table}
<p>Served RMSE and MAE (minutes) over the labelled rides (1-60 min) of windows of at least 200
rides. Harmful: promotions that served more than 1 % worse than the model they replaced, on the
same rides. Alert precision: the share of alerts whose retraining promoted a model that was not
harmful.</p>
<section class="plot">{plot}</section>
</body></html>
"""
