"""The backtest walk on synthetic rides: the same windows for every policy, swaps at the end of
the window that asked for them, and a scorecard of what was served."""

from __future__ import annotations

import json
from datetime import datetime, timedelta

import numpy as np
import pandas as pd
import pytest

from backtest.engine import BacktestConfig, Model, run_backtest, train_first_champion
from backtest.policies import POLICIES, Schedule
from backtest.report import PLOT_ID, build_page, to_json
from monitor.pipeline import MonitorConfig
from monitor.windows import WindowSpec
from retrainer.settings import RetrainerOptions
from ridestream.features import DROPOFF_TIME, PICKUP_TIME, RIDE_ID, TARGET

# A day's schedule model has a reference of a few hundred rides, where Evidently picks the
# chi-square test, which divides by zero for categories the window lacks.
pytestmark = pytest.mark.filterwarnings("ignore:divide by zero:RuntimeWarning")

DAY = timedelta(days=1)
START = datetime(2021, 3, 1)  # a Monday


def rides_of(
    days: int, per_day: int, minutes_per_mile: float, first_day: int, seed: int
) -> pd.DataFrame:
    """Rides whose duration is distance x `minutes_per_mile` plus noise."""
    rng = np.random.default_rng(seed)
    count = days * per_day
    pickup = pd.Timestamp(START + first_day * DAY) + pd.to_timedelta(
        np.sort(rng.integers(0, days * 86_400, count)), unit="s"
    )
    distance = rng.gamma(2.0, 1.5, count).round(2)
    duration = np.clip(2 + minutes_per_mile * distance + rng.normal(0, 1, count), 1.5, 59)
    return pd.DataFrame(
        {
            RIDE_ID: [f"synthetic:{seed}:{i}" for i in range(count)],
            PICKUP_TIME: pickup.to_numpy(dtype="datetime64[us]"),
            DROPOFF_TIME: (pickup + pd.to_timedelta(duration, unit="m")).to_numpy(
                dtype="datetime64[us]"
            ),
            "PULocationID": rng.integers(1, 20, count),
            "DOLocationID": rng.integers(1, 20, count),
            "trip_distance": distance,
            TARGET: duration,
        }
    )


@pytest.fixture(scope="module")
def champion() -> Model:
    model, _ = train_first_champion(
        rides_of(7, 300, 3.0, -14, seed=1), rides_of(7, 300, 3.0, -7, seed=2), "gbm"
    )
    return model


@pytest.fixture(scope="module")
def replay() -> pd.DataFrame:
    # Four normal days, then rides take twice as long per mile: the quality rule fires.
    normal = rides_of(4, 300, 3.0, 0, seed=3)
    slower = rides_of(6, 300, 6.0, 4, seed=4)
    return pd.concat([normal, slower], ignore_index=True)


@pytest.fixture(scope="module")
def results(champion: Model, replay: pd.DataFrame) -> dict:
    config = BacktestConfig(
        monitor=MonitorConfig(spec=WindowSpec(DAY), lateness=timedelta(hours=12)),
        # The loop trains on the last day: the slow rides only.
        # 300 rides a day: the live gate may decide on a day's rides.
        retrainer=RetrainerOptions(buffer_days=1, min_labelled_rides=250, gate_min_rides=250),
    )
    outcomes, _ = run_backtest(list(POLICIES.values()), replay, champion, config)
    return {r.policy.name: r for r in outcomes}


def test_every_policy_judges_the_same_windows(results, replay):
    ids = {name: [w.window_id for w in r.windows] for name, r in results.items()}
    assert ids["never"] == [f"1d:2021-03-{day:02d}T00:00" for day in range(1, 11)]
    assert all(window_ids == ids["never"] for window_ids in ids.values())
    assert sum(w.rides for w in results["never"].windows) == len(replay)


def test_never_serves_the_first_champion_all_along(results):
    never = results["never"]
    assert set(never.served_versions) == {"1"}
    assert never.retrains == 0 and never.swaps == []


def test_offline_loop_serves_a_promoted_challenger_from_the_end_of_the_alerting_window(results):
    loop = results["loop-offline"]
    promoted = next(r for r in loop.retrainings if r.status == "promoted")
    assert promoted.at > START + 4 * DAY  # the slowdown, not the normal days, earned it
    window_id = promoted.alert_ids[-1].removeprefix("alert:")
    index = [w.window_id for w in loop.windows].index(window_id)
    assert loop.windows[index].event_time == promoted.at
    assert loop.served_versions[index] != promoted.version
    assert loop.served_versions[index + 1] == promoted.version


def test_live_gate_serves_a_challenger_only_once_a_day_of_its_rides_proved_it(results):
    loop = results["loop"]
    promoted = next(r for r in loop.retrainings if r.status == "promoted")
    swap = next(s for s in loop.swaps if s.version == promoted.version)
    # Trained at the end of the alerting window; judged on the rides picked up after its
    # training data for at least the gate's minimum span (24 h), plus the last ride's 60 min.
    assert swap.at >= promoted.at + DAY
    assert "better beyond the margin" in promoted.reason
    served_before = [
        version
        for version, window in zip(loop.served_versions, loop.windows, strict=True)
        if window.event_time <= swap.at
    ]
    assert promoted.version not in served_before
    assert loop.served_versions[-1] == promoted.version


def test_the_loop_serves_the_slow_days_better_than_never(results):
    assert results["loop"].served.rmse < results["never"].served.rmse
    assert results["loop"].alert_precision is not None
    assert results["never"].alert_precision is None  # its alerts train nothing


def test_daily_retrains_at_every_midnight_without_a_gate(results):
    daily = results["daily"]
    assert [r.at for r in daily.retrainings] == [START + (day + 1) * DAY for day in range(10)]
    assert all(r.status == "promoted" for r in daily.retrainings)


def test_weekly_retrains_on_monday_only(results):
    assert [r.at for r in results["weekly"].retrainings] == [datetime(2021, 3, 8)]


def test_a_schedule_counts_a_boundary_crossed_by_a_gap_in_the_data():
    weekly = Schedule("weekly", every=timedelta(days=7))
    friday, next_wednesday = datetime(2021, 3, 5), datetime(2021, 3, 10)
    assert weekly.wants_retraining(next_wednesday, friday, [])
    assert not weekly.wants_retraining(datetime(2021, 3, 6), friday, [])
    assert not weekly.wants_retraining(datetime(2021, 3, 9), datetime(2021, 3, 8), [])


def test_the_json_and_the_page_show_every_policy(results):
    ordered = list(results.values())
    document = to_json(ordered, {"months": ["2021-03"]})
    loop = next(p for p in document["policies"] if p["policy"] == "loop")
    assert len(loop["windows"]) == len(results["loop"].windows)
    assert loop["swaps"][0]["version"] == results["loop"].swaps[0].version
    assert json.loads(json.dumps(document)) == document  # plain data
    page = build_page(ordered, "backtest")
    assert f'id="{PLOT_ID}"' in page
    assert all(f"{name}: model swap" in page for name in ("weekly", "daily", "loop"))
    assert "Plotly.newPlot" in page  # drawn by the inlined plotly.js, no CDN
    assert "<script src=" not in page
