"""The scorecard of a recorded run: did the loop serve better than never retraining?

The metrics are `ridestream.scorecard`'s (served error on labelled rides of windows of at least
200 rides, harmful promotions, alert precision); this module applies them to what a run left on
its topics. The rides are `rides.completed` joined with `rides.predictions` by ride id, each in
the monitor window of its pickup time. Pure: the models' predictions of those rides and the
version tags come in as plain values (`ridestream.report.read_run` loads them from the registry).

A promotion is known by its version (its event's key is `<model name>:<version>`), so the rides
it served are the rides its version predicted.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from datetime import datetime

import numpy as np
import pandas as pd

from ridestream.events import DriftWindowClosed, ModelPromoted, ModelRejected, RideCompleted
from ridestream.features import PICKUP_TIME, PREDICTION, RIDE_ID, TARGET, is_labelled, rides_frame
from ridestream.scorecard import (
    RetrainingOutcome,
    ServedError,
    alert_precision,
    is_harmful,
    is_scored_window,
    served_error,
)

SERVED_VERSION = "served_version"
WINDOW_ID = "window_id"
# The version tag in which the retrainer lists the alerts a training answered (newest last,
# the oldest summarised as " (+N earlier)": `retrainer.retrain`).
TAG_TRIGGER_ALERT_IDS = "trigger_alert_ids"

# A ride's served prediction: (model version, predicted minutes).
Served = tuple[str, float]


def scored_rides(
    completed: Sequence[RideCompleted],
    served: Mapping[str, Served],
    windows: Sequence[DriftWindowClosed],
) -> pd.DataFrame:
    """The rides the scorecard counts: completed and predicted, labelled (1-60 min), and in a
    window that counts (`is_scored_window`). A rides frame plus the served version, the served
    prediction (`PREDICTION`) and the window id, in pickup order.

    A ride's window is the latest one that starts at or before its pickup time, when the pickup
    is not after that window's end (the monitor's windows do not overlap)."""
    frame = rides_frame(c for c in completed if c.ride_id in served)
    frame[SERVED_VERSION] = pd.Series([served[r][0] for r in frame[RIDE_ID]], dtype=object)
    frame[PREDICTION] = np.array([served[r][1] for r in frame[RIDE_ID]], dtype="float64")
    frame[WINDOW_ID] = ""
    ordered = sorted(windows, key=lambda w: w.window_start)
    if not ordered or frame.empty:
        return frame.iloc[:0]
    starts = np.array([w.window_start for w in ordered], dtype="datetime64[ns]")
    ends = np.array([w.event_time for w in ordered], dtype="datetime64[ns]")
    pickups = frame[PICKUP_TIME].to_numpy(dtype="datetime64[ns]")
    index = np.searchsorted(starts, pickups, side="right") - 1
    found = np.clip(index, 0, None)
    scored = np.array([is_scored_window(w.rides) for w in ordered])
    keep = (index >= 0) & (pickups <= ends[found]) & scored[found] & is_labelled(frame[TARGET])
    frame[WINDOW_ID] = np.array([w.window_id for w in ordered], dtype=object)[found]
    return frame[keep].sort_values([PICKUP_TIME, RIDE_ID], kind="stable").reset_index(drop=True)


@dataclass(frozen=True)
class PromotionScore:
    """A promotion judged on the rides it served: its served error against the replaced
    model's predictions of the same rides."""

    version: str
    replaced_version: str
    reason: str
    serving_from: datetime | None  # pickup time of the first counted ride it served
    served: ServedError
    replaced: ServedError

    @property
    def harmful(self) -> bool:
        """See `ridestream.scorecard.is_harmful`."""
        return is_harmful(self.served.rmse, self.replaced.rmse)


@dataclass(frozen=True)
class RetrainingScore:
    """One retraining the alerts caused: the alert that started it, how many alerts it
    answered (coalesced), and what came of it."""

    trigger_alert_id: str
    version: str
    alerts: int
    promoted: bool
    harmful: bool

    @property
    def outcome(self) -> RetrainingOutcome:
        """The retraining as `ridestream.scorecard` counts it."""
        return RetrainingOutcome(self.alerts, self.promoted, self.harmful)

    @property
    def result(self) -> str:
        """`promoted`, `promoted, HARMFUL` or `rejected`."""
        if not self.promoted:
            return "rejected"
        return "promoted, HARMFUL" if self.harmful else "promoted"


