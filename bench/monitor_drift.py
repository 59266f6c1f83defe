"""What the drift numbers of one window cost: the monitor's path vs Evidently's own paths.

Three ways to the same numbers (scores, methods, thresholds, verdicts) for the four drift
columns (trip_distance, PULocationID, DOLocationID, prediction) of a window against a
20,000-row champion reference (the registry's REFERENCE_ROWS):

- monitor:   monitor.drift.window_drift, reference statistics prepared once per champion;
- stattests: Evidently's stat-test functions called per column on pandas Series (no report);
- report:    a full Evidently Report with DataDriftPreset (what the snapshot writer builds).

Run: python bench/monitor_drift.py [--repeat N] [--no-report]
Windows are real rides (green 2021-03) and the reference is labelled green 2021-02 rides; the
"prediction" is a fixed function of the distance. No timing is asserted anywhere.
"""

from __future__ import annotations

import argparse
import os
import platform
import sys
import time
from pathlib import Path

import numpy as np
import pandas as pd

ROOT = Path(__file__).resolve().parents[1]
DATA_DIR = Path(os.environ.get("RIDESTREAM_TEST_DATA_DIR", ROOT.parent / "shared" / "data"))
DRIFT_COLUMNS = ["trip_distance", "PULocationID", "DOLocationID", "prediction"]
SIZES = (1_000, 10_000, 100_000)


def frame(rides: pd.DataFrame) -> pd.DataFrame:
    from ridestream.features import PREDICTION, TARGET, build_features

    features = build_features(rides)
    features[PREDICTION] = np.clip(4.0 + 3.2 * features["trip_distance"], 1, 60)
    features[TARGET] = rides[TARGET].to_numpy()
    return features


def best_of(repeat: int, run) -> float:
    times = []
    for _ in range(repeat):
        started = time.perf_counter()
        run()
        times.append(time.perf_counter() - started)
    return min(times)


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--repeat", type=int, default=5, help="best of N runs (default 5)")
    parser.add_argument("--no-report", action="store_true", help="skip the full Report")
    args = parser.parse_args()

    import evidently
    from evidently import DataDefinition, Dataset, Report
    from evidently.legacy.calculations.stattests.registry import get_stattest
    from evidently.legacy.core import ColumnType
    from evidently.presets import DataDriftPreset

    from monitor.drift import prepare_reference, window_drift
    from ridestream.features import TARGET, is_labelled
    from ridestream.trips import read_trips

    val = read_trips(DATA_DIR / "green_tripdata_2021-02.parquet")
    val = val[is_labelled(val[TARGET])].sample(n=20_000, random_state=0)
    reference_frame = frame(val)
    current_all = frame(
        pd.concat(
            [read_trips(DATA_DIR / f"green_tripdata_2021-{m:02d}.parquet") for m in (3, 4)],
            ignore_index=True,
        )
    )
    started = time.perf_counter()
    reference = prepare_reference(reference_frame, "bench", 7.0)
    prepare_s = time.perf_counter() - started
    definition = DataDefinition(
        numerical_columns=["trip_distance", "prediction"],
        categorical_columns=["PULocationID", "DOLocationID"],
    )
    kinds = {
        "trip_distance": ColumnType.Numerical,
        "prediction": ColumnType.Numerical,
        "PULocationID": ColumnType.Categorical,
        "DOLocationID": ColumnType.Categorical,
    }

    rows = []
    for size in SIZES:
        current = current_all.iloc[:size]
        values = {c: current[c].to_numpy() for c in ("trip_distance", "prediction")}
        values.update({c: current[c].tolist() for c in ("PULocationID", "DOLocationID")})
        monitor_s = best_of(args.repeat, lambda v=values: window_drift(reference, v))

        def stattests(current: pd.DataFrame = current) -> None:
            for column, kind in kinds.items():
                test = get_stattest(reference_frame[column], current[column], kind, None)
                test(reference_frame[column], current[column], kind, None)

        stattest_s = best_of(args.repeat, stattests)
        report_s = float("nan")
        if not args.no_report:

            def report(current: pd.DataFrame = current) -> None:
                Report([DataDriftPreset(columns=DRIFT_COLUMNS)]).run(
                    Dataset.from_pandas(current[DRIFT_COLUMNS], data_definition=definition),
                    Dataset.from_pandas(reference_frame[DRIFT_COLUMNS], data_definition=definition),
                )

            report_s = best_of(max(1, min(args.repeat, 2)), report)
        rows.append((size, monitor_s, stattest_s, report_s))

    print(
        f"monitor drift cost per window  (cores: {os.cpu_count()}, load: {os.getloadavg()[0]:.1f})"
    )
    print(
        f"python {platform.python_version()}, evidently {evidently.__version__}, "
        f"numpy {np.__version__}, pandas {pd.__version__}"
    )
    print(f"reference: {len(reference_frame):,} rows, prepared once in {prepare_s * 1000:.1f} ms")
    print(f"{'rides':>8} | {'monitor ms':>10} | {'stat tests ms':>13} | {'full Report ms':>14}")
    print(f"{'-' * 8}-+-{'-' * 10}-+-{'-' * 13}-+-{'-' * 14}")
    for size, monitor_s, stattest_s, report_s in rows:
        print(
            f"{size:>8,} | {monitor_s * 1000:>10.1f} | {stattest_s * 1000:>13.1f} | "
            f"{report_s * 1000:>14.1f}"
        )
    return 0


if __name__ == "__main__":
    sys.path.insert(0, str(ROOT))
    sys.exit(main())
