"""Windowing, watermark, lateness, join expiry and restart safety of the monitor (no broker)."""

from __future__ import annotations

import itertools
import random
import zlib
from collections.abc import Sequence
from dataclasses import replace
from datetime import UTC, datetime, timedelta

import numpy as np
import pandas as pd
import pytest

from monitor.alerts import AlertRules
from monitor.drift import prepare_reference
from monitor.join import IdlePartitions, WindowedJoin
from monitor.pipeline import (
    MonitorConfig,
    MonitoredPrediction,
    MonitorPipeline,
    restore,
)
from monitor.windows import WindowSpec, parse_duration
from ridestream.events import (
    DriftDetected,
    DriftWindowClosed,
    DurationPredicted,
    ModelPromoted,
    decode,
    encode,
)
from ridestream.features import PREDICTION, TARGET
from ridestream.stream.messages import Outgoing, Received
from ridestream.topics import Topics
from tests.synthetic import completion

T0 = datetime(2021, 1, 4)
TOPICS = Topics("t.")
PRED, DONE = TOPICS.rides_predictions, TOPICS.rides_completed
LATENESS = timedelta(hours=2)
SPECS = [WindowSpec(timedelta(hours=6)), WindowSpec(timedelta(hours=1), rides=97)]


def prediction(ride_id: str, pickup: datetime, distance: float = 2.0) -> DurationPredicted:
    return DurationPredicted(
        ride_id=ride_id,
        event_time=pickup,
        predicted_duration_min=5.0 + 2.0 * distance,
        model_name="m",
        model_version="1",
        features={
            # crc32, not hash(): a str's hash changes from one process to the next.
            "PULocationID": str(1 + zlib.crc32(ride_id.encode()) % 5),
            "DOLocationID": str(1 + zlib.crc32(ride_id[::-1].encode()) % 5),
            "PU_DO": "1_1",
            "trip_distance": distance,
            "pickup_hour": pickup.hour,
            "pickup_weekday": pickup.weekday(),
        },
        produced_at=datetime(2026, 1, 1, tzinfo=UTC),
    )


def ride_stream(rides: int, seed: int = 0, span_h: float = 72.0) -> list:
    """Predictions and completions of `rides` rides over `span_h` hours, in event-time order."""
    rng = random.Random(seed)
    events: list = []
    for i in range(rides):
        pickup = T0 + timedelta(minutes=rng.uniform(0, span_h * 60))
        duration = rng.choice([rng.uniform(2, 40), rng.uniform(2, 40), 0.5, 90.0, 400.0])
        distance = round(rng.uniform(0.5, 10), 2)
        events.append(prediction(f"r{i}", pickup, distance))
        events.append(completion(f"r{i}", pickup, duration))
    events.sort(key=lambda e: (e.event_time, e.ride_id))
    return events


def partition_logs(events: list, partitions: int = 3) -> dict[tuple[str, int], list]:
    """Spread events over partitions of the two topics by ride id (as a keyed producer does)."""
    logs: dict[tuple[str, int], list] = {}
    for event in events:
        topic = PRED if isinstance(event, DurationPredicted) else DONE
        tp = (topic, int(event.ride_id[1:]) % partitions)
        logs.setdefault(tp, []).append(event)
    return logs


def reference_provider(version: str | None):
    rng = np.random.default_rng(0)
    distance = rng.uniform(0.5, 10, 2000).round(2)
    frame = pd.DataFrame(
        {
            "trip_distance": distance,
            "PULocationID": [str(1 + i % 5) for i in range(2000)],
            "DOLocationID": [str(1 + i % 5) for i in range(2000)],
            PREDICTION: 5.0 + 2.0 * distance,
            TARGET: 5.0 + 2.0 * distance,
        }
    )
    return prepare_reference(frame, version or "1", 3.0)


