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
        quality=WindowQuality(count=90, rmse=rmse, mae=rmse, mean_error=0.0),
    )


RULES = AlertRules(drift_share_threshold=0.5, rmse_tolerance=0.2)


def test_a_clean_window_fires_no_rule():
    assert evaluate_rules(window(), reference_rmse=5.0, rules=RULES) == []


def test_drifted_share_at_the_threshold_fires_with_the_share_and_the_columns():
    (rule,) = evaluate_rules(window(drifted=(False, True, True)), 5.0, RULES)
    assert rule.rule == "data_drift_share"
    assert (round(rule.value, 3), rule.threshold) == (0.667, 0.5)
    assert "PULocationID" in rule.detail and "DOLocationID" in rule.detail
    assert evaluate_rules(window(drifted=(False, True, False)), 5.0, RULES) == []


def test_prediction_drift_fires_with_its_score_and_threshold():
    (rule,) = evaluate_rules(window(prediction_drifted=True), 5.0, RULES)
    assert (rule.rule, rule.value, rule.threshold) == ("prediction_drift", 0.2, 0.1)


def test_quality_fires_when_rmse_reaches_reference_times_one_plus_tolerance():
    (rule,) = evaluate_rules(window(rmse=6.0), reference_rmse=5.0, rules=RULES)
    assert (rule.rule, rule.value, rule.threshold) == ("quality", 6.0, 6.0)
    assert evaluate_rules(window(rmse=5.99), reference_rmse=5.0, rules=RULES) == []
    assert evaluate_rules(window(rmse=None), reference_rmse=5.0, rules=RULES) == []
    assert evaluate_rules(window(rmse=60.0), reference_rmse=None, rules=RULES) == []


def test_a_window_of_a_few_stray_rides_judges_nothing():
    bad = window(drifted=(True, True, True), prediction_drifted=True, rmse=60.0, rides=2)
    assert evaluate_rules(bad, reference_rmse=5.0, rules=RULES) == []
    assert len(evaluate_rules(bad.model_copy(update={"rides": 200}), 5.0, RULES)) == 3


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
    w = window(drifted=(True, True, True), prediction_drifted=True, rmse=9.0)
    fired = evaluate_rules(w, 5.0, RULES)
    alert = drift_alert(w, fired)
    assert alert.alert_id == alert_id(w.window_id) == "alert:1d:2021-01-04T00:00"
    assert [r.rule for r in alert.rules] == ["data_drift_share", "prediction_drift", "quality"]
    assert alert.event_time == w.event_time and alert.model_version == "1"