@dataclass(frozen=True)
class RunScorecard:
    """The loop against never retraining on the same rides, each promotion, each retraining."""

    first_version: str
    windows: int  # windows that count
    loop: ServedError
    never_retrained: ServedError
    promotions: list[PromotionScore]
    retrainings: list[RetrainingScore]
    alerts: int

    @property
    def useful_alerts(self) -> int:
        """Alerts whose retraining produced a promotion that did not hurt."""
        return sum(r.alerts for r in self.retrainings if r.outcome.useful)

    @property
    def alert_precision(self) -> float | None:
        """See `ridestream.scorecard.alert_precision`."""
        return alert_precision(self.alerts, [r.outcome for r in self.retrainings])


def versions_to_predict(first_version: str, promotions: Sequence[ModelPromoted]) -> list[str]:
    """The versions whose predictions of the scored rides `build_scorecard` needs: the first
    champion (never retrained) and every replaced model."""
    replaced = [p.previous_version for p in promotions if p.previous_version is not None]
    return list(dict.fromkeys([first_version, *replaced]))


def alerts_answered(tag: str | None) -> int:
    """How many alerts a `trigger_alert_ids` version tag lists: `a,b` is 2, `a,b (+3 earlier)`
    is 5; no tag (a version from before the tag existed) counts its one trigger alert."""
    if not tag:
        return 1
    shown, _, hidden = tag.partition(" (+")
    return len([a for a in shown.split(",") if a]) + (int(hidden.split()[0]) if hidden else 0)


def build_scorecard(
    rides: pd.DataFrame,
    first_version: str,
    predictions: Mapping[str, np.ndarray],
    promotions: Sequence[ModelPromoted],
    rejections: Sequence[ModelRejected],
    alerts: int,
    version_tags: Mapping[str, Mapping[str, str]],
) -> RunScorecard:
    """The scorecard of a run from its `scored_rides`, each version's predictions of those rides
    (`versions_to_predict`), its model events, its alert count and the retrained versions' tags."""
    actual = rides[TARGET].to_numpy()
    promoted = []
    for promotion in sorted(promotions, key=lambda p: p.event_time):
        if promotion.previous_version is None:
            continue  # a champion announced, not a switch
        mine = (rides[SERVED_VERSION] == promotion.version).to_numpy()
        pickups = rides.loc[mine, PICKUP_TIME]  # `scored_rides` are in pickup order
        promoted.append(
            PromotionScore(
                version=promotion.version,
                replaced_version=promotion.previous_version,
                reason=promotion.reason,
                serving_from=pickups.iloc[0].to_pydatetime() if len(pickups) else None,
                served=served_error(rides[PREDICTION].to_numpy()[mine], actual[mine]),
                replaced=served_error(predictions[promotion.previous_version][mine], actual[mine]),
            )
        )
    harmful = {p.version for p in promoted if p.harmful}
    events: list[ModelPromoted | ModelRejected] = [*promotions, *rejections]
    retrainings = [
        RetrainingScore(
            trigger_alert_id=event.trigger_alert_id,
            version=event.version,
            alerts=alerts_answered(version_tags.get(event.version, {}).get(TAG_TRIGGER_ALERT_IDS)),
            promoted=isinstance(event, ModelPromoted),
            harmful=event.version in harmful,
        )
        for event in sorted(events, key=lambda e: e.event_time)
        if event.trigger_alert_id
    ]
    return RunScorecard(
        first_version=first_version,
        windows=rides[WINDOW_ID].nunique(),
        loop=served_error(rides[PREDICTION].to_numpy(), actual),
        never_retrained=served_error(predictions[first_version], actual),
        promotions=promoted,
        retrainings=retrainings,
        alerts=alerts,
    )