class Run:
    """Drives a pipeline like StreamLoop does: poll a batch, handle, produce, commit."""

    def __init__(self, logs: dict, config: MonitorConfig, seed: int, produced: list | None = None):
        self.logs = logs
        self.config = config
        self.rng = random.Random(seed)
        self.produced: list[Outgoing] = [] if produced is None else produced
        self.committed: dict = {}
        self.pipeline = self._pipeline()

    def _pipeline(self) -> MonitorPipeline:
        published = [
            (decode(DriftWindowClosed, m.value), dict(m.headers))
            for m in self.produced
            if m.topic == TOPICS.drift_windows
        ]
        return MonitorPipeline(
            self.config, TOPICS, reference_provider, restore(self.config, published)
        )

    def run(self, crash_after_batches: int | None = None, commit_on_crash: bool = True) -> None:
        position = {tp: self.committed.get(tp, 0) for tp in self.logs}
        batches = 0
        while any(position[tp] < len(self.logs[tp]) for tp in self.logs):
            # A fetch: a random partition gives a random run of records (uneven, like Kafka).
            tp = self.rng.choice([tp for tp in self.logs if position[tp] < len(self.logs[tp])])
            size = self.rng.randint(1, 400)
            start = position[tp]
            records = [
                Received(tp[0], tp[1], offset, self.logs[tp][offset])
                for offset in range(start, min(start + size, len(self.logs[tp])))
            ]
            position[tp] = start + len(records)
            # A finished log has no producer left to wait for: it is idle.
            finished = [p for p in self.logs if position[p] >= len(self.logs[p])]
            self.produced.extend(self.pipeline.handle(records, self.logs.keys(), finished))
            batches += 1
            crashing = crash_after_batches is not None and batches >= crash_after_batches
            if crashing and not commit_on_crash:
                break
            safe = self.pipeline.join.commit_gate({tp: position[tp]})
            self.committed.update(safe)
            if crashing:
                break

    def restart(self) -> None:
        self.pipeline = self._pipeline()


def windows_of(produced: Sequence[Outgoing]) -> dict[str, bytes]:
    found: dict[str, bytes] = {}
    for message in produced:
        if message.topic == TOPICS.drift_windows:
            key = message.key.decode()
            assert found.get(key, message.value) == message.value, (
                f"{key} published twice, differently"
            )
            found[key] = message.value
    return found


def test_parse_duration_accepts_days_hours_minutes_and_refuses_junk():
    assert parse_duration("1d") == timedelta(days=1)
    assert parse_duration("6h") == timedelta(hours=6)
    assert parse_duration("30m") == timedelta(minutes=30)
    for junk in ("", "0h", "1w", "-1d", "h"):
        with pytest.raises(ValueError):
            parse_duration(junk)


def test_window_of_a_ride_is_the_window_of_its_pickup_time():
    spec = WindowSpec(timedelta(hours=6))
    assert spec.slice_start(datetime(2021, 1, 5, 13, 59)) == datetime(2021, 1, 5, 12)
    assert spec.time_window_id(datetime(2021, 1, 5, 12)) == "6h:2021-01-05T12:00"
    join = WindowedJoin(spec, LATENESS)
    pickup = datetime(2021, 1, 5, 11, 50)
    join.add(("c", 0), 0, completion("a", pickup, 30.0))  # drop-off in the next window
    join.add(("p", 0), 0, prediction("a", pickup))
    join.add(("p", 0), 1, prediction("b", datetime(2021, 1, 5, 20)))
    (window,) = join.close(datetime(2021, 1, 5, 12, 0))
    assert window.window_id == "6h:2021-01-05T06:00"
    assert [item.ride.ride_id for item in window.items] == ["a"]
    assert not window.items[0].expired


def test_window_closes_only_when_the_watermark_passes_its_end():
    spec = WindowSpec(timedelta(days=1))
    join = WindowedJoin(spec, LATENESS)
    join.add(("p", 0), 0, prediction("a", datetime(2021, 1, 4, 10)))
    join.add(("p", 0), 1, prediction("b", datetime(2021, 1, 5, 1, 59)))
    assert join.close(join.watermark()) == []  # watermark 23:59 of the 4th
    join.add(("p", 0), 2, prediction("c", datetime(2021, 1, 5, 2, 0)))
    (window,) = join.close(join.watermark())
    assert window.window_id == "1d:2021-01-04T00:00"


