"""The training job: buffer snapshot → split → train → evaluate → register → decide → events.

`retrain` runs on the retrainer's worker thread (the poll loop keeps polling beside it) with a
snapshot of the buffer, so nothing else touches its data. The steps and why in this order:

1. Split the labelled rides by pickup time: the oldest part trains, the newest part
   (`holdout_fraction`) is held out. Both models are scored on the SAME held-out rides.
2. Load the champion through the registry and score it on the held-out rides.
3. Train and register the challenger with the pipeline of `ridestream train`
   (`training.train_and_register`, promote=False), tagged with its lineage: the trigger
   alert, the data range, the row counts, the parent version and the champion's RMSE.
4. Decide offline (`retrainer.decision.decide`: RMSE ≤ champion × (1 − margin)).
5. Rejected: tag it and publish `ModelRejected`. Passed, with the `offline` gate (or no
   champion to compare with live): move `champion` (the single commit point) and then
   publish `ModelPromoted` (`retrainer.promotion.promote_and_announce`). Passed, with the
   `shadow` or `canary` gate: nothing is published here; the outcome ("challenger") carries
   both models and the evaluation start to the poll thread, which starts the live evaluation
   (`retrainer.scheduler`). A process killed before step 5 leaves the champion as it was.

Every registry call is retried with bounded backoff (`options.registry_backoff`,
`ridestream.registry_retry`) while the MLflow store does not answer; when the budget is spent,
`RegistryUnavailableError` ends the run (and the service, non-zero) with the alert uncommitted.
"""

from __future__ import annotations

import logging
import math
import time
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any, Literal

import pandas as pd

from retrainer.decision import Decision, decide
from retrainer.promotion import (
    TAG_DECISION,
    TAG_TRIGGER_ALERT,
    Publish,
    promote_and_announce,
    rejected_event,
)
from retrainer.settings import RetrainerOptions
from ridestream.events import Event
from ridestream.features import DROPOFF_TIME, PICKUP_TIME
from ridestream.model import evaluate, labelled
from ridestream.registry import ModelRegistry
from ridestream.settings import MlflowSettings
from ridestream.training import train_and_register

log = logging.getLogger(__name__)

# Alert ids listed in a version tag; a storm of alerts is summarised by its count.
MAX_ALERT_IDS_IN_TAG = 10

Status = Literal["promoted", "rejected", "skipped", "challenger"]


@dataclass
class RetrainOutcome:
    """What one run did: promoted, rejected, skipped, or a challenger for the live gate (with
    both models, its metrics and its evaluation start), the versions, the step timings."""

    status: Status
    reason: str
    alert_ids: list[str]
    version: str | None = None
    champion_version: str | None = None
    decision: Decision | None = None
    event: Event | None = None
    rows: int = 0
    timings_s: dict[str, float] = field(default_factory=dict)
    metrics: dict[str, float] = field(default_factory=dict)
    evaluation_start: datetime | None = None
    champion_model: Any = None
    challenger_model: Any = None


def split_by_time(
    rides: pd.DataFrame, holdout_fraction: float
) -> tuple[pd.DataFrame, pd.DataFrame]:
    """Sort by pickup time; the newest `holdout_fraction` of the rows is held out."""
    if not 0 < holdout_fraction < 1:
        raise ValueError(f"holdout_fraction must be in (0, 1), got {holdout_fraction}")
    ordered = rides.sort_values(PICKUP_TIME, kind="stable")
    train_rows = len(ordered) - math.ceil(len(ordered) * holdout_fraction)
    return ordered.iloc[:train_rows], ordered.iloc[train_rows:]


def training_split(
    rides: pd.DataFrame, options: RetrainerOptions
) -> tuple[pd.DataFrame, pd.DataFrame, pd.DataFrame] | str:
    """The labelled rides of a buffer snapshot, and their train and held-out parts
    (`split_by_time`); or, with fewer than `min_labelled_rides`, why it cannot train.

    The pure first step of `retrain`; the backtest (`backtest.engine`) calls it too, then
    scores the champion and the challenger on the held-out part and asks `decide`."""
    rides = labelled(rides)
    if len(rides) < options.min_labelled_rides:
        return (
            f"{len(rides):,} labelled rides in the buffer, fewer than the "
            f"{options.min_labelled_rides:,} needed to train"
        )
    train, holdout = split_by_time(rides, options.holdout_fraction)
    return rides, train, holdout


def evaluation_start(rides: pd.DataFrame) -> datetime:
    """The training data's cut-off in event time, where a live evaluation starts: the newest
    drop-off (the newest pickup for rides without one). Only rides picked up after it are
    unseen by a challenger trained on `rides`."""
    column = DROPOFF_TIME if DROPOFF_TIME in rides else PICKUP_TIME
    return pd.Timestamp(rides[column].max()).to_pydatetime()


def pickup_range(rides: pd.DataFrame) -> str:
    """`first..last` pickup time of a rides frame (minutes), empty for no rides."""
    if rides.empty:
        return ""
    pickup = pd.to_datetime(rides[PICKUP_TIME])
    return f"{pickup.min():%Y-%m-%dT%H:%M}..{pickup.max():%Y-%m-%dT%H:%M}"


