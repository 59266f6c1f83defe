"""Alert rules, debounce and cooldown of the monitor."""

from __future__ import annotations

from datetime import datetime, timedelta

from monitor.alerts import AlertRules, AlertState, alert_id, drift_alert, evaluate_rules
from ridestream.events import ColumnDrift, DriftWindowClosed, WindowQuality

START = datetime(2021, 1, 4)


def drift(column: str, score: float, drifted: bool, kind: str = "categorical") -> ColumnDrift:
    return ColumnDrift(
        column=column,
        column_type=kind,  # type: ignore[arg-type]
        method="Jensen-Shannon distance",
        score=score,
        threshold=0.1,
        drifted=drifted,
    )


def window(
    drifted: tuple[bool, bool, bool] = (False, False, False),
    prediction_drifted: bool = False,
    rmse: float | None = 5.0,
    day: int = 0,
    rides: int = 1_000,
    expected_rmse: float | None = 5.0,
    p_value: float | None = 0.5,
) -> DriftWindowClosed:
    names = ("trip_distance", "PULocationID", "DOLocationID")
    columns = [drift(n, 0.3 if d else 0.01, d) for n, d in zip(names, drifted, strict=True)]
    return DriftWindowClosed(
        window_id=f"1d:2021-01-{4 + day:02d}T00:00",
        window_start=START + timedelta(days=day),
        event_time=START + timedelta(days=day + 1),
        reference_version="1",
        model_versions=["1"],
        rides=rides,
        labelled=90,
        late=0,
        expired=0,
        columns=columns,
        drifted_share=sum(drifted) / 3,
        prediction_drift=drift(
            "prediction", 0.2 if prediction_drifted else 0.01, prediction_drifted
        ),
        quality=WindowQuality(
            count=90,
            rmse=rmse,
            mae=rmse,
            mean_error=0.0,
            expected_rmse=expected_rmse,
            z=None if p_value is None else 2.0,
            p_value=p_value,
            design_effect=1.2,
            blocks=24,
        ),
    )


RULES = AlertRules(drift_share_threshold=0.5, quality_alpha=0.01, quality_min_rise=0.04)


def test_a_clean_window_fires_no_rule():
    assert evaluate_rules(window(), RULES) == []


def test_drifted_share_at_the_threshold_fires_with_the_share_and_the_columns():
    (rule,) = evaluate_rules(window(drifted=(False, True, True)), RULES)
    assert rule.rule == "data_drift_share"
    assert (round(rule.value, 3), rule.threshold) == (0.667, 0.5)
    assert "PULocationID" in rule.detail and "DOLocationID" in rule.detail
    assert evaluate_rules(window(drifted=(False, True, False)), RULES) == []


def test_prediction_drift_fires_with_its_score_and_threshold():
    (rule,) = evaluate_rules(window(prediction_drifted=True), RULES)
    assert (rule.rule, rule.value, rule.threshold) == ("prediction_drift", 0.2, 0.1)


def test_quality_fires_when_significant_and_at_least_the_minimum_rise_with_the_evidence():
    (rule,) = evaluate_rules(window(rmse=6.0, p_value=0.001), RULES)
    assert (rule.rule, rule.value, rule.threshold) == ("quality", 6.0, 5.0 * 1.04)
    assert "expected 25.00" in rule.detail and "p 0.001" in rule.detail
    assert "90 labelled rides in 24 hourly blocks" in rule.detail


def test_quality_needs_both_significance_and_a_material_rise():
    # Significant but only 2 % worse: not worth a retrain.
    assert evaluate_rules(window(rmse=5.1, p_value=1e-6), RULES) == []
    # 20 % worse but within the noise of the window (a few rides, a stormy day).
    assert evaluate_rules(window(rmse=6.0, p_value=0.02), RULES) == []


def test_quality_judges_nothing_without_a_test():
    assert evaluate_rules(window(rmse=None, p_value=None), RULES) == []
    assert evaluate_rules(window(rmse=60.0, expected_rmse=None, p_value=None), RULES) == []


def test_a_window_of_a_few_stray_rides_judges_nothing():
    bad = window(
        drifted=(True, True, True), prediction_drifted=True, rmse=60.0, rides=2, p_value=1e-9
    )
    assert evaluate_rules(bad, RULES) == []
    assert len(evaluate_rules(bad.model_copy(update={"rides": 200}), RULES)) == 3


def fired_windows(bad: list[bool], rules: AlertRules, versions: list[str] | None = None):
    state = AlertState()
    fired = []
    for i, is_bad in enumerate(bad):
        state, fire = state.step(versions[i] if versions else "1", is_bad, rules)
        if fire:
            fired.append(i)
    return fired


def test_debounce_fires_only_after_k_consecutive_bad_windows():
    rules = AlertRules(debounce_windows=3, cooldown_windows=100)
    assert fired_windows([True, True, False, True, True, True, True], rules) == [5]


def test_cooldown_holds_back_alerts_for_n_windows():
    rules = AlertRules(debounce_windows=1, cooldown_windows=2)
    assert fired_windows([True] * 7, rules) == [0, 3, 6]


def test_a_new_champion_ends_the_cooldown():
    rules = AlertRules(debounce_windows=1, cooldown_windows=100)
    versions = ["1", "1", "1", "2", "2"]
    assert fired_windows([True] * 5, rules, versions) == [0, 3]


def test_alert_id_comes_from_the_window_id_and_names_the_rules():
    w = window(drifted=(True, True, True), prediction_drifted=True, rmse=9.0, p_value=1e-6)
    fired = evaluate_rules(w, RULES)
    alert = drift_alert(w, fired)
    assert alert.alert_id == alert_id(w.window_id) == "alert:1d:2021-01-04T00:00"
    assert [r.rule for r in alert.rules] == ["data_drift_share", "prediction_drift", "quality"]
    assert alert.event_time == w.event_time and alert.model_version == "1"
