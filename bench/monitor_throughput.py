"""How many rides per second the monitor's logic sustains, and whether its memory stays flat.

A long replay of real rides (green 2021-01..03 by default: predictions by a fixed function of the
distance, completions at drop-off) goes through `MonitorPipeline.handle` the way StreamLoop
feeds it: batches of records from 8 partitions (4 per topic, keyed by ride id), a partition at a
time in runs of `--run` records, as a consumer reads a backlog. Two figures per window setting:

- handle:          the logic alone on decoded events (join, watermark, windows, drift, quality);
- decode + handle: plus pydantic decoding of the JSON values (what StreamLoop adds per record);
- default GC:      decode + handle with Python's default GC thresholds instead of the
                   monitor's tuning (monitor.__main__.tune_gc).

rides/s is wall-clock; rides/CPU s divides by the process's CPU time, which says more on a
shared, loaded machine (the load average is printed with the table).

Memory: resident set size (RSS) sampled through the replay, and the rides held in open state.
Run: python bench/monitor_throughput.py [--months 2021-01,2021-02] [--run 500]
No broker, no snapshots (they run beside the loop). No timing is asserted anywhere.
"""

from __future__ import annotations

import argparse
import os
import platform
import sys
import time
import zlib
from datetime import UTC, datetime, timedelta
from pathlib import Path

import numpy as np
import pandas as pd

ROOT = Path(__file__).resolve().parents[1]
DATA_DIR = Path(os.environ.get("RIDESTREAM_TEST_DATA_DIR", ROOT.parent / "shared" / "data"))
PARTITIONS = 4


def rss_mb() -> float:
    with open("/proc/self/statm") as statm:
        return int(statm.read().split()[1]) * os.sysconf("SC_PAGE_SIZE") / 2**20


def build_records(months: list[str]) -> tuple[list[tuple[str, int, bytes]], int]:
    """(topic, partition, JSON value) of every event, in event-time order."""
    from ridestream.events import DurationPredicted, RideCompleted, encode
    from ridestream.features import TARGET, build_features
    from ridestream.trips import read_trips

    rides = pd.concat(
        [read_trips(DATA_DIR / f"green_tripdata_{m}.parquet") for m in months], ignore_index=True
    )
    first, last = pd.Timestamp(f"{months[0]}-01"), pd.Timestamp(months[-1]) + pd.offsets.MonthEnd()
    rides = rides[rides["pickup_datetime"].between(first, last + pd.Timedelta(days=1))]
    rides = rides[rides[TARGET].between(0, 24 * 60) & (rides["trip_distance"] < 500)]
    features = build_features(rides).to_dict("records")
    predicted = np.clip(4.0 + 3.2 * rides["trip_distance"].to_numpy(), 1, 60)
    dropoff = rides["pickup_datetime"] + pd.to_timedelta(rides[TARGET], unit="min")
    produced_at = datetime(2026, 1, 1, tzinfo=UTC)
    events = []
    for i, ride in enumerate(rides.itertuples(index=False)):
        partition = zlib.crc32(ride.ride_id.encode()) % PARTITIONS
        pickup = ride.pickup_datetime.to_pydatetime()
        events.append(
            (
                pickup,
                "p",
                partition,
                DurationPredicted(
                    ride_id=ride.ride_id,
                    event_time=pickup,
                    predicted_duration_min=float(predicted[i]),
                    model_name="bench",
                    model_version="1",
                    features=features[i],
                    produced_at=produced_at,
                ),
            )
        )
        events.append(
            (
                dropoff.iloc[i].to_pydatetime(warn=False),
                "c",
                partition,
                RideCompleted(
                    ride_id=ride.ride_id,
                    event_time=dropoff.iloc[i].to_pydatetime(warn=False),
                    pickup_time=pickup,
                    duration_min=float(getattr(ride, TARGET)),
                    pu_location_id=int(ride.PULocationID),
                    do_location_id=int(ride.DOLocationID),
                    trip_distance=float(ride.trip_distance),
                ),
            )
        )
    events.sort(key=lambda e: e[0])
    return [(topic, partition, encode(event)) for _, topic, partition, event in events], len(rides)


def synthetic_reference():
    """A 20,000-row champion reference: uniform zones, exponential distances, and a prediction
    and label that are a fixed function of the distance (the benches' stand-in champion)."""
    from monitor.drift import prepare_reference
    from ridestream.features import PREDICTION, TARGET

    rng = np.random.default_rng(0)
    distance = rng.exponential(3.0, 20_000)
    return prepare_reference(
        pd.DataFrame(
            {
                "trip_distance": distance,
                "PULocationID": rng.integers(1, 266, 20_000).astype(str),
                "DOLocationID": rng.integers(1, 266, 20_000).astype(str),
                PREDICTION: np.clip(4 + 3.2 * distance, 1, 60),
                TARGET: np.clip(4 + 3.2 * distance, 1, 60),
            }
        ),
        "1",
        7.0,
    )


