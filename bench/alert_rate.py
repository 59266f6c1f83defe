"""How often the monitor's rules fire on daily windows of real months: old rules vs new.

For each case, a champion is trained as `ridestream train` does (ridestream.model.fit on the
training month, validated on the next month, the monitor's reference built by
ridestream.training.reference_frame), then every day of the later months is one window, judged
with the monitor's own functions (monitor.drift.window_drift, monitor.quality.window_quality,
monitor.alerts.evaluate_rules; what monitor.pipeline.summarize does per closed window). No
Kafka: every ride of a day is in its window, and every ride has its label.

- old: the reference as a whole (no calendar) and the quality rule of before this change,
  window RMSE >= the champion's validation RMSE x 1.2;
- new: the reference reweighted to each window's hour-of-week mix, and the quality test.

Counts: alerts (after the default debounce of 1 and cooldown of 3 windows, no promotion), and
windows where a rule fires, by day type (weekday, Saturday, Sunday/holiday) and by rule. Per
month, a retrain check says whether an alert there could have paid: a challenger fitted on the
month's first 14 days against the champion on the rest of the month. "demo" is the demo's
replay: a real shift (2022), where the loop must still alert.

Run: python bench/alert_rate.py [--cases 2021 2022 2023 demo] [--cat-threshold 0.2 ...]
     [--window 6h] [--days]
"""

from __future__ import annotations

import argparse
import os
from collections import Counter
from dataclasses import dataclass
from pathlib import Path

import pandas as pd

from monitor.alerts import AlertState

ROOT = Path(__file__).resolve().parents[1]
DATA_DIR = Path(os.environ.get("RIDESTREAM_TEST_DATA_DIR", ROOT.parent / "shared" / "data"))

CASES = {
    "2021": ("2021-01", "2021-02", ["2021-02", "2021-03", "2021-04", "2021-05"]),
    "2022": ("2022-01", "2022-02", ["2022-02", "2022-03", "2022-04", "2022-05", "2022-06"]),
    "2023": ("2023-01", "2023-02", ["2023-02", "2023-03", "2023-04", "2023-05", "2023-06"]),
    "demo": ("2021-01", "2021-02", ["2021-02", "2022-05", "2022-06"]),
}
DAY_TYPES = ("weekday", "saturday", "sunday")
RULES = ("data_drift_share", "prediction_drift", "quality")
OLD_RMSE_TOLERANCE = 0.2  # the rule this change replaces


@dataclass
class Tally:
    windows: Counter[str]
    fired: Counter[str]  # by day type
    rules: Counter[str]
    state: AlertState
    alerts: int = 0

    @classmethod
    def empty(cls) -> Tally:
        return cls(Counter(), Counter(), Counter(), AlertState())


def read_month(month: str) -> pd.DataFrame:
    from ridestream.trips import month_path, read_trips

    return read_trips(month_path(DATA_DIR, month))


def day_type(day: pd.Timestamp) -> str:
    from monitor.calendar import DAY_TYPES as NAMES
    from monitor.calendar import pickup_day_types

    return NAMES[int(pickup_day_types(pd.DatetimeIndex([day]))[0])]


def retrain_check(model: object, rides: pd.DataFrame, month: str) -> str:
    """Would a retrain have paid in this month? A challenger fitted on its first 14 days (the
    retrainer's buffer) against the champion on its remaining days (the promotion margin: 2 %)."""
    from ridestream.features import PICKUP_TIME
    from ridestream.model import DEFAULT_KIND, evaluate, fit

    cut = pd.Timestamp(f"{month}-15")
    recent, later = rides[rides[PICKUP_TIME] < cut], rides[rides[PICKUP_TIME] >= cut]
    champion = evaluate(model, later)["rmse"]
    challenger = evaluate(fit(DEFAULT_KIND, recent), later)["rmse"]
    return (
        f"{month}: retrain check on days 15+: champion rmse {champion:.3f}, challenger of days "
        f"1-14 {challenger:.3f} ({challenger / champion - 1:+.1%})"
    )


