"""The monitor's logic on one batch: join, close windows, drift and quality, alert rules.

No Kafka client, no MLflow, no environment: `MonitorPipeline.handle` takes the batch of valid
events (with topic, partition, offset) and returns the messages to produce. `__main__` wires it
into `ridestream.stream.loop.StreamLoop` (handler + `commit_gate`).

Each window message carries two headers that let a restarted monitor resume exactly where the
published windows end (see `restore`): the rules that fired on it (for debounce/cooldown) and,
for count windows, the key of its last ride.
"""

from __future__ import annotations

import json
import logging
import math
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from typing import Any, NamedTuple

import numpy as np
import pandas as pd
from pydantic import model_validator

from monitor.alerts import AlertRules, AlertState, drift_alert, evaluate_rules
from monitor.drift import DriftOptions, Reference, window_drift
from monitor.join import LATE, ClosedWindow, Frontier, ItemKey, Partition, WindowedJoin
from monitor.quality import window_quality
from monitor.windows import WindowSpec, parse_count_window_index
from ridestream.events import (
    DriftDetected,
    DriftWindowClosed,
    DurationPredicted,
    ModelPromoted,
    RideCompleted,
    RuleFired,
)
from ridestream.features import (
    DRIFT_CATEGORICAL,
    DRIFT_NUMERICAL,
    PICKUP_TIME,
    PREDICTION,
    TARGET,
)
from ridestream.stream.messages import Outgoing, Received
from ridestream.topics import Topics

log = logging.getLogger(__name__)

HEADER_RULES = "monitor.rules"
HEADER_LAST_KEY = "monitor.last_key"

# Given a model version (None: the current champion), the prepared reference of that version.
ReferenceProvider = Callable[[str | None], Reference]
# Called with each published window and its rides frame (the Evidently snapshot, off the loop).
SnapshotSink = Callable[[DriftWindowClosed, pd.DataFrame, Reference], None]
# Called with each published window and its alert, if any (metrics, in the wiring).
PublishedHook = Callable[[DriftWindowClosed, DriftDetected | None], None]


class MonitoredPrediction(DurationPredicted):
    """Decoder of `rides.predictions` for the monitor: a prediction with its drift features.

    A prediction whose features lack a drift column (or hold a non-number distance) cannot be
    monitored: it fails here, at the edge, and goes to the dead letters instead of crashing.
    """

    @model_validator(mode="after")
    def _has_drift_features(self) -> MonitoredPrediction:
        missing = [c for c in (*DRIFT_NUMERICAL, *DRIFT_CATEGORICAL) if c not in self.features]
        if missing:
            raise ValueError(f"features lack the drift columns {missing}")
        distance = self.features[DRIFT_NUMERICAL[0]]
        if isinstance(distance, str) or not math.isfinite(distance):
            raise ValueError(f"features.{DRIFT_NUMERICAL[0]} is not a finite number")
        return self


@dataclass(frozen=True)
class MonitorConfig:
    """The pure knobs of the monitor."""

    spec: WindowSpec
    lateness: timedelta = timedelta(hours=2)
    rules: AlertRules = field(default_factory=AlertRules)
    drift: DriftOptions = field(default_factory=DriftOptions)


@dataclass(frozen=True)
class Restored:
    """Where the published windows end, and the alert state they leave."""

    frontier: Frontier
    alert_state: AlertState
    windows: int


