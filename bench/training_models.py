"""Model benchmark on real TLC data (not a test: prints a table, asserts nothing).

    python bench/training_models.py [--train 2021-01] [--val 2021-02]

Fits the course baseline (`linear`), the gradient-boosted model without the zone-lookup
features (the first probe) and the default `gbm`, on the train month; prints validation RMSE
and MAE (1-60 min rides), fit time and batch prediction speed (wall clock, and per CPU second
of this process: the figure that moves least with other jobs on a shared machine).
Data: RIDESTREAM_DATA_DIR (default ../shared/data).
"""

from __future__ import annotations

import argparse
import os
import platform
import sys
import time
from pathlib import Path
from typing import Any

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))


def without_zone_lookup() -> Any:
    """The default gbm, minus `borough_pair` and `same_zone` (the brief's first probe)."""
    from sklearn.compose import ColumnTransformer
    from sklearn.ensemble import HistGradientBoostingRegressor
    from sklearn.model_selection import KFold
    from sklearn.pipeline import Pipeline

    from ridestream.model import GBM_PARAMS, ZoneTargetEncoder

    encoder = ColumnTransformer(
        [
            (
                "zones",
                ZoneTargetEncoder(
                    target_type="continuous", cv=KFold(5, shuffle=True, random_state=0)
                ),
                ["PULocationID", "DOLocationID", "PU_DO"],
            ),
            ("numbers", "passthrough", ["trip_distance", "pickup_hour", "pickup_weekday"]),
        ]
    )
    return Pipeline(
        [("encoder", encoder), ("regressor", HistGradientBoostingRegressor(**GBM_PARAMS))]
    )


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--train", default="2021-01")
    parser.add_argument("--val", default="2021-02")
    parser.add_argument(
        "--threads", type=int, default=None, help="OpenMP threads (default: the model's, 1)"
    )
    args = parser.parse_args()

    import numpy as np
    import pandas as pd
    import sklearn

    from ridestream import model
    from ridestream.features import TARGET, build_features
    from ridestream.trips import month_path, read_trips

    if args.threads:
        model.OPENMP_THREADS = args.threads
    data_dir = Path(os.environ.get("RIDESTREAM_DATA_DIR", REPO.parent / "shared" / "data"))
    train = model.labelled(read_trips(month_path(data_dir, args.train)))
    val = model.labelled(read_trips(month_path(data_dir, args.val)))
    train_x, val_x = build_features(train), build_features(val)
    train_y, val_y = train[TARGET].to_numpy(), val[TARGET].to_numpy()

    candidates = {
        "linear (course baseline)": model.build_pipeline("linear"),
        "gbm without zone lookup": without_zone_lookup(),
        "gbm (default)": model.build_pipeline("gbm"),
    }
    rows = []
    for name, pipeline in candidates.items():
        started = time.perf_counter()
        with model._thread_limit():
            pipeline.fit(train_x, train_y)
        fit_s = time.perf_counter() - started
        model.predict_features(pipeline, val_x.head(100))  # warm the encoder's lookup
        started, cpu_started = time.perf_counter(), time.process_time()
        predicted = model.predict_features(pipeline, val_x)
        all_rate = len(val_x) / (time.perf_counter() - started)
        all_cpu_rate = len(val_x) / (time.process_time() - cpu_started)
        batch = val_x.head(5_000)
        started = time.perf_counter()
        for _ in range(5):
            model.predict_features(pipeline, batch)
        batch_rate = 5 * len(batch) / (time.perf_counter() - started)
        metrics = model.score(val_y, predicted)
        rows.append(
            (name, metrics["rmse"], metrics["mae"], fit_s, all_rate, all_cpu_rate, batch_rate)
        )

    print(
        f"training benchmark: {os.cpu_count()} cores (load {os.getloadavg()[0]:.1f}), "
        f"Python {platform.python_version()}, scikit-learn {sklearn.__version__}, "
        f"pandas {pd.__version__}, numpy {np.__version__}, "
        f"{model.OPENMP_THREADS} OpenMP thread(s)"
    )
    print(
        f"green {args.train} -> {args.val}: {len(train):,} / {len(val):,} rides of 1-60 min; "
        "predict = features frame -> minutes"
    )
    print(
        f"{'model':<26} {'val RMSE':>8} {'val MAE':>8} {'fit s':>6} "
        f"{'rows/s (all)':>13} {'rows/CPU s':>11} {'rows/s (5k)':>12}"
    )
    for name, rmse, mae, fit_s, all_rate, all_cpu_rate, batch_rate in rows:
        print(
            f"{name:<26} {rmse:>8.4f} {mae:>8.4f} {fit_s:>6.1f} "
            f"{all_rate:>13,.0f} {all_cpu_rate:>11,.0f} {batch_rate:>12,.0f}"
        )
    return 0


if __name__ == "__main__":
    sys.exit(main())
