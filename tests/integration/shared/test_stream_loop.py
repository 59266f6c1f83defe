"""The Kafka edge on a real broker: processing, dead letters, commit order, transactions."""

from __future__ import annotations

import logging
import subprocess
import sys
import textwrap
import threading
import time
import uuid
from datetime import datetime, timedelta
from typing import Any

import kafka
import pytest
from kafka import KafkaAdminClient, KafkaConsumer, KafkaProducer
from kafka.partitioner.default import murmur2 as kafka_murmur2

from ridestream.events import RideRequested, encode
from ridestream.settings import KafkaSettings
from ridestream.stream.admin import create_topics
from ridestream.stream.clients import build_consumer, build_producer
from ridestream.stream.fastpath import CHECKED_KAFKA_PYTHON, appends_directly
from ridestream.stream.loop import StreamLoop
from ridestream.stream.messages import Outgoing, Received
from ridestream.stream.produce import send_all, send_many
from ridestream.stream.topic_reader import count_records, read_records
from ridestream.topics import dead_letter_topic

pytestmark = pytest.mark.integration

POISON = [
    b"\xff\xfe not utf-8",
    b'{"ride_id": "p1"}',
    b'{"ride_id":"p2","event_time":"2021-01-01T00:00:00","pu_location_id":999,'
    b'"do_location_id":1,"trip_distance":1.0}',
]


def ride(n: int) -> RideRequested:
    return RideRequested(
        ride_id=f"ride-{n}",
        event_time=datetime(2021, 1, 1) + timedelta(minutes=n),
        pu_location_id=1 + n % 265,
        do_location_id=1 + (n * 7) % 265,
        trip_distance=float(n % 20),
    )


def echo_to(topic: str):
    """A handler that answers every ride with one keyed message on `topic`."""

    def handle(batch: list[Received]) -> list[Outgoing]:
        return [Outgoing.of(topic, item.event) for item in batch]

    return handle


def produce(settings: KafkaSettings, topic: str, values: list[tuple[bytes | None, bytes]]) -> None:
    producer = KafkaProducer(**settings.client_config())
    for key, value in values:
        producer.send(topic, key=key, value=value)
    producer.flush()
    producer.close()


def read_all(
    settings: KafkaSettings, topic: str, *, expect: int, committed_only: bool = True
) -> list:
    """Every record on `topic`, read until `expect` arrived or 15 s passed."""
    consumer = KafkaConsumer(
        topic,
        **settings.client_config(),
        group_id=None,
        auto_offset_reset="earliest",
        isolation_level="read_committed" if committed_only else "read_uncommitted",
        consumer_timeout_ms=3_000,
    )
    records: list = []
    deadline = datetime.now() + timedelta(seconds=15)
    while len(records) < expect and datetime.now() < deadline:
        for batch in consumer.poll(timeout_ms=500).values():
            records.extend(batch)
    # One more short poll: more than `expect` (duplicates) must be seen too.
    for batch in consumer.poll(timeout_ms=1_000).values():
        records.extend(batch)
    consumer.close()
    return records


def rides_on_a_source(
    settings: KafkaSettings, topic_prefix: str, *, rides: int, partitions: int
) -> tuple[str, str, list[RideRequested]]:
    """A source topic holding `rides` valid rides, and a sink and dead-letter topic beside it."""
    source, sink = f"{topic_prefix}in", f"{topic_prefix}out"
    create_topics(settings, [source, sink, dead_letter_topic(source)], partitions=partitions)
    produced = [ride(n) for n in range(rides)]
    produce(settings, source, [(r.key.encode(), encode(r)) for r in produced])
    return source, sink, produced


