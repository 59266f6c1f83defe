"""Moving `champion` and announcing it: the one sequence the retrainer and the CLI share.

Order matters. The move of the `champion` alias is the single commit point (then `previous`
points at the replaced champion, as `ModelRegistry.promote` does); the `ModelPromoted` event is
published after it. Every registry call is retried with backoff on its own
(`ridestream.registry_retry`): the registry going away mid-promotion delays the remaining steps, it
does not skip them. A process killed (or giving up on the registry) before the move changed
nothing; one killed after the move but before the event leaves a champion that nobody
announced: `announce_missing_promotion`, run when the retrainer starts, publishes it then.
The event is idempotent: its `promotion_id` is
`<model name>:<version>`, and a predictor that already serves that version ignores it.
"""

from __future__ import annotations

import logging
import math
from collections.abc import Callable, Iterable, Mapping
from typing import Literal

from ridestream.events import Event, LiveEvidence, ModelPromoted, ModelRejected, utc_now
from ridestream.registry import CHAMPION, PREVIOUS, ModelInfo, ModelRegistry
from ridestream.registry_retry import NO_RETRY, Backoff

log = logging.getLogger(__name__)

Reason = Literal["initial", "drift", "manual", "rollback"]
RejectReason = Literal["offline", "futility", "budget", "superseded", "stale"]
Publish = Callable[[Event], None]

# Version tags the retrainer writes (lineage and the decision).
TAG_TRIGGER_ALERT = "trigger_alert_id"
TAG_PROMOTION_REASON = "promotion_reason"
TAG_DECISION = "decision"
METRIC_TAGS = ("challenger_rmse", "champion_rmse")


def promotion_id(model_name: str, version: str) -> str:
    """The stable id of a promotion event: `<model name>:<version>`."""
    return f"{model_name}:{version}"


def finite_metrics(values: Mapping[str, object]) -> dict[str, float]:
    """The entries that are finite numbers (event floats refuse NaN and infinity)."""
    out: dict[str, float] = {}
    for key, value in values.items():
        try:
            number = float(value)  # type: ignore[arg-type]
        except (TypeError, ValueError):
            continue
        if math.isfinite(number):
            out[key] = number
    return out


def version_metrics(info: ModelInfo) -> dict[str, float]:
    """A version's run metrics plus the RMSE tags the retrainer wrote on it."""
    metrics = finite_metrics(info.metrics)
    metrics.update(finite_metrics({k: info.tags[k] for k in METRIC_TAGS if k in info.tags}))
    return metrics


def promoted_event(
    info: ModelInfo,
    previous_version: str | None,
    reason: Reason,
    trigger_alert_id: str | None = None,
    metrics: Mapping[str, float] | None = None,
    gate: LiveEvidence | None = None,
) -> ModelPromoted:
    """The `ModelPromoted` event of `info` becoming champion (`gate`: the live evidence)."""
    return ModelPromoted(
        promotion_id=promotion_id(info.name, info.version),
        event_time=utc_now(),
        model_name=info.name,
        version=info.version,
        previous_version=previous_version,
        reason=reason,
        trigger_alert_id=trigger_alert_id,
        metrics=finite_metrics(metrics if metrics is not None else version_metrics(info)),
        gate=gate,
    )


def rejected_event(
    info: ModelInfo,
    champion_version: str | None,
    trigger_alert_id: str | None,
    metrics: Mapping[str, float],
    reason: RejectReason | None = None,
    gate: LiveEvidence | None = None,
) -> ModelRejected:
    """The `ModelRejected` event of a challenger that did not beat the champion (offline, or
    on live rides: `gate` is then the evidence)."""
    return ModelRejected(
        rejection_id=promotion_id(info.name, info.version),
        event_time=utc_now(),
        model_name=info.name,
        version=info.version,
        champion_version=champion_version,
        trigger_alert_id=trigger_alert_id,
        metrics=finite_metrics(metrics),
        reason=reason,
        gate=gate,
    )


