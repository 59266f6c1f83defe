"""Promotion events: ids, and the ModelPromoted a crash after the alias move left unpublished."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

from retrainer.models_cli import models_table
from retrainer.promotion import latest_promotion, missing_promotion, promoted_event
from ridestream.registry import ModelInfo

NAME = "ride-duration"


def info(version: str, tags: dict[str, str] | None = None, **metrics: float) -> ModelInfo:
    return ModelInfo(NAME, version, run_id="r", metrics=dict(metrics), tags=tags or {})


def test_promotion_id_is_model_name_and_version_and_metrics_drop_nan():
    event = promoted_event(info("3", val_rmse=5.5, val_mae=float("nan")), "2", "manual")
    assert event.promotion_id == "ride-duration:3"
    assert event.previous_version == "2"
    assert event.metrics == {"val_rmse": 5.5}


def test_champion_already_announced_needs_no_event():
    announced = promoted_event(info("3"), "2", "drift")
    assert missing_promotion(info("3"), info("2"), announced) is None


def test_champion_moved_by_a_run_that_died_before_publishing_is_announced_as_drift():
    champion = info("3", {"trigger_alert_id": "alert-9", "challenger_rmse": "5.1"})
    announced = promoted_event(info("2"), "1", "manual")
    event = missing_promotion(champion, info("2"), announced)
    assert event is not None
    assert (event.version, event.previous_version, event.reason) == ("3", "2", "drift")
    assert event.trigger_alert_id == "alert-9"
    assert event.metrics["challenger_rmse"] == 5.1


def test_first_champion_never_announced_is_announced_as_initial():
    event = missing_promotion(info("1"), None, None)
    assert event is not None
    assert (event.reason, event.previous_version) == ("initial", None)


def test_no_champion_needs_no_event():
    assert missing_promotion(None, None, None) is None


def test_latest_promotion_is_the_newest_by_event_time_of_this_model():
    old = promoted_event(info("2"), "1", "drift")
    new = promoted_event(info("1"), "2", "rollback")
    new = new.model_copy(update={"event_time": datetime.now(UTC) + timedelta(seconds=1)})
    other = ModelInfo("other-model", "7", run_id=None)
    latest = latest_promotion([new, old, promoted_event(other, None, "manual")], NAME)
    assert latest is not None and latest.version == "1"
    assert latest_promotion([], NAME) is None


def test_models_table_shows_aliases_and_rmses():
    table = models_table(
        [
            info("1", val_rmse=5.47),
            ModelInfo(
                NAME,
                "2",
                "r",
                {"val_rmse": 6.1},
                {"challenger_rmse": "6.2", "champion_rmse": "8.9", "decision": "promoted"},
                aliases=("champion",),
            ),
        ]
    )
    lines = table.splitlines()
    assert lines[0].split()[:3] == ["VERSION", "ALIASES", "VAL_RMSE"]
    assert lines[2].split()[:6] == ["2", "champion", "6.100", "8.900", "6.200", "promoted"]