def restore(
    config: MonitorConfig, published: Iterable[tuple[DriftWindowClosed, Mapping[str, bytes]]]
) -> Restored:
    """Rebuild the resume point and the alert state from the windows already on `drift.windows`."""
    prefix = config.spec.label + ":"
    by_id: dict[str, tuple[DriftWindowClosed, Mapping[str, bytes]]] = {}
    for window, headers in published:
        if window.window_id.startswith(prefix):
            by_id[window.window_id] = (window, headers)
    if not by_id:
        return Restored(Frontier(), AlertState(), 0)
    if config.spec.rides is None:
        ordered = sorted(by_id.values(), key=lambda wh: wh[0].window_start)
        frontier = Frontier(end=max(w.event_time for w, _ in ordered))
    else:
        ordered = sorted(by_id.values(), key=lambda wh: parse_count_window_index(wh[0].window_id))
        last, headers = ordered[-1]
        if HEADER_LAST_KEY in headers:
            raw = json.loads(headers[HEADER_LAST_KEY])
            key: ItemKey = (datetime.fromisoformat(raw[0]), int(raw[1]), str(raw[2]))
        else:  # published without the header: everything up to its end time counts as done
            key = (last.event_time, LATE, "\U0010ffff")
        frontier = Frontier(last_key=key, next_index=parse_count_window_index(last.window_id) + 1)
    state = AlertState()
    for window, headers in ordered:
        bad = bool(json.loads(headers.get(HEADER_RULES, b"[]")))
        state, _ = state.step(window.reference_version, bad, config.rules)
    return Restored(frontier, state, len(ordered))


def window_frame(window: ClosedWindow) -> pd.DataFrame:
    """The rides of a closed window as a frame: drift columns, prediction and label."""
    rides = [item.ride for item in window.items if item.is_ride and item.ride is not None]
    return pd.DataFrame(
        {
            PICKUP_TIME: pd.DatetimeIndex([r.pickup_time for r in rides], dtype="datetime64[ns]"),
            "trip_distance": np.array([r.trip_distance for r in rides], dtype="float64"),
            "PULocationID": [r.pu_location_id for r in rides],
            "DOLocationID": [r.do_location_id for r in rides],
            PREDICTION: np.array([r.predicted_duration_min for r in rides], dtype="float64"),
            TARGET: np.array(
                [np.nan if r.duration_min is None else r.duration_min for r in rides],
                dtype="float64",
            ),
        }
    )


def summarize(
    window: ClosedWindow, reference: Reference, options: DriftOptions
) -> tuple[DriftWindowClosed, pd.DataFrame]:
    """The `DriftWindowClosed` of a closed window (and its rides frame)."""
    frame = window_frame(window)
    current: dict[str, Any] = {c: frame[c].to_numpy() for c in (*DRIFT_NUMERICAL, PREDICTION)}
    current.update({c: frame[c].tolist() for c in DRIFT_CATEGORICAL})
    current[PICKUP_TIME] = pd.DatetimeIndex(frame[PICKUP_TIME])
    drift = window_drift(reference, current, options)
    labelled = frame[TARGET].notna().to_numpy()
    quality = window_quality(
        frame[PREDICTION].to_numpy()[labelled],
        frame[TARGET].to_numpy()[labelled],
        current[PICKUP_TIME][labelled],
        reference.errors,
    )
    versions = {item.ride.model_version for item in window.items if item.is_ride and item.ride}
    event = DriftWindowClosed(
        window_id=window.window_id,
        window_start=window.start,
        event_time=window.end,
        reference_version=reference.version,
        model_versions=sorted(v for v in versions if v is not None),
        rides=len(frame),
        labelled=quality.count,
        late=sum(item.late for item in window.items),
        expired=sum(item.expired for item in window.items),
        columns=drift.columns,
        drifted_share=drift.drifted_share,
        prediction_drift=drift.prediction_drift,
        quality=quality,
    )
    return event, frame


class Assessment(NamedTuple):
    """What the monitor makes of one closed window."""

    window: DriftWindowClosed
    frame: pd.DataFrame  # its rides: drift columns, prediction and label
    fired: list[RuleFired]
    alert: DriftDetected | None


