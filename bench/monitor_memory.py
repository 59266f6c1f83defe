"""Whether the monitor's memory stays flat over a 10M-ride replay (issue #5).

The real rides of a month (green 2021-01 by default: predictions by a fixed function of the
distance, completions at drop-off, as in `monitor_throughput.py`) are replayed again and again,
each time shifted by whole weeks past the previous pass and with fresh ride ids, until
`--rides` rides went through `MonitorPipeline.handle` (join, watermark, 5,000-ride windows,
drift, quality, alert rules) the way StreamLoop feeds it: batches of records from 8 partitions,
offsets committed through the join's commit gate. The events are made as they are fed, so the
only memory that can grow is the monitor's own state.

Printed every `--rides / 10` rides: resident set size (RSS), rides held in open state, windows
published, rides per CPU second. No broker, no decoding (see monitor_throughput.py for that),
no snapshots. No timing or size is asserted anywhere.

Run: python bench/monitor_memory.py [--rides 10000000] [--month 2021-01]
"""

from __future__ import annotations

import argparse
import os
import platform
import sys
import time
from collections.abc import Iterator
from datetime import timedelta
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "bench"))
sys.path.insert(0, str(ROOT))

# Each pass starts this long after the previous one: whole weeks (weekday patterns stay), more
# than a month of pickups plus the longest ride.
PASS_SHIFT = timedelta(weeks=5)
BATCH_EVENTS = 5_000


def passes(base: list[tuple[str, int, Any]], rides: int) -> Iterator[tuple[str, int, Any]]:
    """(topic, partition, event) of `base`, pass after pass, until `rides` rides were made."""
    made = 0
    repeat = 0
    while made < rides:
        shift = PASS_SHIFT * repeat
        for topic, partition, event in base:
            update: dict[str, Any] = {
                "ride_id": f"{event.ride_id}#{repeat}",
                "event_time": event.event_time + shift,
            }
            if topic == "c":
                update["pickup_time"] = event.pickup_time + shift
            else:
                made += 1
                if made > rides:
                    return
            yield topic, partition, event.model_copy(update=update)
        repeat += 1


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rides", type=int, default=10_000_000)
    parser.add_argument("--month", default="2021-01")
    args = parser.parse_args()

    import gc
    import logging

    # The bench's reference is synthetic: nearly every window drifts and logs its alert.
    logging.basicConfig(level=logging.ERROR)
    from monitor_throughput import build_records, rss_mb, synthetic_reference

    from monitor.pipeline import MonitorConfig, MonitorPipeline
    from monitor.settings import MonitorOptions
    from monitor.windows import WindowSpec
    from ridestream.events import DurationPredicted, RideCompleted
    from ridestream.runner import tune_gc
    from ridestream.stream.messages import Received
    from ridestream.topics import Topics

    records, month_rides = build_records([args.month])
    types = {"p": DurationPredicted, "c": RideCompleted}
    base = [(t, p, types[t].model_validate_json(v)) for t, p, v in records]
    del records
    topics = Topics("bench.")
    names = {"p": topics.rides_predictions, "c": topics.rides_completed}
    all_partitions = [(name, p) for name in names.values() for p in range(4)]
    reference = synthetic_reference()
    pipeline = MonitorPipeline(
        MonitorConfig(WindowSpec(timedelta(hours=1), 5_000)), topics, lambda version: reference
    )
    gc.collect()
    tune_gc(MonitorOptions().gc_threshold)  # as the monitor does at start

    offsets = dict.fromkeys(all_partitions, 0)
    windows = rides = held_max = 0
    step = max(args.rides // 10, 1)
    next_report = step
    rows = [(0, rss_mb(), 0, 0, float("nan"))]
    cpu_started = time.process_time()
    batch: list[Received] = []

    def feed(caught_up: list[tuple[str, int]]) -> None:
        nonlocal windows, held_max
        outputs = pipeline.handle(batch, all_partitions, caught_up)
        pipeline.join.commit_gate(dict(offsets))
        windows += sum(o.topic == topics.drift_windows for o in outputs)
        held_max = max(held_max, pipeline.join.open_rides)
        batch.clear()

    for topic, partition, event in passes(base, args.rides):
        tp = (names[topic], partition)
        batch.append(Received(tp[0], partition, offsets[tp], event))
        offsets[tp] += 1
        rides += topic == "p"
        if len(batch) >= BATCH_EVENTS:
            feed([])
            if rides >= next_report:
                cpu = time.process_time() - cpu_started
                rows.append((rides, rss_mb(), pipeline.join.open_rides, windows, rides / cpu))
                print(f"  {rides:>11,} rides, RSS {rows[-1][1]:,.0f} MB", flush=True)
                next_report += step
    feed(all_partitions)  # every partition at its end
    cpu = time.process_time() - cpu_started
    rows.append((rides, rss_mb(), pipeline.join.open_rides, windows, rides / cpu))

    print()
    print(f"monitor memory  (cores: {os.cpu_count()}, load: {os.getloadavg()[0]:.1f})")
    print(f"python {platform.python_version()}, 5,000-ride windows, lateness 2 h, no decoding")
    print(
        f"{len(base):,} events of {month_rides:,} rides ({args.month}) replayed in passes "
        f"{PASS_SHIFT.days} days apart with fresh ids: {rides:,} rides, {windows:,} windows, "
        f"at most {held_max:,} rides held"
    )
    print(f"{'rides':>11} | {'RSS MB':>7} | {'held':>6} | {'windows':>7} | {'rides/CPU s':>11}")
    for done, rss, held, published, rate in rows:
        print(f"{done:>11,} | {rss:>7,.0f} | {held:>6,} | {published:>7,} | {rate:>11,.0f}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
