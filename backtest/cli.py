"""`ridestream backtest`: retraining policies side by side on the same months, offline."""

from __future__ import annotations

import argparse
import json
import os
import sys
import time
from collections.abc import Sequence
from pathlib import Path
from typing import TYPE_CHECKING

from ridestream.cli import CommandParser
from ridestream.tripdata_fetch import month_argument

if TYPE_CHECKING:
    from backtest.engine import BacktestConfig

# The engine imports Evidently (seconds): --help and argument errors do without it.

# The demo's monitor knobs (ridestream/demo.py): Evidently's default thresholds sit at the
# day-to-day noise of one-day windows, so it judges drift at 0.2, with a 12 h lateness.
DEMO_DRIFT_THRESHOLD = 0.2
DEMO_LATENESS = "12h"
DEFAULT_WINDOW = "1d"


def build_parser() -> argparse.ArgumentParser:
    """The `ridestream backtest` command line."""
    from backtest.policies import POLICIES

    parser = CommandParser(
        prog="ridestream backtest",
        description=(
            "Replay months offline, window by window in event time, through the services' own "
            "code (the monitor's windows, drift and alert rules; the retrainer's buffer, "
            "training and promotion gate; the predictor's batch prediction), once per "
            "retraining policy, and score what each policy served on the same labelled rides. "
            "Policies: never (the first champion all along); weekly / daily (retrain every "
            "Monday 00:00 / every day 00:00 on the labelled rides of the last 14 days, swap "
            "without a gate); loop (the project's policy: retrain on every drift alert, zero "
            "retraining latency; a challenger that passes the retrainer's offline check is "
            "judged by the live gate on the rides picked up after its training data and "
            "serves only once the gate promotes it); loop-offline (the same, promoted on the "
            "offline check alone). Models stay in memory (no broker, no MLflow)."
        ),
        epilog=(
            "The monitor runs with its defaults except the demo's drift thresholds "
            f"({DEMO_DRIFT_THRESHOLD} for numerical and categorical columns) and lateness "
            f"({DEMO_LATENESS}); the retrainer with its defaults (RIDESTREAM_MONITOR__* and "
            "RIDESTREAM_RETRAINER__* "
            "are not read). Served RMSE/MAE are over the labelled rides (1-60 min) of windows "
            "of at least 200 rides; see ridestream/scorecard.py for harmful promotions and "
            "alert precision."
        ),
    )
    parser.add_argument(
        "--train",
        required=True,
        type=month_argument,
        metavar="YYYY-MM",
        help="month the first champion trains on (as `ridestream train`)",
    )
    parser.add_argument(
        "--val",
        required=True,
        type=month_argument,
        metavar="YYYY-MM",
        help="month the first champion is validated on (its drift reference)",
    )
    parser.add_argument(
        "--months",
        required=True,
        nargs="+",
        type=month_argument,
        metavar="YYYY-MM",
        help="months to replay, in this order of event time",
    )
    parser.add_argument(
        "--window",
        default=DEFAULT_WINDOW,
        help="monitor window: 1d, 6h, 30m ... (default: %(default)s)",
    )
    parser.add_argument(
        "--policies",
        nargs="+",
        choices=tuple(POLICIES),
        default=list(POLICIES),
        help="policies to run (default: all)",
    )
    parser.add_argument(
        "--data-dir",
        type=Path,
        help="folder of <color>_tripdata_YYYY-MM.parquet (default: RIDESTREAM_DATA_DIR)",
    )
    parser.add_argument(
        "--color", choices=("green", "yellow"), default="green", help="taxi colour (default: green)"
    )
    parser.add_argument("--json", type=Path, metavar="OUT", help="write the results as JSON")
    parser.add_argument(
        "--html",
        type=Path,
        metavar="OUT",
        help="write an HTML page: the table and RMSE per window per policy",
    )
    parser.add_argument("--no-progress", action="store_true", help="no progress lines on stderr")
    return parser


