"""kill -9 of the monitor mid-stream, twice: the windows it publishes are those of an
uninterrupted run, window by window, none missing, and a window republished after a crash
carries the same content (issue #5, item 5). And what a crash of the predictor upstream does
to the monitor's windows.

The input is the monitor test's stream (predictions at pickup, completions at drop-off) over
synthetic rides, in 3-hour windows. The champion and its reference come from a real SQLite
MLflow registry, as `python -m monitor` reads them. The uninterrupted run is the monitor's `run`
in a thread, on topics and a group of its own (once per module); the crashed one is
`python -m monitor`, killed with SIGKILL each time drift.windows has grown past a random
(seeded) count, and restarted at once.

The whole input is on the topics before either run starts (a backlog, read in small polls), so
both runs see the same records whatever the timing; a random pause after each kill point puts
the kill anywhere in a batch.
"""

from __future__ import annotations

import logging
import random
import time
import uuid
from collections import Counter
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pandas as pd
import pytest

from monitor.drift import Reference
from monitor.service import registry_reference_provider
from monitor.settings import MonitorSettings
from ridestream.events import DriftDetected, DriftWindowClosed, DurationPredicted, Event
from ridestream.settings import KafkaSettings, MlflowSettings
from ridestream.topics import Topics
from tests.integration.monitor.test_monitor_on_broker import (
    FIRST_PICKUP,
    MonitorThread,
    alerts_on,
    produce,
    ride_events,
    settings_for,
    wait_for_windows,
)
from tests.reliability.crash import (
    PROGRESS_TIMEOUT_S,
    TopicSize,
    champion_store,
    crash_at,
    crashable,
    kill_points,
)
from tests.reliability.topic_io import read_topic
from tests.synthetic import synthetic_rides

pytestmark = [pytest.mark.integration, pytest.mark.reliability, pytest.mark.faults]

log = logging.getLogger(__name__)

# Synthetic pickups spread over 28 days; the stream keeps 2021-01-05 .. 01-08 03:00 of them:
# about 6,400 rides, 270 per 3-hour window (above the 200 that alert rules need).
RIDES = 60_000
WINDOW = "3h"
WINDOWS = 24  # 01-05 00:00 .. 01-07 21:00; the 2 h lateness keeps 01-08 00:00 open
# Small polls make many batches (and commits), so a kill lands between many different
# poll/produce/commit steps.
MAX_POLL_RECORDS = 100
CRASHES = 2
# Kill points are drawn among the first 3/4 of the windows: a kill is seen a few windows late
# (a window closes when every partition has passed it, so they come in bursts).
KILL_WINDOWS = WINDOWS * 3 // 4
SEED = 5
# The predictor goes down at noon on the second day: its predictions from then on reach
# rides.predictions only after it restarted, when the completions are all in.
PREDICTOR_DOWN_AT = pd.Timestamp(FIRST_PICKUP) + pd.Timedelta(hours=36)


@pytest.fixture(scope="module")
def mlflow_settings(tmp_path_factory: pytest.TempPathFactory) -> MlflowSettings:
    """A SQLite MLflow store of the module's own, with a champion (and its reference) in it."""
    return champion_store(tmp_path_factory.mktemp("mlflow"), "ride-duration-crash-monitor")


@dataclass(frozen=True)
class Uninterrupted:
    """The input stream and what the monitor made of it, run without interruption."""

    events: list[Event]
    reference: Reference
    windows: dict[str, DriftWindowClosed]
    alerts: dict[str, DriftDetected]


@pytest.fixture(scope="module")
def uninterrupted(
    mlflow_settings: MlflowSettings,
    kafka_bootstrap: str,
    tmp_path_factory: pytest.TempPathFactory,
) -> Uninterrupted:
    """The monitor's `run` in a thread over the whole stream, on topics of its own."""
    kafka = KafkaSettings(bootstrap_servers=kafka_bootstrap)
    name = f"crash-straight-{uuid.uuid4().hex[:8]}"
    topics = Topics(name + ".")
    events = ride_events(synthetic_rides(RIDES, seed=SEED), drifted=False)
    produce(kafka, topics, events)
    settings = monitor_settings(
        kafka, mlflow_settings, topics.prefix, name, tmp_path_factory.mktemp("straight")
    )
    reference = registry_reference_provider(settings)(None)
    with MonitorThread(settings, reference):
        windows = wait_for_windows(kafka, topics, WINDOWS, PROGRESS_TIMEOUT_S)
    return Uninterrupted(events, reference, windows, alerts_on(kafka, topics))


def monitor_settings(
    kafka: KafkaSettings, mlflow: MlflowSettings, prefix: str, group: str, tmp: Path
) -> MonitorSettings:
    settings = settings_for(kafka, prefix, group, tmp)
    options = settings.monitor.model_copy(
        update={"window": WINDOW, "max_poll_records": MAX_POLL_RECORDS}
    )
    return settings.model_copy(update={"mlflow": mlflow, "monitor": options})


