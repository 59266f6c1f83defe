"""The run report: one self-contained HTML page (works offline, no CDN) over event time.

It opens with the scorecard (`ridestream.run_scorecard`: the loop's served RMSE against never
retraining, each promotion on the rides it served, alert precision), then shows window RMSE
against the champion's reference, drifted share and prediction drift, alerts and model switches
marked, and prediction throughput. `build_report` is pure (events in, HTML out); `read_run` reads
the events of any run from its topics and scores its models through the registry.
"""

from __future__ import annotations

import html
import sys
from collections import Counter
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from itertools import pairwise
from pathlib import Path
from typing import Any

from kafka.errors import KafkaError

from ridestream.cli import CommandParser, add_kafka_options, with_kafka_options
from ridestream.events import (
    DriftDetected,
    DriftWindowClosed,
    DurationPredicted,
    ModelPromoted,
    ModelRejected,
    RideCompleted,
    RuleFired,
)
from ridestream.registry import ModelNotFoundError
from ridestream.run_scorecard import RunScorecard, Served
from ridestream.scorecard import MIN_SCORED_WINDOW_RIDES
from ridestream.settings import Settings
from ridestream.topics import Topics

PLOT_IDS = ("plot-rmse", "plot-drift", "plot-throughput")
MIN_PLOTTED_RIDES = 200


@dataclass
class RunEvents:
    """What a run left on its topics (deduplicated by key)."""

    windows: list[DriftWindowClosed] = field(default_factory=list)
    alerts: list[DriftDetected] = field(default_factory=list)
    promotions: list[ModelPromoted] = field(default_factory=list)
    rejections: list[ModelRejected] = field(default_factory=list)
    # Predictions per wall-clock second (from `produced_at`), for the throughput plot.
    predictions_per_second: dict[datetime, int] = field(default_factory=dict)
    counts: dict[str, int] = field(default_factory=dict)
    # The loop against never retraining, each promotion on its rides (`score_run`); None
    # when the models were not scored.
    scorecard: RunScorecard | None = None


@dataclass(frozen=True)
class Switch:
    """A model switch as the windows saw it: the first window predicted by the new version."""

    version: str
    previous_version: str | None
    window_start: datetime
    rmse_before: float | None
    rmse_after: float | None


def model_switches(run: RunEvents) -> list[Switch]:
    """Each promotion, placed at the first window its version predicted, with the mean window
    RMSE of the windows before it (older version only) and after it (new version only)."""
    windows = sorted(run.windows, key=lambda w: w.window_start)
    switches = []
    for promotion in sorted(run.promotions, key=lambda p: p.event_time):
        if promotion.previous_version is None:
            continue  # the first champion announced, not a switch
        first = next((w for w in windows if promotion.version in w.model_versions), None)
        if first is None:
            continue
        before = [
            w.quality.rmse
            for w in windows
            if w.window_start < first.window_start
            and w.quality.rmse is not None
            and promotion.version not in w.model_versions
        ]
        after = [
            w.quality.rmse
            for w in windows
            if w.window_start >= first.window_start
            and w.quality.rmse is not None
            and w.model_versions == [promotion.version]
        ]
        switches.append(
            Switch(
                version=promotion.version,
                previous_version=promotion.previous_version,
                window_start=first.window_start,
                rmse_before=_mean(before[-len(after) :] if after else before),
                rmse_after=_mean(after),
            )
        )
    return switches


def _mean(values: Sequence[float]) -> float | None:
    return sum(values) / len(values) if values else None


