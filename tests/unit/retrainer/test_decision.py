"""The promotion rule: a challenger must beat the champion's RMSE by the margin."""

from __future__ import annotations

import math

import pytest

from retrainer.decision import decide


def test_challenger_better_by_more_than_the_margin_is_promoted():
    decision = decide(challenger_rmse=5.0, champion_rmse=6.0, margin=0.02)
    assert decision.promote
    assert decision.required_rmse == pytest.approx(5.88)


def test_challenger_exactly_at_the_margin_is_promoted():
    assert decide(challenger_rmse=9.8, champion_rmse=10.0, margin=0.02).promote


def test_challenger_better_but_within_the_margin_is_rejected():
    decision = decide(challenger_rmse=9.9, champion_rmse=10.0, margin=0.02)
    assert not decision.promote
    assert "9.9000 > 9.8000" in decision.reason


def test_challenger_as_good_as_the_champion_is_rejected_with_a_margin():
    assert not decide(challenger_rmse=6.0, champion_rmse=6.0, margin=0.02).promote


def test_zero_margin_promotes_an_equal_challenger():
    assert decide(challenger_rmse=6.0, champion_rmse=6.0, margin=0.0).promote


def test_worse_challenger_is_never_promoted():
    assert not decide(challenger_rmse=7.0, champion_rmse=6.0, margin=0.0).promote


def test_without_a_champion_the_challenger_is_promoted():
    assert decide(challenger_rmse=6.0, champion_rmse=None).promote
    assert decide(challenger_rmse=6.0, champion_rmse=math.nan).promote


def test_challenger_without_a_finite_rmse_is_rejected():
    assert not decide(challenger_rmse=math.nan, champion_rmse=6.0).promote


@pytest.mark.parametrize("margin", [-0.1, 1.0])
def test_margin_outside_zero_to_one_is_refused(margin):
    with pytest.raises(ValueError):
        decide(5.0, 6.0, margin)