@pytest.fixture
def settings(
    mlflow_settings: MlflowSettings,
    kafka_settings: KafkaSettings,
    topic_prefix: str,
    group_id: str,
    tmp_path: Path,
) -> MonitorSettings:
    """Monitor settings for the test's own topics and group, and the module's registry."""
    return monitor_settings(kafka_settings, mlflow_settings, topic_prefix, group_id, tmp_path)


def changed_fields(expected: Event, got: Event) -> dict[str, tuple[Any, Any]]:
    """The fields whose values differ: {name: (expected, got)}."""
    want, have = expected.model_dump(), got.model_dump()
    return {name: (want[name], have[name]) for name in want if want[name] != have[name]}


def test_monitor_killed_mid_stream_publishes_the_uninterrupted_windows(
    uninterrupted: Uninterrupted, settings: MonitorSettings, tmp_path: Path, record_property: Any
) -> None:
    expected = uninterrupted.windows
    kafka_settings, crashed = settings.kafka, settings.topics
    produce(kafka_settings, crashed, uninterrupted.events)
    rng = random.Random(SEED)
    points = kill_points(rng, KILL_WINDOWS, CRASHES)
    log.info("seed %d: kill -9 at window counts %s", SEED, points)
    monitor = crashable("monitor", settings, tmp_path)
    size = TopicSize(kafka_settings, crashed.drift_windows)
    try:
        monitor.start()
        kills = crash_at(monitor, size, points, settle_s=lambda: rng.uniform(0.0, 0.1))
        windows = wait_for_windows(kafka_settings, crashed, WINDOWS, PROGRESS_TIMEOUT_S)
        assert monitor.exited() is None, monitor.logs()[-3000:]
    finally:
        size.close()
        monitor.stop()

    published = read_topic(kafka_settings, crashed.drift_windows, expect=len(windows))
    per_window = Counter(
        DriftWindowClosed.model_validate_json(r.value).window_id for r in published
    )
    figures = {
        "rides": sum(w.rides for w in expected.values()),
        "windows": len(expected),
        "crashes": len(kills),
        "kills_at_window_count": kills,
        "window_records": len(published),
        "windows_republished": sum(n - 1 for n in per_window.values()),
    }
    for name, value in figures.items():
        record_property(name, value)
    log.info("monitor kill -9: %s", figures)

    assert len(kills) == CRASHES
    assert sorted(windows) == sorted(expected), "windows missing or extra after the crashes"
    for window_id, window in expected.items():
        differences = changed_fields(window, windows[window_id])
        assert not differences, f"{window_id} differs from the uninterrupted run: {differences}"
    assert alerts_on(kafka_settings, crashed) == uninterrupted.alerts


class CountingMonitor(MonitorThread):
    """The monitor in a thread, counting the records it has polled."""

    polled = 0

    def _on_batch(self, batch: Any) -> None:
        self.polled += batch.polled


def test_predictions_held_up_by_a_predictor_restart_leave_the_windows_unchanged(
    uninterrupted: Uninterrupted, settings: MonitorSettings
) -> None:
    """A predictor down from noon on the second day (killed, restarting) while the completions
    go on: once it is back and has caught up, the windows must be the uninterrupted ones.

    While the predictor is down its rides.predictions partitions are read to their end, but
    they still hold the watermark at their own latest event time (`monitor.join`): only a
    partition idle for `idle_partition_s` stops holding it. Without that, the completions
    alone moved the watermark, every window up to the last drop-off closed with its rides
    expired, and the restarted predictor's predictions were counted late (in a replay at
    speed S a restart of t seconds is S x t of event time: 43,200 x ~15 s is a week).
    """
    # Longer than the hold below on a loaded machine; the last windows then close this long
    # after the end of the stream.
    idle = settings.monitor.model_copy(update={"idle_partition_s": 15.0})
    settings = settings.model_copy(update={"monitor": idle})
    events = uninterrupted.events
    held_up: list[Event] = [
        e
        for e in events
        if isinstance(e, DurationPredicted) and pd.Timestamp(e.event_time) >= PREDICTOR_DOWN_AT
    ]
    held_ids = {id(e) for e in held_up}
    on_time = [e for e in events if id(e) not in held_ids]
    kafka_settings, delayed = settings.kafka, settings.topics
    produce(kafka_settings, delayed, on_time)
    monitor = CountingMonitor(settings, uninterrupted.reference)
    with monitor:
        deadline = time.monotonic() + PROGRESS_TIMEOUT_S
        while monitor.polled < len(on_time):  # it has read all there is while the predictor is down
            assert monitor.error is None and time.monotonic() < deadline, monitor.error
            time.sleep(0.05)
        produce(kafka_settings, delayed, held_up)  # the restarted predictor catches up
        windows = wait_for_windows(kafka_settings, delayed, WINDOWS, PROGRESS_TIMEOUT_S)

    expected = uninterrupted.windows
    changed = {w: changed_fields(expected[w], windows[w]) for w in expected}
    assert not {w: fields for w, fields in changed.items() if fields}, "windows changed"