def run_case(name: str, args: argparse.Namespace) -> tuple[Tally, Tally, list[str]]:
    from monitor.alerts import AlertRules, evaluate_rules
    from monitor.calendar import CalendarOptions
    from monitor.drift import DriftOptions, prepare_reference, window_drift
    from monitor.quality import window_quality
    from ridestream.events import DriftWindowClosed
    from ridestream.features import PICKUP_TIME, PREDICTION, TARGET
    from ridestream.model import DEFAULT_KIND, evaluate, fit, predict
    from ridestream.training import reference_frame

    train_month, val_month, months = CASES[name]
    train, val = read_month(train_month), read_month(val_month)
    model = fit(DEFAULT_KIND, train)
    val_rmse = evaluate(model, val)["rmse"]
    frame = reference_frame(model, val)
    old_reference = prepare_reference(frame, "1", val_rmse, calendar=None)
    new_reference = prepare_reference(
        frame, "1", val_rmse, CalendarOptions(args.min_cell_rows, holidays_as_sunday=True)
    )
    options = DriftOptions(num_threshold=args.num_threshold, cat_threshold=args.cat_threshold)
    rules = AlertRules(quality_alpha=args.quality_alpha, quality_min_rise=args.quality_min_rise)
    old, new = Tally.empty(), Tally.empty()
    lines = []
    for month in months:
        rides = read_month(month)
        start = pd.Timestamp(f"{month}-01")
        rides = rides[
            (rides[PICKUP_TIME] >= start) & (rides[PICKUP_TIME] < start + pd.offsets.MonthBegin())
        ]
        rides = rides.assign(**{PREDICTION: predict(model, rides)})
        lines.append(retrain_check(model, rides, month))
        for day, window in rides.groupby(rides[PICKUP_TIME].dt.floor(args.window)):
            current = {
                "trip_distance": window["trip_distance"].to_numpy(dtype="float64"),
                "PULocationID": window["PULocationID"].astype(str).tolist(),
                "DOLocationID": window["DOLocationID"].astype(str).tolist(),
                PREDICTION: window[PREDICTION].to_numpy(),
                PICKUP_TIME: pd.DatetimeIndex(window[PICKUP_TIME]),
            }
            kind = day_type(pd.Timestamp(day))
            verdicts = []
            for label, reference, tally in (
                ("old", old_reference, old),
                ("new", new_reference, new),
            ):
                drift = window_drift(reference, current, options)
                quality = window_quality(
                    window[PREDICTION].to_numpy(),
                    window[TARGET].to_numpy(),
                    current[PICKUP_TIME] if label == "new" else None,
                    reference.errors,
                )
                event = DriftWindowClosed(
                    window_id=f"{args.window}:{day:%Y-%m-%dT%H:%M}",
                    window_start=day,
                    event_time=day + pd.Timedelta(args.window),
                    reference_version="1",
                    model_versions=["1"],
                    rides=len(window),
                    labelled=quality.count,
                    late=0,
                    expired=0,
                    columns=drift.columns,
                    drifted_share=drift.drifted_share,
                    prediction_drift=drift.prediction_drift,
                    quality=quality,
                )
                fired = [r.rule for r in evaluate_rules(event, rules)]
                if (
                    label == "old"
                    and len(window) >= rules.min_window_rides
                    and quality.rmse is not None
                    and quality.rmse >= val_rmse * (1 + OLD_RMSE_TOLERANCE)
                ):
                    fired.append("quality")
                tally.windows[kind] += 1
                tally.state, alert = tally.state.step("1", bool(fired), rules)
                tally.alerts += alert
                if fired:
                    tally.fired[kind] += 1
                tally.rules.update(fired)
                verdicts.append(
                    f"{label} {','.join(fired) or '-':40s}"
                    + (
                        f" p {quality.p_value:.2g} z {quality.z:.1f} rmse {quality.rmse:.2f}"
                        f"/{quality.expected_rmse:.2f} deff {quality.design_effect:.2f}"
                        if quality.p_value is not None
                        and quality.z is not None
                        and quality.expected_rmse is not None
                        and quality.rmse is not None
                        and quality.design_effect is not None
                        else ""
                    )
                )
            lines.append(f"{day:%Y-%m-%dT%H} {kind:8s} {len(window):6d} " + " | ".join(verdicts))
    return old, new, lines


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--cases", nargs="+", default=list(CASES), choices=list(CASES))
    parser.add_argument("--cat-threshold", type=float, help="Evidently's when not given")
    parser.add_argument("--num-threshold", type=float, help="Evidently's when not given")
    parser.add_argument("--quality-alpha", type=float, default=0.01)
    parser.add_argument("--quality-min-rise", type=float, default=0.04)
    parser.add_argument("--min-cell-rows", type=int, default=200)
    parser.add_argument("--window", default="1D", help="window length, as pandas says it (6h)")
    parser.add_argument("--days", action="store_true", help="also print every window")
    args = parser.parse_args()
    print(
        f"thresholds: cat {args.cat_threshold or 'Evidently'}, num "
        f"{args.num_threshold or 'Evidently'}; quality alpha {args.quality_alpha}, min rise "
        f"{args.quality_min_rise}; cells >= {args.min_cell_rows} rows; windows of {args.window}"
    )
    header = (
        f"{'case':6s} {'rules':4s} {'windows':>8s} {'alerts':>6s} {'fired':>6s} "
        + " ".join(f"{d:>9s}" for d in DAY_TYPES)
        + " "
        + " ".join(f"{r:>16s}" for r in RULES)
    )
    print(header)
    for name in args.cases:
        old, new, lines = run_case(name, args)
        print("\n".join(line for line in lines if args.days or "retrain check" in line))
        for label, tally in (("old", old), ("new", new)):
            by_day = " ".join(f"{tally.fired[d]:>4d}/{tally.windows[d]:<4d}" for d in DAY_TYPES)
            print(
                f"{name:6s} {label:4s} {sum(tally.windows.values()):>8d} {tally.alerts:>6d} "
                f"{sum(tally.fired.values()):>6d} {by_day} "
                + " ".join(f"{tally.rules[r]:>16d}" for r in RULES),
                flush=True,
            )
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