def promote_and_announce(
    registry: ModelRegistry,
    version: str,
    reason: Reason,
    publish: Publish,
    trigger_alert_id: str | None = None,
    metrics: Mapping[str, float] | None = None,
    backoff: Backoff = NO_RETRY,
    gate: LiveEvidence | None = None,
    before_announce: Callable[[], None] | None = None,
) -> ModelPromoted:
    """Move `champion` to `version` (the commit point; `previous` follows), tag the version
    with the reason, then publish `ModelPromoted`.

    Each registry call is retried on its own by `backoff`, and each is idempotent: the
    replaced champion is read once, before the move, so a retried step cannot forget it (a
    retried `ModelRegistry.promote` would: after its first half it finds `version` already
    champion and leaves `previous` unset). `before_announce` runs after the move, before the
    event (the live gate clears the `challenger` alias there)."""
    before = backoff.call("read the champion", registry.champion)
    previous = before.version if before is not None and before.version != version else None
    backoff.call(f"move {CHAMPION} to {version}", lambda: registry.set_alias(CHAMPION, version))
    if previous is not None:
        backoff.call(
            f"move {PREVIOUS} to {previous}", lambda: registry.set_alias(PREVIOUS, previous)
        )
    backoff.call(
        f"tag version {version}",
        lambda: registry.set_version_tags(version, {TAG_PROMOTION_REASON: reason}),
    )
    info = backoff.call(f"read version {version}", lambda: registry.version(version))
    event = promoted_event(info, previous, reason, trigger_alert_id, metrics, gate)
    if before_announce is not None:
        before_announce()
    publish(event)
    log.info(
        "%s: champion %s -> %s (%s), ModelPromoted published",
        registry.name,
        previous or "none",
        version,
        reason,
    )
    return event


def latest_promotion(events: Iterable[ModelPromoted], model_name: str) -> ModelPromoted | None:
    """The newest (by event time) `ModelPromoted` of `model_name`, or None."""
    mine = [e for e in events if e.model_name == model_name]
    return max(mine, key=lambda e: e.event_time) if mine else None


def missing_promotion(
    champion: ModelInfo | None, previous: ModelInfo | None, announced: ModelPromoted | None
) -> ModelPromoted | None:
    """The `ModelPromoted` nobody published for the current champion, or None when the latest
    announcement already names it (pure: the caller publishes it)."""
    if champion is None or (announced is not None and announced.version == champion.version):
        return None
    reason: Reason
    tags = champion.tags
    if tags.get(TAG_PROMOTION_REASON) in ("initial", "drift", "manual", "rollback"):
        reason = tags[TAG_PROMOTION_REASON]  # type: ignore[assignment]
    elif TAG_TRIGGER_ALERT in tags:
        reason = "drift"  # a retrainer challenger whose run died after the alias move
    elif previous is None:
        reason = "initial"
    else:
        reason = "manual"
    previous_version = (
        previous.version if previous is not None and previous.version != champion.version else None
    )
    trigger = tags.get(TAG_TRIGGER_ALERT) if reason == "drift" else None
    return promoted_event(champion, previous_version, reason, trigger)


def announce_missing_promotion(
    registry: ModelRegistry,
    announced: ModelPromoted | None,
    publish: Publish,
    backoff: Backoff = NO_RETRY,
) -> ModelPromoted | None:
    """Publish `ModelPromoted` for a champion that was moved but never announced."""
    champion = backoff.call("read the champion", registry.champion)
    previous = backoff.call(f"read alias {PREVIOUS}", lambda: registry.alias(PREVIOUS))
    event = missing_promotion(champion, previous, announced)
    if event is not None:
        publish(event)
        log.warning(
            "%s: champion %s had no ModelPromoted on the topic: published it now (reason %s)",
            registry.name,
            event.version,
            event.reason,
        )
    return event