def build_report(run: RunEvents, title: str = "ridestream run") -> str:
    """The report page of a run: three plots and the tables, plotly.js inlined once."""
    import plotly.graph_objects as go
    from plotly.offline import get_plotlyjs

    # Windows of a few stray rides (years off their month) would only draw spikes.
    windows = sorted(
        (w for w in run.windows if w.rides >= MIN_PLOTTED_RIDES), key=lambda w: w.window_start
    )
    switches = model_switches(run)
    alert_starts = sorted({a.window_start for a in run.alerts})

    rmse = go.Figure()
    rmse.add_scatter(
        **window_series(windows, lambda w: w.quality.rmse), mode="lines+markers", name="window RMSE"
    )
    rmse.add_scatter(
        **window_series(windows, lambda w: w.quality.mae), mode="lines", name="window MAE"
    )
    drift = go.Figure()
    drift.add_scatter(
        **window_series(windows, lambda w: w.drifted_share),
        mode="lines+markers",
        name="drifted share",
    )
    drift.add_scatter(
        **window_series(
            windows, lambda w: w.prediction_drift.score if w.prediction_drift else None
        ),
        mode="lines",
        name="prediction drift score",
    )
    for figure in (rmse, drift):
        figure.update_xaxes(rangebreaks=time_gaps(windows))
        for start in alert_starts:
            figure.add_vline(x=start, line_color="crimson", line_dash="dot")
        for switch in switches:
            figure.add_vline(x=switch.window_start, line_color="seagreen", line_width=3)
            figure.add_annotation(
                x=switch.window_start,
                y=1,
                yref="paper",
                text=f"v{switch.version}",
                showarrow=False,
                font={"color": "seagreen"},
            )
    rmse.update_layout(title="Prediction quality per window (red: alert, green: model switch)")
    rmse.update_yaxes(title="minutes")
    drift.update_layout(title="Data drift per window")
    drift.update_yaxes(title="share / score")

    seconds = sorted(run.predictions_per_second)
    throughput = go.Figure()
    throughput.add_bar(x=seconds, y=[run.predictions_per_second[s] for s in seconds])
    throughput.update_layout(title="Predictions per second (wall clock)")
    throughput.update_yaxes(title="rides/s")

    plots = "\n".join(
        '<section class="plot">'
        + figure.to_html(full_html=False, include_plotlyjs=False, div_id=div)
        + "</section>"
        for figure, div in zip((rmse, drift, throughput), PLOT_IDS, strict=True)
    )
    switch_rows = [
        (
            s.version,
            s.previous_version or "",
            f"{s.window_start:%Y-%m-%d %H:%M}",
            _number(s.rmse_before),
            _number(s.rmse_after),
        )
        for s in switches
    ]
    alert_rows = [
        (alert.window_id, "; ".join(_rule_text(r) for r in alert.rules))
        for alert in sorted(run.alerts, key=lambda a: a.window_start)
    ]
    return _PAGE.format(
        title=html.escape(title),
        plotly=get_plotlyjs(),
        counts=html_table(["what", "count"], [(k, f"{v:,}") for k, v in run.counts.items()]),
        switches=html_table(
            ["model", "replaced", "first window", "mean RMSE before", "mean RMSE after"],
            switch_rows,
        ),
        scorecard=_scorecard_html(run.scorecard),
        alerts=html_table(["window", "rules"], alert_rows),
        plots=plots,
    )


def window_series(
    windows: Sequence[DriftWindowClosed], value: Callable[[DriftWindowClosed], float | None]
) -> dict[str, list[Any]]:
    """x/y of a per-window line, broken (a None) where the replay jumped over a stretch of time."""
    xs: list[Any] = []
    ys: list[Any] = []
    for previous, window in zip([None, *windows], windows, strict=False):
        if previous is not None and window.window_start > previous.event_time:
            xs.append(previous.event_time)
            ys.append(None)
        xs.append(window.window_start)
        ys.append(value(window))
    return {"x": xs, "y": ys}


def time_gaps(windows: Sequence[DriftWindowClosed]) -> list[dict[str, Any]]:
    """Plotly range breaks for the stretches of event time the replay skipped (over a week)."""
    return [
        {"bounds": [previous.event_time, window.window_start]}
        for previous, window in pairwise(windows)
        if window.window_start - previous.event_time > timedelta(days=7)
    ]