def _load() -> str:
    # Timings on a shared machine mean little without it.
    try:
        return " ".join(f"{x:.1f}" for x in os.getloadavg())
    except OSError:
        return "?"


def backtest_config(
    window: str = DEFAULT_WINDOW, model_name: str = "ride-duration"
) -> BacktestConfig:
    """The monitor's defaults with the demo's window, drift thresholds and lateness (turned
    into the pipeline's config by the monitor's own `monitor_config`), and the retrainer's
    defaults."""
    from backtest.engine import BacktestConfig
    from monitor.service import monitor_config
    from monitor.settings import MonitorOptions
    from retrainer.settings import RetrainerOptions

    options = MonitorOptions(
        window=window,
        lateness=DEMO_LATENESS,
        num_threshold=DEMO_DRIFT_THRESHOLD,
        cat_threshold=DEMO_DRIFT_THRESHOLD,
    )
    return BacktestConfig(monitor_config(options), RetrainerOptions(), model_name)


def main(argv: Sequence[str] | None = None) -> int:
    """Run `ridestream backtest ...`; returns the exit code."""
    args = build_parser().parse_args(argv)
    from backtest.engine import (
        print_progress,
        run_backtest,
        train_first_champion,
    )
    from backtest.policies import POLICIES
    from backtest.report import build_page, format_table, to_json
    from backtest.rides import MissingMonthError, month_files, read_replay
    from monitor.windows import parse_duration
    from ridestream.settings import Settings
    from ridestream.trips import read_trips

    def fail(message: str) -> int:
        print(f"ridestream backtest: {message}", file=sys.stderr)
        return 2

    try:
        parse_duration(args.window)
    except ValueError as error:
        return fail(f"--window: {error}")
    if len(set(args.months)) != len(args.months):
        return fail("--months lists a month twice")
    settings = Settings()
    data_dir = args.data_dir or settings.data_dir
    try:
        train_path, val_path, *paths = month_files(
            data_dir, [args.train, args.val, *args.months], args.color
        )
    except MissingMonthError as error:
        return fail(str(error))
    for out in (args.json, args.html):
        if out is not None and not out.parent.is_dir():
            return fail(f"cannot write {out}: {out.parent} is not a folder")

    progress = None if args.no_progress else print_progress
    config = backtest_config(args.window, settings.mlflow.model_name)
    started, cpu_started = time.perf_counter(), time.process_time()
    champion, fit_s = train_first_champion(
        read_trips(train_path), read_trips(val_path), config.retrainer.model_kind
    )
    print(
        f"first champion v1 ({config.retrainer.model_kind}) trained on {args.train} in "
        f"{fit_s:.1f} s: validation RMSE {champion.reference.rmse:.4f} on {args.val}"
    )
    rides = read_replay(paths, args.months)
    print(
        f"replaying {len(rides):,} rides of {' '.join(args.months)} in {args.window} windows "
        f"(read in {time.perf_counter() - started:.1f} s with the champion)"
    )
    policies = [POLICIES[name] for name in args.policies]
    results, shared_s = run_backtest(policies, rides, champion, config, progress)
    for result in results:
        print(f"{result.policy.name}: {result.seconds:.1f} s")
    print(f"ride events shared by the policies: {shared_s:.1f} s")
    print()
    print(format_table(results))
    print(
        f"\ntotal {time.perf_counter() - started:.1f} s "
        f"(CPU {time.process_time() - cpu_started:.1f} s, load average {_load()})"
    )
    run = {
        "train": args.train,
        "val": args.val,
        "months": args.months,
        "window": args.window,
        "rides": len(rides),
        "champion_val_rmse": champion.reference.rmse,
    }
    if args.json is not None:
        args.json.write_text(json.dumps(to_json(results, run), indent=1))
        print(f"wrote {args.json}")
    if args.html is not None:
        title = f"backtest {args.train} -> {' '.join(args.months)}"
        args.html.write_text(build_page(results, title))
        print(f"wrote {args.html}")
    return 0
