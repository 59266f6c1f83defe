"""The scorecard's definitions: served error, harmful promotions, alert precision."""

from __future__ import annotations

import numpy as np
import pytest

from ridestream.scorecard import (
    RetrainingOutcome,
    ServedError,
    alert_precision,
    is_harmful,
    published_window_error,
    served_error,
    window_served_error,
)


def test_served_error_counts_only_rides_of_one_to_sixty_minutes():
    predicted = np.array([10.0, 12.0, 5.0, 30.0])
    actual = np.array([12.0, 0.5, 8.0, 75.0])  # 0.5 and 75 minutes are not labelled
    error = served_error(predicted, actual)
    assert error.count == 2
    assert error.rmse == pytest.approx(np.sqrt((4 + 9) / 2))
    assert error.mae == pytest.approx(2.5)


def test_served_errors_of_windows_add_up_to_the_error_of_all_their_rides():
    first = served_error(np.array([1.0, 2.0, 3.0]), np.array([2.0, 2.0, 5.0]))
    second = served_error(np.array([10.0]), np.array([14.0]))
    together = served_error(np.array([1.0, 2.0, 3.0, 10.0]), np.array([2.0, 2.0, 5.0, 14.0]))
    assert (first + second).rmse == pytest.approx(together.rmse)
    assert (first + second).mae == pytest.approx(together.mae)


def test_a_window_of_fewer_than_200_rides_does_not_count():
    predicted, actual = np.full(199, 10.0), np.full(199, 20.0)
    assert window_served_error(199, predicted, actual) == ServedError()
    assert window_served_error(200, np.full(200, 10.0), np.full(200, 20.0)).rmse == 10.0


def test_no_labelled_rides_have_no_rmse():
    assert ServedError().rmse is None
    assert ServedError().mae is None


def test_a_promotion_more_than_one_percent_worse_on_its_rides_is_harmful():
    assert is_harmful(5.06, 5.0)
    assert not is_harmful(5.05, 5.0)  # exactly 1 % worse: not more than 1 %
    assert not is_harmful(4.0, 5.0)
    assert not is_harmful(None, 5.0)  # served no labelled rides


def test_alert_precision_is_the_share_of_alerts_answered_by_a_useful_promotion():
    retrainings = [
        RetrainingOutcome(alerts=2, promoted=True),  # two coalesced alerts share a good outcome
        RetrainingOutcome(alerts=1, promoted=True, harmful=True),
        RetrainingOutcome(alerts=1, promoted=False),
    ]
    # 5 alerts: 2 useful, 1 harmful, 1 rejected, 1 that trained nothing
    assert alert_precision(5, retrainings) == pytest.approx(0.4)


def test_alert_precision_without_alerts_is_undefined():
    assert alert_precision(0, []) is None


def test_a_published_window_adds_the_same_totals_as_its_rides():
    predicted = np.linspace(5, 25, 300)
    actual = np.linspace(6, 20, 300)
    from_rides = window_served_error(300, predicted, actual)
    published = published_window_error(300, from_rides.count, from_rides.rmse, from_rides.mae)
    assert published.count == from_rides.count
    assert published.squared_sum == pytest.approx(from_rides.squared_sum)
    assert published.absolute_sum == pytest.approx(from_rides.absolute_sum)
    assert published_window_error(150, 150, 3.0, 2.0) == ServedError()  # too small to count