class MonitorPipeline:
    """Joins ride events, closes windows, computes their numbers and raises alerts."""

    def __init__(
        self,
        config: MonitorConfig,
        topics: Topics,
        reference_provider: ReferenceProvider,
        restored: Restored | None = None,
        snapshot_sink: SnapshotSink | None = None,
        on_published: PublishedHook | None = None,
    ) -> None:
        self.config = config
        self.topics = topics
        self.reference_provider = reference_provider
        self.reference = reference_provider(None)
        restored = restored or Restored(Frontier(), AlertState(), 0)
        self.join = WindowedJoin(config.spec, config.lateness, restored.frontier)
        self.alert_state = restored.alert_state
        self.snapshot_sink = snapshot_sink
        self.on_published = on_published
        self.windows_published = 0
        self.alerts_published = 0

    @property
    def ride_topics(self) -> tuple[str, str]:
        return (self.topics.rides_predictions, self.topics.rides_completed)

    def handle(
        self,
        received: Sequence[Received],
        assigned: Iterable[Partition] | None = None,
        idle: Iterable[Partition] = (),
    ) -> list[Outgoing]:
        """Take a batch in; return the window and alert messages of the windows it closed.

        `assigned` are the ride partitions being read (None: those seen so far), `idle` those
        read to their end with nothing new for a while (see `WindowedJoin.watermark`).
        """
        for record in received:
            event = record.event
            if isinstance(event, DurationPredicted | RideCompleted):
                self.join.add((record.topic, record.partition), record.offset, event)
            elif isinstance(event, ModelPromoted):
                self._switch_reference(event)
        watermark = self.join.watermark(assigned, idle)
        outputs: list[Outgoing] = []
        for window in self.join.close(watermark):
            outputs.extend(self._publish(window))
        return outputs

    def _switch_reference(self, promoted: ModelPromoted) -> None:
        if promoted.version == self.reference.version:
            return
        log.info(
            "champion is now %s v%s (was %s): switching the drift reference",
            promoted.model_name,
            promoted.version,
            self.reference.version,
        )
        self.use_reference(promoted.version)

    def use_reference(self, version: str | None) -> None:
        """Judge the next windows against the reference of model `version` (a new champion)."""
        self.reference = self.reference_provider(version)

    def assess(self, window: ClosedWindow) -> Assessment:
        """A closed window's numbers, the rules it breaks and its alert, if one is due (this
        advances the debounce and cooldown state: call it once per window, in window order)."""
        event, frame = summarize(window, self.reference, self.config.drift)
        fired = evaluate_rules(event, self.config.rules)
        self.alert_state, fire = self.alert_state.step(
            self.reference.version, bool(fired), self.config.rules
        )
        return Assessment(event, frame, fired, drift_alert(event, fired) if fire else None)

    def _publish(self, window: ClosedWindow) -> list[Outgoing]:
        event, frame, fired, alert = self.assess(window)
        headers = [(HEADER_RULES, _rules_json(fired))]
        if window.last_key is not None:
            time, kind, ride_id = window.last_key
            headers.append(
                (HEADER_LAST_KEY, json.dumps([time.isoformat(), kind, ride_id]).encode())
            )
        message = Outgoing.of(self.topics.drift_windows, event)
        outputs = [Outgoing(message.topic, message.key, message.value, tuple(headers))]
        self.windows_published += 1
        log.info(
            "window %s: %d rides, %d labelled, %d late, %d expired, drifted share %s, rmse %s%s",
            event.window_id,
            event.rides,
            event.labelled,
            event.late,
            event.expired,
            _round(event.drifted_share),
            _round(event.quality.rmse),
            f", rules: {', '.join(r.rule for r in fired)}" if fired else "",
        )
        if alert is not None:
            outputs.append(Outgoing.of(self.topics.drift_alerts, alert))
            self.alerts_published += 1
            log.warning("drift alert %s: %s", alert.alert_id, "; ".join(_describe(fired)))
        if self.on_published is not None:
            self.on_published(event, alert)
        if self.snapshot_sink is not None and event.rides:
            self.snapshot_sink(event, frame, self.reference)
        return outputs


def _rules_json(fired: list[RuleFired]) -> bytes:
    return json.dumps([rule.model_dump() for rule in fired]).encode()


def _describe(fired: list[RuleFired]) -> list[str]:
    return [f"{r.rule} {r.value:.3f} >= {r.threshold:.3f} ({r.detail})" for r in fired]


def _round(value: float | None) -> str:
    return "-" if value is None else f"{value:.3f}"