def test_watermark_is_the_slowest_partition_still_being_read():
    join = WindowedJoin(WindowSpec(timedelta(days=1)), LATENESS)
    join.add(("p", 0), 0, prediction("a", datetime(2021, 1, 9)))
    join.add(("p", 1), 0, prediction("b", datetime(2021, 1, 4, 3)))
    partitions = [("p", 0), ("p", 1), ("p", 2)]
    assert join.watermark(partitions) is None  # partition 2 not seen yet
    assert join.watermark(partitions, idle=[("p", 2)]) == datetime(2021, 1, 4, 1)
    everything = partitions
    assert join.watermark(partitions, idle=everything) == datetime(2021, 1, 8, 22)


def test_a_partition_read_to_its_end_holds_the_watermark_until_it_has_been_idle_a_while():
    # rides.predictions paused (predictor restarting) while rides.completed goes on.
    join = WindowedJoin(WindowSpec(timedelta(days=1)), LATENESS)
    predictions, completions = ("pred", 0), ("done", 0)
    join.add(predictions, 0, prediction("a", datetime(2021, 1, 5, 12)))
    join.add(completions, 0, completion("z", datetime(2021, 1, 9), 10.0))
    idle = IdlePartitions(idle_s=60.0)
    positions = {predictions: 1, completions: 1}
    both = [predictions, completions]
    assert idle.update(positions, at_end=both, now_s=1000.0) == []
    assert idle.update(positions, at_end=both, now_s=1059.0) == []
    held = join.watermark(both, idle.update(positions, at_end=[predictions], now_s=1059.0))
    assert held == datetime(2021, 1, 5, 10)  # the paused predictions still hold it
    # A minute with no new prediction: idle; the completions alone move the watermark.
    positions[completions] = 2
    assert idle.update(positions, at_end=both, now_s=1060.0) == [predictions]
    assert join.watermark(both, [predictions]) == datetime(2021, 1, 8, 22, 10)
    # A new prediction makes the partition hold the watermark again.
    positions[predictions] = 2
    assert idle.update(positions, at_end=both, now_s=1061.0) == []


def test_prediction_and_completion_that_never_meet_expire_and_are_counted():
    join = WindowedJoin(WindowSpec(timedelta(days=1)), LATENESS)
    join.add(("p", 0), 0, prediction("only-predicted", datetime(2021, 1, 4, 10)))
    join.add(("c", 0), 0, completion("only-completed", datetime(2021, 1, 4, 11), 10.0))
    join.add(("p", 0), 1, prediction("joined", datetime(2021, 1, 4, 12)))
    join.add(("c", 0), 1, completion("joined", datetime(2021, 1, 4, 12), 10.0))
    (window,) = join.close(datetime(2021, 1, 5, 0, 0))
    assert {i.ride.ride_id: i.expired for i in window.items if i.ride} == {
        "only-predicted": True,
        "only-completed": True,
        "joined": False,
    }
    assert sum(i.is_ride for i in window.items) == 2  # a completion alone is no ride
    assert join.open_rides == 0  # the state is bounded: nothing stays after the close


def test_completion_past_the_lateness_is_late_in_the_window_of_its_drop_off():
    pipeline = MonitorPipeline(
        MonitorConfig(WindowSpec(timedelta(days=1))), TOPICS, reference_provider
    )
    pickup = datetime(2021, 1, 4, 23, 0)
    batch = [
        Received(PRED, 0, 0, prediction("long", pickup)),
        Received(DONE, 0, 0, completion("long", pickup, 200.0)),  # drop-off 02:20 on the 5th
        Received(PRED, 0, 1, prediction("x", datetime(2021, 1, 5, 3))),
        Received(PRED, 0, 2, prediction("y", datetime(2021, 1, 6, 3))),
    ]
    everything = {(r.topic, r.partition) for r in batch}
    out = pipeline.handle(batch, everything, idle=everything)
    windows = [decode(DriftWindowClosed, m.value) for m in out if m.topic == TOPICS.drift_windows]
    assert [(w.window_id, w.rides, w.late, w.expired) for w in windows] == [
        ("1d:2021-01-04T00:00", 1, 0, 1),  # the prediction waited in vain
        ("1d:2021-01-05T00:00", 1, 1, 1),  # the completion is late, counted here
    ]