def make_loop(
    settings: KafkaSettings,
    source: str,
    group_id: str,
    *,
    exactly_once: bool = False,
    **options: Any,
) -> StreamLoop:
    consumer = build_consumer(
        settings, group_id=group_id, topics=[source], exactly_once=exactly_once
    )
    transactional_id = f"test-{uuid.uuid4().hex[:8]}" if exactly_once else None
    producer = build_producer(settings, transactional_id=transactional_id)
    return StreamLoop(
        consumer=consumer,
        producer=producer,
        service="test-service",
        decoders={source: RideRequested},
        exactly_once=exactly_once,
        poll_timeout_ms=300,
        **options,
    )


def run_until(loop: StreamLoop, handle, valid: int, timeout_s: float = 45.0) -> None:
    """Run the loop until `valid` events were handled (or fail after `timeout_s`)."""
    stop = threading.Event()
    timer = threading.Timer(timeout_s, stop.set)
    timer.start()

    def stop_when_done(_batch) -> None:
        if loop.stats.valid >= valid:
            stop.set()

    try:
        loop.run(handle, stop, on_batch=stop_when_done)
    finally:
        timer.cancel()
        loop.consumer.close()
        loop.producer.close()
    assert loop.stats.valid >= valid, f"only {loop.stats.valid} of {valid} events handled"


def test_valid_events_are_processed_and_poison_goes_to_the_dead_letter_topic(
    client_settings: KafkaSettings, topic_prefix: str, group_id: str
) -> None:
    source, sink = f"{topic_prefix}in", f"{topic_prefix}out"
    create_topics(client_settings, [source, sink, dead_letter_topic(source)], partitions=2)
    rides = [ride(n) for n in range(20)]
    messages = [(r.key.encode(), encode(r)) for r in rides[:10]]
    messages += [(b"bad-%d" % i, value) for i, value in enumerate(POISON)]
    messages += [(r.key.encode(), encode(r)) for r in rides[10:]]
    produce(client_settings, source, messages)

    loop = make_loop(client_settings, source, group_id)
    run_until(loop, echo_to(sink), valid=20)

    out = read_all(client_settings, sink, expect=20)
    assert sorted(r.key for r in out) == sorted(r.key.encode() for r in rides)
    dead = read_all(client_settings, dead_letter_topic(source), expect=3)
    assert sorted(r.value for r in dead) == sorted(POISON)
    for record in dead:
        headers = dict(record.headers)
        assert headers["error.type"] in (b"ValidationError", b"PoisonRecordError")
        assert headers["error.message"]
        assert headers["source.topic"] == source.encode()
        assert int(headers["source.partition"]) in (0, 1)
        assert int(headers["source.offset"]) >= 0
        assert headers["service"] == b"test-service"
    assert loop.stats.dead_letters == 3


CRASH_BEFORE_COMMIT = textwrap.dedent(
    """
    import os, sys, threading
    from ridestream.events import RideRequested
    from ridestream.stream.clients import build_consumer, build_producer
    from ridestream.stream.loop import StreamLoop
    from ridestream.stream.messages import Outgoing
    from ridestream.settings import KafkaSettings

    bootstrap, source, sink, group, client = sys.argv[1:6]
    settings = KafkaSettings(bootstrap_servers=bootstrap, client=client)
    # The broker's minimum session timeout, so the dead member leaves the group quickly.
    consumer = build_consumer(settings, group_id=group, topics=[source], session_timeout_ms=6000)
    consumer.commit = lambda **_: os._exit(9)  # die like kill -9: outputs flushed, no commit
    loop = StreamLoop(consumer=consumer, producer=build_producer(settings), service="crashy",
                      decoders={source: RideRequested}, poll_timeout_ms=300)
    loop.run(lambda batch: [Outgoing.of(sink, r.event) for r in batch], threading.Event())
    """
)