def _scorecard_html(card: RunScorecard | None) -> str:
    """The scorecard's tables: the loop against never retraining, promotions, retrainings."""
    if card is None:
        return "<p>not scored (read without the model registry)</p>"
    served = html_table(
        ["served by", "labelled rides", "RMSE", "MAE"],
        [
            ("the loop", f"{card.loop.count:,}", _number(card.loop.rmse), _number(card.loop.mae)),
            (
                f"never retrained (v{card.first_version})",
                f"{card.never_retrained.count:,}",
                _number(card.never_retrained.rmse),
                _number(card.never_retrained.mae),
            ),
        ],
    )
    promotions = html_table(
        ["model", "replaced", "serving from", "labelled rides", "RMSE", "RMSE replaced", "harmful"],
        [
            (
                f"v{p.version}",
                f"v{p.replaced_version}",
                f"{p.serving_from:%Y-%m-%d %H:%M}" if p.serving_from else "",
                f"{p.served.count:,}",
                _number(p.served.rmse),
                _number(p.replaced.rmse),
                "HARMFUL" if p.harmful else "",
            )
            for p in card.promotions
        ],
    )
    retrainings = html_table(
        ["trigger alert", "alerts answered", "model", "outcome"],
        [(r.trigger_alert_id, r.alerts, f"v{r.version}", r.result) for r in card.retrainings],
    )
    precision = _number(card.alert_precision)
    return (
        f"<p>On the labelled rides (1-60 min) of the {card.windows} windows of at least "
        f"{MIN_SCORED_WINDOW_RIDES} rides.</p>{served}"
        "<h3>Promotions, each on the rides it served</h3>" + promotions + "<h3>Retrainings</h3>"
        f"{retrainings}<p>alert precision: {precision or '-'} ({card.useful_alerts} of "
        f"{card.alerts} alerts led to a promotion that did not hurt)</p>"
    )


def _number(value: float | None) -> str:
    return "" if value is None else f"{value:.2f}"


def html_table(header: Sequence[str], rows: Sequence[Sequence[object]]) -> str:
    """An HTML table of `rows` under `header` (cells escaped); "none" for no rows."""
    if not rows:
        return "<p>none</p>"
    head = "".join(f"<th>{html.escape(str(h))}</th>" for h in header)
    body = "".join(
        "<tr>" + "".join(f"<td>{html.escape(str(cell))}</td>" for cell in row) + "</tr>"
        for row in rows
    )
    return f"<table><thead><tr>{head}</tr></thead><tbody>{body}</tbody></table>"


_PAGE = """<!DOCTYPE html>
<html lang="en"><head><meta charset="utf-8"><title>{title}</title>
<style>
body {{ font-family: system-ui, sans-serif; margin: 2rem; color: #222; }}
table {{ border-collapse: collapse; margin: 0.5rem 0 1.5rem; }}
td, th {{ border: 1px solid #ccc; padding: 0.25rem 0.6rem; text-align: left; }}
section.plot {{ margin: 1rem 0; }}
</style>
<script>{plotly}</script>
</head><body>
<h1>{title}</h1>
<h2>Counts</h2>{counts}
<h2>Scorecard: the loop against never retraining</h2>{scorecard}
<h2>Model switches</h2>{switches}
<h2>Alerts</h2>{alerts}
{plots}
</body></html>
"""


def read_run(
    settings: Settings, topics: Topics, *, score_models: bool = True, timeout_s: float = 60.0
) -> RunEvents:
    """Read a run's events from its topics; with `score_models`, also its scorecard, for
    which the models are loaded from the registry (`score_run`)."""
    from ridestream.stream.topic_reader import count_records, read_events, read_records
    from ridestream.topics import dead_letter_topic

    kafka = settings.kafka
    updates = topics.models_updates
    run = RunEvents(
        windows=read_events(kafka, topics.drift_windows, DriftWindowClosed, timeout_s=timeout_s),
        alerts=read_events(kafka, topics.drift_alerts, DriftDetected, timeout_s=timeout_s),
        promotions=read_events(kafka, updates, ModelPromoted, timeout_s=timeout_s),
        rejections=read_events(kafka, updates, ModelRejected, timeout_s=timeout_s),
    )
    per_second: Counter[datetime] = Counter()
    served: dict[str, Served] = {}  # the last prediction of each ride, as for events
    first: tuple[datetime, str] | None = None  # the earliest prediction: the first champion
    for record in read_records(kafka, topics.rides_predictions, timeout_s=timeout_s):
        prediction = DurationPredicted.model_validate_json(record.value)
        per_second[prediction.produced_at.replace(microsecond=0, tzinfo=None)] += 1
        served[prediction.ride_id] = (prediction.model_version, prediction.predicted_duration_min)
        if first is None or prediction.produced_at < first[0]:
            first = (prediction.produced_at, prediction.model_version)
    run.predictions_per_second = dict(per_second)
    run.counts = {
        "rides requested": count_records(kafka, topics.rides_requested),
        "rides completed": count_records(kafka, topics.rides_completed),
        "predictions": sum(per_second.values()),
        "windows": len(run.windows),
        "alerts": len(run.alerts),
        "promotions": sum(1 for p in run.promotions if p.previous_version is not None),
        "rejections": len(run.rejections),
        "dead letters": sum(count_records(kafka, dead_letter_topic(name)) for name in topics.all()),
    }
    if score_models and first is not None:
        completed = read_events(kafka, topics.rides_completed, RideCompleted, timeout_s=timeout_s)
        run.scorecard = score_run(settings, run, completed, served, first_version=first[1])
    return run