def test_event_of_a_closed_window_is_counted_late_not_added():
    join = WindowedJoin(WindowSpec(timedelta(days=1)), LATENESS)
    join.add(("p", 0), 0, prediction("a", datetime(2021, 1, 4, 10)))
    join.add(("p", 0), 1, prediction("b", datetime(2021, 1, 6, 10)))
    (_first,) = join.close(join.watermark())
    join.add(("p", 1), 0, prediction("straggler", datetime(2021, 1, 4, 11)))
    assert join.late_total == 1
    windows = join.close(datetime(2021, 1, 8))
    assert [(w.window_id, sum(i.late for i in w.items)) for w in windows] == [
        ("1d:2021-01-06T00:00", 1)  # the first open window at the time
    ]


@pytest.mark.parametrize(
    "spec", [WindowSpec(timedelta(hours=6)), WindowSpec(timedelta(hours=1), rides=97)]
)
def test_windows_are_the_same_for_any_partition_interleaving_and_disorder(spec):
    events = ride_stream(1500)
    config = MonitorConfig(spec, LATENESS)
    baseline = None
    for seed in range(4):
        logs = partition_logs(events, partitions=3 + seed % 2)
        if seed >= 2:  # disorder inside each partition, within 30 min (< the lateness)
            rng = random.Random(seed)
            for tp, log in logs.items():
                logs[tp] = sorted(
                    log, key=lambda e: e.event_time + timedelta(minutes=rng.uniform(0, 30))
                )
        run = Run(logs, config, seed)
        run.run()
        windows = windows_of(run.produced)
        assert len(windows) >= 5
        if baseline is None:
            baseline = windows
        assert windows == baseline


def test_count_windows_hold_exactly_the_given_number_of_rides_in_pickup_order():
    events = ride_stream(1000)
    config = MonitorConfig(WindowSpec(timedelta(hours=1), rides=100), LATENESS)
    run = Run(partition_logs(events), config, 1)
    run.run()
    windows = [decode(DriftWindowClosed, v) for v in windows_of(run.produced).values()]
    assert windows and all(w.rides == 100 for w in windows)
    ordered = sorted(windows, key=lambda w: w.window_id)
    assert [w.window_id for w in ordered] == [f"100r:{i:08d}" for i in range(len(ordered))]
    assert all(a.event_time <= b.window_start for a, b in itertools.pairwise(ordered))