def test_a_consumer_killed_before_committing_gets_its_batch_again(
    client_settings: KafkaSettings, topic_prefix: str, group_id: str
) -> None:
    source, sink, rides = rides_on_a_source(client_settings, topic_prefix, rides=50, partitions=1)

    arguments = [client_settings.bootstrap_servers, source, sink, group_id, client_settings.client]
    crashed = subprocess.run(
        [sys.executable, "-c", CRASH_BEFORE_COMMIT, *arguments],
        timeout=60,
        capture_output=True,
    )
    assert crashed.returncode == 9, crashed.stderr.decode()[-2000:]
    first = read_all(client_settings, sink, expect=50)
    assert len(first) == 50  # the whole batch was produced before the crash

    loop = make_loop(client_settings, source, group_id)
    run_until(loop, echo_to(sink), valid=50)

    out = read_all(client_settings, sink, expect=100)
    keys = [r.key for r in out]
    # At-least-once: the uncommitted batch came again; every ride twice, none lost.
    assert sorted(set(keys)) == sorted(r.key.encode() for r in rides)
    assert len(keys) == 100


def test_exactly_once_an_aborted_batch_is_invisible_to_read_committed(
    client_settings: KafkaSettings, topic_prefix: str, group_id: str
) -> None:
    source, sink, rides = rides_on_a_source(client_settings, topic_prefix, rides=30, partitions=1)

    loop = make_loop(client_settings, source, group_id, exactly_once=True)
    loop.producer.init_transactions()

    def fail_offsets(*_args: object) -> None:
        raise RuntimeError("crash inside the transaction, after producing")

    loop.producer.send_offsets_to_transaction = fail_offsets  # type: ignore[method-assign]
    with pytest.raises(RuntimeError, match="crash inside the transaction"):
        for _ in range(20):  # poll until the first non-empty batch hits the failure
            loop.run_once(echo_to(sink))
    loop.consumer.close()
    loop.producer.close()

    # The aborted outputs were written to the log ...
    assert len(read_all(client_settings, sink, expect=1, committed_only=False)) >= 1
    # ... but a read_committed reader never sees them.
    assert read_all(client_settings, sink, expect=1) == []

    again = make_loop(client_settings, source, group_id, exactly_once=True)
    run_until(again, echo_to(sink), valid=30)
    committed = read_all(client_settings, sink, expect=30)
    assert sorted(r.key for r in committed) == sorted(r.key.encode() for r in rides)


def assert_sent_order_kept_per_partition(records: list[Any], outputs: list[Outgoing]) -> None:
    """Within each partition, the records were read in the order their values were sent."""
    sent_index = {o.value: n for n, o in enumerate(outputs)}
    for partition in {r.partition for r in records}:
        order = [sent_index[r.value] for r in records if r.partition == partition]
        assert order == sorted(order), f"partition {partition} out of order"


def test_send_all_puts_keys_where_the_default_partitioner_does_in_order_with_dead_letters(
    kafka_settings: KafkaSettings, topic_prefix: str
) -> None:
    # send_all appends keyed messages straight to the accumulator on partitions it computes;
    # messages with headers or without a key go through KafkaProducer.send in between.
    topic = f"{topic_prefix}out"
    create_topics(kafka_settings, [topic], partitions=3)
    outputs = [Outgoing(topic, f"k{n}".encode(), b"v%d" % n) for n in range(300)]
    outputs.insert(100, Outgoing(topic, b"dead", b"v-dead", (("error.type", b"X"),)))
    outputs.insert(200, Outgoing(topic, None, b"v-no-key"))
    producer = build_producer(kafka_settings)
    try:
        assert send_all(producer, outputs) == 302
    finally:
        producer.close()

    records = read_all(kafka_settings, topic, expect=302)
    assert sorted(r.value for r in records) == sorted(o.value for o in outputs)
    for record in records:
        if record.key is not None:
            assert record.partition == (kafka_murmur2(record.key) & 0x7FFFFFFF) % 3
    assert_sent_order_kept_per_partition(records, outputs)
    (dead,) = [r for r in records if r.key == b"dead"]
    assert dict(dead.headers) == {"error.type": b"X"}