def _alert_ids_tag(alert_ids: Sequence[str]) -> str:
    shown = ",".join(alert_ids[-MAX_ALERT_IDS_IN_TAG:])
    hidden = len(alert_ids) - MAX_ALERT_IDS_IN_TAG
    return f"{shown} (+{hidden} earlier)" if hidden > 0 else shown


@contextmanager
def _timed(timings: dict[str, float], name: str) -> Iterator[None]:
    """Set `timings[name]` to the seconds the block took."""
    started = time.perf_counter()
    try:
        yield
    finally:
        timings[name] = time.perf_counter() - started


def retrain(
    mlflow: MlflowSettings,
    options: RetrainerOptions,
    rides: pd.DataFrame,
    alert_ids: Sequence[str],
    publish: Publish,
) -> RetrainOutcome:
    """Train a challenger on `rides` for the drift alerts `alert_ids` (newest last), and
    promote it or reject it (see the module docstring). Too few labelled rides → skipped."""
    timings: dict[str, float] = {}
    alerts = list(alert_ids)
    trigger = alerts[-1] if alerts else None
    with _timed(timings, "split"):
        prepared = training_split(rides, options)
    if isinstance(prepared, str):
        log.warning("retraining skipped for alert %s: %s", trigger, prepared)
        return RetrainOutcome("skipped", prepared, alerts, rows=len(labelled(rides)))
    rides, train, holdout = prepared

    registry = ModelRegistry(mlflow)
    backoff = options.registry_backoff
    with _timed(timings, "load_champion"):
        champion = backoff.call("read the champion", registry.champion)
        champion_model = (
            backoff.call(
                f"load champion {champion.version}", lambda: registry.load_model(champion.version)
            )
            if champion is not None
            else None
        )
    with _timed(timings, "evaluate_champion"):
        champion_rmse = (
            evaluate(champion_model, holdout)["rmse"] if champion_model is not None else None
        )

    tags = {
        "trigger": "drift",
        TAG_TRIGGER_ALERT: trigger or "",
        "trigger_alert_ids": _alert_ids_tag(alerts),
        "data_range": pickup_range(rides),
        "rows": str(len(rides)),
        "train_rows": str(len(train)),
        "holdout_rows": str(len(holdout)),
        "parent_version": champion.version if champion is not None else "",
        "champion_rmse": "" if champion_rmse is None else f"{champion_rmse:.6f}",
        "margin": str(options.margin),
    }
    log.info(
        "training a challenger for alert %s on %d rides (%s), holding out %d; champion %s",
        trigger,
        len(train),
        tags["data_range"],
        len(holdout),
        f"{champion.version} RMSE {champion_rmse:.4f}" if champion and champion_rmse else "none",
    )
    timings["train"] = 0.0  # the training part of "register", set below
    with _timed(timings, "register"):
        # Retried as a whole: a run cut off half-way leaves at most an orphan version (no
        # alias, no decision tag), never a promotion.
        trained = backoff.call(
            "train and register the challenger",
            lambda: train_and_register(
                mlflow, train, holdout, options.model_kind, tags, promote=False
            ),
        )
    timings["train"] = trained.metrics["train_seconds"]
    timings["register"] -= timings["train"]
    version = trained.info.version

    with _timed(timings, "evaluate_challenger"):
        challenger_rmse = evaluate(trained.model, holdout)["rmse"]

    with _timed(timings, "tag"):
        decision = decide(challenger_rmse, champion_rmse, options.margin)
        backoff.call(
            f"tag version {version}",
            lambda: registry.set_version_tags(
                version, {"challenger_rmse": f"{challenger_rmse:.6f}"}
            ),
        )

    metrics = {
        "challenger_rmse": challenger_rmse,
        "holdout_rows": float(len(holdout)),
        "train_rows": float(len(train)),
    }
    if champion_rmse is not None:
        metrics["champion_rmse"] = champion_rmse
    champion_version = champion.version if champion is not None else None
    event: Event | None
    status: Status
    live = options.gate != "offline" and champion_model is not None
    with _timed(timings, "decide_and_publish"):
        if decision.promote and live:
            # The live gate decides; the poll thread starts the evaluation (no event yet).
            status = "challenger"
            event = None
        elif decision.promote:
            event = promote_and_announce(
                registry, version, "drift", publish, trigger, metrics, backoff=backoff
            )
            backoff.call(
                f"tag version {version}",
                lambda: registry.set_version_tags(version, {TAG_DECISION: "promoted"}),
            )
            status = "promoted"
        else:
            backoff.call(
                f"tag version {version}",
                lambda: registry.set_version_tags(version, {TAG_DECISION: "rejected"}),
            )
            info = backoff.call(f"read version {version}", lambda: registry.version(version))
            event = rejected_event(info, champion_version, trigger, metrics, "offline")
            publish(event)
            status = "rejected"
    log.info(
        "challenger %s %s: %s (timings: %s)",
        version,
        status,
        decision.reason,
        ", ".join(f"{k} {v:.2f}s" for k, v in timings.items()),
    )
    return RetrainOutcome(
        status,
        decision.reason,
        alerts,
        version=version,
        champion_version=champion_version,
        decision=decision,
        event=event,
        rows=len(rides),
        timings_s=timings,
        metrics=metrics,
        evaluation_start=evaluation_start(rides),
        champion_model=champion_model if status == "challenger" else None,
        challenger_model=trained.model if status == "challenger" else None,
    )