@pytest.mark.parametrize(
    "spec", [WindowSpec(timedelta(hours=6)), WindowSpec(timedelta(hours=1), rides=97)]
)
@pytest.mark.parametrize("commit_on_crash", [True, False])
def test_restart_at_any_point_publishes_the_same_windows_as_an_uninterrupted_run(
    spec, commit_on_crash
):
    events = ride_stream(1200, seed=3)
    config = MonitorConfig(spec, LATENESS)
    logs = partition_logs(events)
    uninterrupted = Run(logs, config, seed=7)
    uninterrupted.run()
    expected = windows_of(uninterrupted.produced)
    for crash_after in (1, 8, 15, 30):
        run = Run(logs, config, seed=crash_after)
        run.run(crash_after_batches=crash_after, commit_on_crash=commit_on_crash)
        run.restart()
        run.run(crash_after_batches=crash_after // 2 + 1, commit_on_crash=commit_on_crash)
        run.restart()
        run.run()
        assert windows_of(run.produced) == expected, f"crash after {crash_after} batches"


def test_commit_gate_holds_back_offsets_of_rides_in_open_windows():
    join = WindowedJoin(WindowSpec(timedelta(days=1)), LATENESS)
    join.add(("p", 0), 10, prediction("a", datetime(2021, 1, 4, 10)))
    join.add(("p", 0), 11, prediction("b", datetime(2021, 1, 5, 10)))
    assert join.commit_gate({("p", 0): 12, ("q", 0): 5}) == {("p", 0): 10, ("q", 0): 5}
    join.close(datetime(2021, 1, 5, 1))
    assert join.commit_gate({("p", 0): 12}) == {("p", 0): 11}


def alerts_of(produced: Sequence[Outgoing]) -> dict[str, bytes]:
    return {m.key.decode(): m.value for m in produced if m.topic == TOPICS.drift_alerts}


def test_restart_rebuilds_debounce_and_cooldown_so_alerts_match_an_uninterrupted_run():
    events = ride_stream(1200, seed=5)
    rules = AlertRules(debounce_windows=2, cooldown_windows=2, min_window_rides=0)
    config = MonitorConfig(WindowSpec(timedelta(hours=3)), LATENESS, rules=rules)
    logs = partition_logs(events)
    uninterrupted = Run(logs, config, seed=2)
    uninterrupted.run()
    expected = alerts_of(uninterrupted.produced)
    assert len(expected) >= 2
    for crash_after in (5, 12, 25):
        run = Run(logs, config, seed=crash_after)
        run.run(crash_after_batches=crash_after, commit_on_crash=False)
        run.restart()
        run.run()
        assert alerts_of(run.produced) == expected, f"crash after {crash_after} batches"


def versioned_reference(version: str | None):
    reference = reference_provider(version)
    return replace(reference, version=version or "1")


def test_a_promoted_champion_becomes_the_reference_and_ends_the_cooldown():
    config = MonitorConfig(
        WindowSpec(timedelta(days=1)),
        LATENESS,
        rules=AlertRules(cooldown_windows=10, min_window_rides=0),
    )
    pipeline = MonitorPipeline(config, TOPICS, versioned_reference)
    everything = [(PRED, 0)]

    def day(n: int) -> list[Received]:
        # Far-off distances: every window drifts against the reference.
        return [
            Received(
                PRED, 0, n * 100 + i, prediction(f"d{n}-{i}", T0 + timedelta(days=n, hours=i), 50.0)
            )
            for i in range(0, 24, 2)
        ]

    promoted = ModelPromoted(
        promotion_id="p2",
        event_time=datetime(2026, 1, 1, tzinfo=UTC),
        model_name="m",
        version="2",
        previous_version="1",
        reason="drift",
    )
    outputs = []
    for n in range(4):
        batch = day(n)
        if n == 2:
            batch.insert(0, Received(TOPICS.models_updates, 0, 0, promoted))
        outputs += pipeline.handle(batch, everything, everything)
    windows = [
        decode(DriftWindowClosed, m.value) for m in outputs if m.topic == TOPICS.drift_windows
    ]
    alerts = [decode(DriftDetected, m.value) for m in outputs if m.topic == TOPICS.drift_alerts]
    # Windows that close after the promotion use the new reference; the first of them may
    # alert again at once (new champion), the next is in cooldown again.
    assert [(w.window_id, w.reference_version) for w in windows] == [
        ("1d:2021-01-04T00:00", "1"),
        ("1d:2021-01-05T00:00", "2"),
        ("1d:2021-01-06T00:00", "2"),
    ]
    assert [a.window_id for a in alerts] == ["1d:2021-01-04T00:00", "1d:2021-01-05T00:00"]


def test_prediction_without_its_drift_features_fails_decoding_for_the_dead_letters():
    good = prediction("a", T0)
    assert MonitoredPrediction.model_validate_json(encode(good)).ride_id == "a"
    features = {k: v for k, v in good.features.items() if k != "DOLocationID"}
    bad = good.model_copy(update={"features": features})
    with pytest.raises(ValueError, match="DOLocationID"):
        MonitoredPrediction.model_validate_json(encode(bad))