def test_send_all_on_an_unchecked_kafka_python_warns_and_produces_through_send(
    kafka_settings: KafkaSettings,
    topic_prefix: str,
    monkeypatch: pytest.MonkeyPatch,
    caplog: pytest.LogCaptureFixture,
) -> None:
    # Another kafka-python than the pinned one: its internals may differ, so the fast path
    # stands aside (loudly) and KafkaProducer.send does the work, with the same result.
    monkeypatch.setattr(kafka, "__version__", f"{CHECKED_KAFKA_PYTHON}-unchecked-{topic_prefix}")
    topic = f"{topic_prefix}out"
    create_topics(kafka_settings, [topic], partitions=3)
    outputs = [Outgoing(topic, f"k{n}".encode(), b"v%d" % n) for n in range(200)]
    outputs.insert(100, Outgoing(topic, b"dead", b"v-dead", (("error.type", b"X"),)))
    producer = build_producer(kafka_settings)
    try:
        with caplog.at_level(logging.WARNING, logger="ridestream.stream.fastpath"):
            assert not appends_directly(producer)
            assert send_all(producer, outputs) == 201
    finally:
        producer.close()

    warnings = [r for r in caplog.records if r.name == "ridestream.stream.fastpath"]
    assert len(warnings) == 1 and warnings[0].levelno == logging.WARNING
    assert "KafkaProducer.send" in warnings[0].getMessage()
    records = read_all(kafka_settings, topic, expect=201)
    assert sorted(r.value for r in records) == sorted(o.value for o in outputs)
    for record in records:
        assert record.partition == (kafka_murmur2(record.key) & 0x7FFFFFFF) % 3
    assert_sent_order_kept_per_partition(records, outputs)


def test_send_all_fills_batch_after_batch_in_order(
    kafka_settings: KafkaSettings, topic_prefix: str
) -> None:
    # Batches of ~2 kB: the fast path fills one, the accumulator starts the next, many times
    # over per partition, while the sender drains the full ones.
    topic = f"{topic_prefix}out"
    create_topics(kafka_settings, [topic], partitions=2)
    outputs = [Outgoing(topic, f"k{n}".encode(), b"v%05d" % n + b"." * 100) for n in range(3_000)]
    producer = build_producer(kafka_settings, batch_size=2_048, linger_ms=0)
    try:
        futures = send_many(producer, outputs)
        producer.flush()
        offsets = [future.get(timeout=10).offset for future in futures]
    finally:
        producer.close()

    records = read_all(kafka_settings, topic, expect=3_000)
    assert len(records) == 3_000
    assert sorted(r.value for r in records) == sorted(o.value for o in outputs)
    assert_sent_order_kept_per_partition(records, outputs)
    # Each future reports its record's own offset.
    sent_index = {o.value: n for n, o in enumerate(outputs)}
    assert [offsets[sent_index[r.value]] for r in records] == [r.offset for r in records]


def test_a_commit_in_background_is_finished_when_the_loop_stops(
    client_settings: KafkaSettings, topic_prefix: str, group_id: str
) -> None:
    source, sink, rides = rides_on_a_source(client_settings, topic_prefix, rides=40, partitions=2)
    # Several batches, so each commit overlaps the next batch.
    loop = make_loop(client_settings, source, group_id, max_records=7, commit_in_background=True)
    run_until(loop, echo_to(sink), valid=40)

    assert sorted(r.key for r in read_all(client_settings, sink, expect=40)) == sorted(
        r.key.encode() for r in rides
    )
    admin = KafkaAdminClient(**client_settings.client_config())
    try:
        committed = admin.list_group_offsets(group_id)[group_id]
    finally:
        admin.close()
    assert sum(o.offset for o in committed.values()) == 40


