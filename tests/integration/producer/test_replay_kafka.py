"""Replays into the real broker: every event lands once, on its topic, keyed by the ride id."""

from __future__ import annotations

import time
from collections import Counter
from pathlib import Path

import pytest
from kafka.partitioner.default import murmur2

from producer.__main__ import main
from producer.replay import ReplayOptions
from producer.service import run
from producer.settings import ProducerSettings
from ridestream.events import RideCompleted, RideRequested, decode
from ridestream.settings import KafkaSettings
from ridestream.stream.clients import build_consumer
from tests import tripdata

pytestmark = pytest.mark.integration


@pytest.fixture
def january() -> Path:
    return tripdata.month_file("2021-01")


def consume_all(
    settings: KafkaSettings, group_id: str, topics: list[str], expected: int, timeout_s: float = 30
) -> list:
    consumer = build_consumer(settings, group_id=group_id, topics=topics)
    records: list = []
    deadline = time.monotonic() + timeout_s
    try:
        while len(records) < expected and time.monotonic() < deadline:
            for batch in consumer.poll(timeout_ms=500, max_records=20_000).values():
                records += batch
        # Anything beyond `expected` would be a duplicate: give it a moment to show up.
        for batch in consumer.poll(timeout_ms=1_000).values():
            records += batch
    finally:
        consumer.close()
    return records


def test_replaying_20000_rides_puts_one_request_and_one_completion_per_ride_on_the_topics(
    kafka_settings: KafkaSettings, topic_prefix: str, group_id: str, january: Path
) -> None:
    settings = ProducerSettings(kafka=kafka_settings, topic_prefix=topic_prefix)

    stats, sink = run(settings, [january], ReplayOptions(limit_rides=20_000), progress=False)

    rides = 20_000 - sum(stats.skipped.values())
    assert sink.failed == 0
    assert (stats.rows_read, stats.requested, stats.completed) == (20_000, rides, rides)
    topics = settings.topics
    records = consume_all(
        kafka_settings, group_id, [topics.rides_requested, topics.rides_completed], 2 * rides
    )
    by_topic = Counter(record.topic for record in records)
    assert by_topic == {topics.rides_requested: rides, topics.rides_completed: rides}
    partitions = len({r.partition for r in records if r.topic == topics.rides_requested})
    for record in records:
        model = RideRequested if record.topic == topics.rides_requested else RideCompleted
        event = decode(model, record.value)
        assert record.key == event.ride_id.encode()
        assert record.partition == (murmur2(record.key) & 0x7FFFFFFF) % partitions
    keys = {record.key for record in records if record.topic == topics.rides_requested}
    assert len(keys) == rides
    assert all(key.startswith(b"green_tripdata_2021-01:") for key in keys)
    assert int(max(keys, key=lambda k: int(k.split(b":")[1])).split(b":")[1]) < 20_000


def test_the_replay_command_through_plain_send_exits_zero_with_a_summary(
    kafka_bootstrap: str,
    kafka_settings: KafkaSettings,
    topic_prefix: str,
    group_id: str,
    january: Path,
    monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
) -> None:
    monkeypatch.setenv("RIDESTREAM_PRODUCER__DIRECT_APPEND", "false")
    argv = ["--files", str(january), "--limit", "1000", "--no-progress"]
    argv += ["--bootstrap-servers", kafka_bootstrap, "--topic-prefix", topic_prefix]

    code = main(argv)

    out = capsys.readouterr().out
    assert code == 0
    assert "rows read      1,000" in out
    settings = ProducerSettings(kafka=kafka_settings, topic_prefix=topic_prefix)
    sent = int(out.split("events sent")[1].split()[0].replace(",", ""))
    records = consume_all(kafka_settings, group_id, [settings.topics.rides_requested], sent // 2)
    assert len(records) == sent // 2 > 990


def test_a_broker_that_does_not_answer_fails_the_replay_in_one_line(
    january: Path, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("RIDESTREAM_KAFKA__BOOTSTRAP_TIMEOUT_MS", "1000")
    code = main(["--files", str(january), "--limit", "10", "--bootstrap-servers", "127.0.0.1:9"])

    err = capsys.readouterr().err.strip().splitlines()
    assert code == 1
    assert err[-1].startswith("ridestream replay: nothing answers at 127.0.0.1:9")