def replay(
    records, window_rides: int | None, run: int, decode: bool, tuned_gc: bool = True
) -> dict[str, float]:
    import gc

    from monitor.pipeline import MonitorConfig, MonitorPipeline
    from monitor.settings import MonitorOptions
    from monitor.windows import WindowSpec
    from ridestream.events import DurationPredicted, RideCompleted
    from ridestream.runner import tune_gc
    from ridestream.stream.messages import Received
    from ridestream.topics import Topics

    topics = Topics("bench.")
    names = {"p": topics.rides_predictions, "c": topics.rides_completed}
    types = {"p": DurationPredicted, "c": RideCompleted}
    logs: dict[tuple[str, int], list] = {}
    for topic, partition, value in records:
        event = value if decode else types[topic].model_validate_json(value)
        logs.setdefault((topic, partition), []).append(event)
    reference = synthetic_reference()
    spec = (
        WindowSpec(timedelta(hours=1), window_rides)
        if window_rides
        else WindowSpec(timedelta(days=1))
    )
    pipeline = MonitorPipeline(MonitorConfig(spec), topics, lambda version: reference)
    gc.collect()
    gc.unfreeze()
    gc.set_threshold(700, 10, 10)  # Python's defaults
    if tuned_gc:
        tune_gc(MonitorOptions().gc_threshold)  # as the monitor does at start
    all_partitions = [(names[t], p) for t, p in logs]
    position = dict.fromkeys(logs, 0)
    rss = [rss_mb()]
    held_max = 0
    windows = 0
    total = sum(len(v) for v in logs.values())
    next_sample = total // 10
    done = 0
    started, cpu_started = time.perf_counter(), time.process_time()
    while done < total:
        for key, log in logs.items():
            start = position[key]
            if start >= len(log):
                continue
            chunk = log[start : start + run]
            position[key] = start + len(chunk)
            topic = names[key[0]]
            if decode:
                chunk = [types[key[0]].model_validate_json(v) for v in chunk]
            batch = [Received(topic, key[1], start + i, e) for i, e in enumerate(chunk)]
            caught_up = [(names[t], p) for (t, p) in logs if position[(t, p)] >= len(logs[(t, p)])]
            outputs = pipeline.handle(batch, all_partitions, caught_up)
            pipeline.join.commit_gate({(topic, key[1]): position[key]})
            windows += sum(o.topic == topics.drift_windows for o in outputs)
            done += len(chunk)
            held_max = max(held_max, pipeline.join.open_rides)
            if done >= next_sample:
                rss.append(rss_mb())
                next_sample += total // 10
    seconds = time.perf_counter() - started
    cpu_seconds = time.process_time() - cpu_started
    return {
        "rides_per_s": total / 2 / seconds,
        "rides_per_cpu_s": total / 2 / cpu_seconds,
        "seconds": seconds,
        "windows": windows,
        "rss_first": rss[1] if len(rss) > 1 else rss[0],
        "rss_last": rss[-1],
        "rss_max": max(rss),
        "held_max": held_max,
    }


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--months", default="2021-01,2021-02,2021-03")
    parser.add_argument("--run", type=int, default=500, help="records per partition run")
    args = parser.parse_args()
    import logging

    logging.basicConfig(level=logging.WARNING)
    import evidently
    import pydantic

    started = time.perf_counter()
    records, rides = build_records(args.months.split(","))
    print(
        f"built {len(records):,} events of {rides:,} rides in {time.perf_counter() - started:.0f} s"
    )
    results = []
    for label, window_rides in (("5000 rides", 5000), ("1d", None)):
        for decode in (False, True):
            results.append(
                (
                    label,
                    "decode + handle" if decode else "handle",
                    replay(records, window_rides, args.run, decode),
                )
            )
    results.append(
        ("5000 rides", "default GC", replay(records, 5000, args.run, True, tuned_gc=False))
    )

    print(f"monitor throughput  (cores: {os.cpu_count()}, load: {os.getloadavg()[0]:.1f})")
    print(
        f"python {platform.python_version()}, evidently {evidently.__version__}, "
        f"pydantic {pydantic.__version__}, numpy {np.__version__}, pandas {pd.__version__}"
    )
    print(f"replay: {rides:,} rides ({args.months}), {len(records):,} events, 8 partitions")
    header = (
        f"{'windows':>10} | {'path':>15} | {'rides/s':>9} | {'rides/CPU s':>11} | "
        f"{'published':>9} | "
        f"{'held max':>8} | {'RSS MB 10%→100% (max)':>22}"
    )
    print(header)
    print("-" * len(header))
    for label, path, r in results:
        print(
            f"{label:>10} | {path:>15} | {r['rides_per_s']:>9,.0f} | "
            f"{r['rides_per_cpu_s']:>11,.0f} | {r['windows']:>9,} | "
            f"{r['held_max']:>8,} | "
            f"{r['rss_first']:>7.0f} → {r['rss_last']:.0f} ({r['rss_max']:.0f})"
        )
    return 0


if __name__ == "__main__":
    sys.path.insert(0, str(ROOT))
    sys.exit(main())