def test_a_ride_lands_on_the_same_partition_whichever_client_wrote_it(
    kafka_settings: KafkaSettings, topic_prefix: str
) -> None:
    # The monitor joins rides.predictions with rides.completed partition by partition: a ride
    # must land on the same partition whichever client (librdkafka's murmur2_random, the fast
    # path's numpy murmur2) wrote it.
    topics = {client: f"{topic_prefix}{client}" for client in ("kafka-python", "confluent")}
    create_topics(kafka_settings, list(topics.values()), partitions=5)
    rides = [ride(n) for n in range(200)]
    for client, topic in topics.items():
        producer = build_producer(kafka_settings.model_copy(update={"client": client}))
        try:
            send_all(producer, [Outgoing.of(topic, r) for r in rides])
        finally:
            producer.close()

    partitions = {
        client: {r.key: r.partition for r in read_all(kafka_settings, topic, expect=200)}
        for client, topic in topics.items()
    }
    assert len(partitions["confluent"]) == 200
    assert partitions["confluent"] == partitions["kafka-python"]
    assert len(set(partitions["confluent"].values())) == 5
    for key, partition in partitions["confluent"].items():
        assert partition == (kafka_murmur2(key) & 0x7FFFFFFF) % 5


def test_a_transactional_topic_is_read_to_its_end_without_aborted_records(
    client_settings: KafkaSettings, topic_prefix: str
) -> None:
    # The topic readers stop at the end offsets; the last offsets of a transactional topic are
    # commit and abort markers, which the position must pass on both clients.
    topic = f"{topic_prefix}out"
    create_topics(client_settings, [topic], partitions=1)
    producer = build_producer(client_settings, transactional_id=f"t-{topic_prefix}")
    try:
        producer.init_transactions()
        for n, commit in enumerate([True, False, True]):
            producer.begin_transaction()
            send_all(producer, [Outgoing(topic, b"k%d" % n, b"v%d" % n)])
            if commit:
                producer.commit_transaction()
            else:
                producer.abort_transaction()
    finally:
        producer.close()

    started = time.monotonic()
    values = [r.value for r in read_records(client_settings, topic, must_reach_end=True)]
    assert values == [b"v0", b"v2"]
    assert time.monotonic() - started < 20  # reached the end, not the 30 s timeout
    assert count_records(client_settings, topic) == 6  # 3 records, 3 markers


def test_a_consumer_joining_the_group_takes_partitions_and_no_ride_is_lost(
    client_settings: KafkaSettings, topic_prefix: str, group_id: str
) -> None:
    # A second loop joins while the first is mid-stream: the group rebalances, each loop ends
    # up with partitions of its own, and every ride is answered (at-least-once across it).
    source, sink, rides = rides_on_a_source(
        client_settings, topic_prefix, rides=1_000, partitions=2
    )
    answered: set[bytes] = set()
    stop = threading.Event()

    def slow_echo(batch: list[Received]) -> list[Outgoing]:
        time.sleep(0.05)  # slow enough for the second loop to join before the end
        outputs = echo_to(sink)(batch)
        answered.update(o.key for o in outputs if o.key is not None)
        if len(answered) == len(rides):
            stop.set()
        return outputs

    errors: list[BaseException] = []

    def run(loop: StreamLoop) -> None:
        try:
            loop.run(slow_echo, stop)
        except BaseException as error:  # shown by the assertion below
            errors.append(error)
            stop.set()

    loops = [make_loop(client_settings, source, group_id, max_records=5) for _ in range(2)]
    timer = threading.Timer(90, stop.set)
    timer.start()
    first = threading.Thread(target=run, args=(loops[0],))
    first.start()
    deadline = time.monotonic() + 60
    while loops[0].stats.valid < 20 and time.monotonic() < deadline:
        time.sleep(0.1)
    second = threading.Thread(target=run, args=(loops[1],))
    second.start()
    first.join(120)
    second.join(120)
    timer.cancel()
    for loop in loops:
        loop.consumer.close()
        loop.producer.close()

    assert not errors, errors
    assert all(loop.stats.valid > 0 for loop in loops), [loop.stats.valid for loop in loops]
    out = read_all(client_settings, sink, expect=len(rides))
    assert {r.key for r in out} == {r.key.encode() for r in rides}