def score_run(
    settings: Settings,
    run: RunEvents,
    completed: Sequence[RideCompleted],
    served: dict[str, Served],
    first_version: str,
) -> RunScorecard:
    """The run's scorecard (`ridestream.run_scorecard`): the first champion and each replaced
    model, loaded from the registry, predict the scored rides; the retrained versions' tags
    tell how many alerts each retraining answered."""
    from ridestream.model import predict
    from ridestream.registry import ModelRegistry
    from ridestream.run_scorecard import build_scorecard, scored_rides, versions_to_predict

    registry = ModelRegistry(settings.mlflow)
    rides = scored_rides(completed, served, run.windows)
    needed = versions_to_predict(first_version, run.promotions)
    for version in needed:  # another run's store: ModelNotFoundError here, not MLflow's trace
        registry.version(version)
    predictions = {version: predict(registry.load_model(version), rides) for version in needed}
    events: list[ModelPromoted | ModelRejected] = [*run.promotions, *run.rejections]
    retrained = [e.version for e in events if e.trigger_alert_id]
    tags = {version: registry.version(version).tags for version in retrained}
    return build_scorecard(
        rides, first_version, predictions, run.promotions, run.rejections, len(run.alerts), tags
    )


def main(argv: Sequence[str] | None = None) -> int:
    """`ridestream report`: build the HTML report of a run from its topics."""
    parser = CommandParser(
        prog="ridestream report",
        description="Build a self-contained HTML report (the scorecard: served RMSE against "
        "never retraining, promotions, alert precision; window RMSE, drift, alerts, model "
        "switches, throughput) from the topics of a run. Reads the broker in "
        "RIDESTREAM_KAFKA__BOOTSTRAP_SERVERS and the models in the MLflow store of "
        "RIDESTREAM_MLFLOW__TRACKING_URI.",
    )
    add_kafka_options(parser)
    parser.add_argument("--out", type=Path, default=Path("reports/report.html"), help="output file")
    parser.add_argument("--title", default="ridestream run", help="page title")
    parser.add_argument(
        "--no-models",
        action="store_true",
        help="skip the scorecard (the loop against never retraining, each promotion on its "
        "rides), which loads the models from the MLflow store",
    )
    args = parser.parse_args(argv)
    settings = with_kafka_options(Settings(), args)
    topics = settings.topics
    try:
        run = read_run(settings, topics, score_models=not args.no_models)
    except KafkaError as error:  # broker unreachable and the like: one line, no trace
        print(f"ridestream report: cannot read the topics: {error}", file=sys.stderr)
        return 1
    except ModelNotFoundError as error:  # another run's MLflow store: say so, no trace
        print(f"ridestream report: {error} (--no-models skips the scorecard)", file=sys.stderr)
        return 1
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(build_report(run, args.title), encoding="utf-8")
    print(f"wrote {args.out} ({len(run.windows)} windows, {len(run.alerts)} alerts)")
    return 0


def _rule_text(rule: RuleFired) -> str:
    return f"{rule.rule} {rule.value:.3g} ≥ {rule.threshold:.3g}"
