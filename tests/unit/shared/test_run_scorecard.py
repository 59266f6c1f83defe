"""A run's scorecard from its rides, windows and model events (no broker, no registry)."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import numpy as np
import pytest

from ridestream.events import DriftWindowClosed, ModelPromoted, ModelRejected
from ridestream.features import RIDE_ID
from ridestream.run_scorecard import (
    TAG_TRIGGER_ALERT_IDS,
    WINDOW_ID,
    alerts_answered,
    build_scorecard,
    scored_rides,
    versions_to_predict,
)
from tests.synthetic import completion, day_window

DAY = datetime(2022, 5, 2)


def window(day: int, rides: int) -> DriftWindowClosed:
    return day_window(DAY + timedelta(days=day), rides)


def promoted(version: str, previous: str | None, minute: int, alert: str | None) -> ModelPromoted:
    return ModelPromoted(
        promotion_id=f"ride-duration:{version}",
        event_time=datetime(2026, 11, 28, 12, minute, tzinfo=UTC),
        model_name="ride-duration",
        version=version,
        previous_version=previous,
        reason="drift" if alert else "initial",
        trigger_alert_id=alert,
    )


def rejected(version: str, minute: int, alert: str) -> ModelRejected:
    return ModelRejected(
        rejection_id=f"ride-duration:{version}",
        event_time=datetime(2026, 11, 28, 12, minute, tzinfo=UTC),
        model_name="ride-duration",
        version=version,
        champion_version="2",
        trigger_alert_id=alert,
    )


# Three windows: two that count (250 and 300 rides) and a stray one of 10 rides.
WINDOWS = [window(0, 250), window(1, 300), window(5, 10)]
HOUR = timedelta(hours=1)
RIDES = [
    completion("a1", DAY + 1 * HOUR, 10.0),
    completion("a2", DAY + 2 * HOUR, 20.0),
    completion("a-long", DAY + 3 * HOUR, 90.0),  # over 60 minutes: not labelled
    completion("b1", DAY + 25 * HOUR, 12.0),
    completion("b2", DAY + 26 * HOUR, 30.0),
    completion("c1", DAY + 5 * 24 * HOUR + HOUR, 15.0),  # in the stray window
    completion("before", DAY - HOUR, 11.0),  # before the first window
    completion("unpredicted", DAY + 4 * HOUR, 11.0),
]
SERVED = {
    "a1": ("1", 11.0),
    "a2": ("1", 17.0),
    "a-long": ("1", 30.0),
    "b1": ("2", 13.0),
    "b2": ("2", 28.0),
    "c1": ("2", 40.0),
    "before": ("1", 40.0),
}


def test_scored_rides_are_labelled_predicted_rides_of_windows_that_count() -> None:
    rides = scored_rides(RIDES, SERVED, WINDOWS)

    assert list(rides[RIDE_ID]) == ["a1", "a2", "b1", "b2"]
    assert list(rides[WINDOW_ID]) == [WINDOWS[0].window_id] * 2 + [WINDOWS[1].window_id] * 2


def test_a_ride_at_the_end_of_the_last_window_counts_in_it_and_one_after_does_not() -> None:
    rides = [completion("end", DAY + 24 * HOUR, 10.0), completion("after", DAY + 25 * HOUR, 10.0)]
    served = {"end": ("1", 10.0), "after": ("1", 10.0)}

    assert list(scored_rides(rides, served, [window(0, 250)])[RIDE_ID]) == ["end"]
    assert scored_rides(rides, served, []).empty


def test_scorecard_compares_the_loop_with_the_first_champion_on_the_same_rides() -> None:
    rides = scored_rides(RIDES, SERVED, WINDOWS)
    # v1 (never retrained) predicts 10 minutes for every ride.
    predictions = {"1": np.full(len(rides), 10.0), "2": np.array([11.0, 17.0, 13.0, 28.0])}
    promotions = [promoted("1", None, 0, None), promoted("2", "1", 5, "w1:alert")]

    card = build_scorecard(rides, "1", predictions, promotions, [], 1, {})

    assert (card.windows, card.loop.count, card.never_retrained.count) == (2, 4, 4)
    assert card.loop.rmse == pytest.approx(np.sqrt((1 + 9 + 1 + 4) / 4))
    assert card.never_retrained.rmse == pytest.approx(np.sqrt((0 + 100 + 4 + 400) / 4))
    assert card.never_retrained.mae == pytest.approx((0 + 10 + 2 + 20) / 4)
    (v2,) = card.promotions
    assert (v2.version, v2.replaced_version, v2.serving_from) == ("2", "1", DAY + 25 * HOUR)
    assert v2.served.count == 2 and v2.served.rmse == pytest.approx(np.sqrt((1 + 4) / 2))
    assert v2.replaced.rmse == pytest.approx(np.sqrt((4 + 400) / 2))
    assert not v2.harmful
    assert card.alert_precision == 1.0


def test_a_harmful_promotion_makes_its_coalesced_alerts_not_useful() -> None:
    rides = scored_rides(RIDES, SERVED, WINDOWS)
    # v1 would have been exact on v2's rides: v2 served worse than the model it replaced.
    predictions = {"1": np.array([11.0, 17.0, 12.0, 30.0])}
    promotions = [promoted("2", "1", 5, "w3:alert")]
    rejections = [rejected("3", 9, "w7:alert"), rejected("4", 2, "w0:alert")]
    tags = {"2": {TAG_TRIGGER_ALERT_IDS: "w2:alert,w3:alert"}, "3": {}}

    card = build_scorecard(rides, "1", predictions, promotions, rejections, 6, tags)

    assert card.promotions[0].harmful and card.promotions[0].replaced.rmse == 0.0
    # In the order they happened; a version without the tag answered its trigger alert.
    assert [(r.version, r.alerts, r.result) for r in card.retrainings] == [
        ("4", 1, "rejected"),
        ("2", 2, "promoted, HARMFUL"),
        ("3", 1, "rejected"),
    ]
    assert card.useful_alerts == 0 and card.alert_precision == 0.0


def test_alerts_answered_counts_the_ids_a_tag_lists_and_those_it_summarises() -> None:
    assert alerts_answered("w1:alert") == 1
    assert alerts_answered("w1:alert,w2:alert") == 2
    assert alerts_answered("w5:alert,w6:alert (+3 earlier)") == 5
    assert alerts_answered(None) == 1


def test_the_first_champion_and_each_replaced_model_are_predicted_once() -> None:
    promotions = [
        promoted("2", "1", 5, "a"),
        promoted("3", "2", 9, "b"),
        promoted("1", None, 0, None),
    ]

    assert versions_to_predict("1", promotions) == ["1", "2"]
