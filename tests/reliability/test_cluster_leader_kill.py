"""kill -9 of the broker that leads most partitions, on a 3-broker cluster, mid-stream.

Three KRaft nodes from the same jars (each a broker and a controller voter) on loopback ports,
topics created as the services create them (3 replicas, min.insync.replicas 2, derived from the
cluster), the predictor as a real process (`python -m predictor`) and `ridestream replay` of a
real day of green rides (`python -m producer`). Once predictions flow, the broker leading most
partitions of rides.requested and rides.predictions is killed with SIGKILL and started again
`DOWN_S` later. Afterwards every replayed ride is on rides.requested exactly once (nothing
lost), each has a prediction, and the duplicates stay within one batch (`max_poll_records`) per
disruption, the bound the predictor crash tests use. Neither process may exit: with two of
three replicas left the cluster stays writable, so riding it out is what replication is for.

The figures (rides, lost, duplicates, how long the leaders took to move, predictions to resume,
the killed broker to serve again and to rejoin every ISR) are logged; see them with
`-o log_cli=true`.
"""

from __future__ import annotations

import logging
import re
import time
from collections import Counter
from collections.abc import Iterator
from pathlib import Path

import pytest
from kafka import KafkaAdminClient
from kafka.admin import ConfigResource, ConfigResourceType
from kafka.errors import KafkaError

from predictor.settings import PredictorOptions
from ridestream import kafka_broker
from ridestream.settings import BrokerSettings, KafkaSettings
from ridestream.stream.admin import create_topics
from ridestream.topics import Topics
from tests import tripdata
from tests.reliability.crash import champion_store
from tests.reliability.outage import Service, service_env, wait_until
from tests.reliability.topic_io import read_topic

pytestmark = [pytest.mark.integration, pytest.mark.reliability, pytest.mark.faults]
log = logging.getLogger("tests.cluster_leader_kill")

BROKERS = 3
# Three JVMs share two cores with the services: a small heap each is plenty for this traffic.
HEAP = "256m"
STARTUP_TIMEOUT_S = 150.0
# A full day of real rides (~2,600) replayed at 2,400x: about 36 s of sending, so the replay is
# mid-stream at the kill and sends through the failover.
REPLAY = ("--start", "2021-01-12T00:00", "--end", "2021-01-13T00:00", "--speed", "2400")
KILL_AFTER_PREDICTIONS = 200
DOWN_S = 10.0
PARTITIONS = 4


@pytest.fixture
def cluster(tmp_path: Path) -> Iterator[list[BrokerSettings]]:
    """Three nodes of a cluster of the test's own, on free loopback ports, stopped afterwards."""
    ports = kafka_broker.free_ports(2 * BROKERS)
    base = BrokerSettings(
        data_dir=tmp_path / "kafka",
        heap=HEAP,
        partitions=PARTITIONS,
        startup_timeout_s=STARTUP_TIMEOUT_S,
    )
    nodes = kafka_broker.cluster_nodes(base, list(zip(ports[::2], ports[1::2], strict=True)))
    kafka_broker.start_cluster(nodes)
    try:
        yield nodes
    finally:
        kafka_broker.stop_cluster(nodes)


def leaders(admin: KafkaAdminClient, topics: list[str]) -> Counter[int]:
    """How many partitions of `topics` each broker (node id) leads."""
    return Counter(partition["leader_id"] for partition in partitions_of(admin, topics))


def partitions_of(admin: KafkaAdminClient, topics: list[str]) -> list[dict]:
    """Every partition of `topics` as the cluster describes it. A request that went to the
    broker killed a moment ago fails with a retriable error (its connection drops): asked
    again, the admin client goes to a broker that is alive."""
    deadline = time.monotonic() + 30.0
    while True:
        try:
            return [p for topic in admin.describe_topics(topics) for p in topic["partitions"]]
        except KafkaError as error:
            if not error.retriable or time.monotonic() > deadline:
                raise
            time.sleep(0.5)


def test_killing_the_leading_broker_loses_no_ride(
    cluster: list[BrokerSettings], topic_prefix: str, group_id: str, tmp_path: Path
) -> None:
    green_2021_01 = tripdata.month_file("2021-01")
    kafka = KafkaSettings(bootstrap_servers=kafka_broker.bootstrap_servers(cluster))
    topics = Topics(topic_prefix)
    watched = [topics.rides_requested, topics.rides_predictions]
    create_topics(kafka, topics.all(), partitions=PARTITIONS)
    admin = KafkaAdminClient(**kafka.client_config())

    # -- the cluster's shape: three voters, topics and internal topics replicated -------------
    quorum = admin.describe_metadata_quorum()["topics"][0]["partitions"][0]
    assert sorted(v["replica_id"] for v in quorum["current_voters"]) == [1, 2, 3]
    assert {len(p["replica_nodes"]) for p in partitions_of(admin, watched)} == {3}
    assert {_min_insync(admin, name) for name in watched} == {"2"}

    mlflow = champion_store(tmp_path / "mlflow", "ride-duration-" + topic_prefix.strip("."))
    env = service_env(
        kafka, topic_prefix, mlflow, PREDICTOR__GROUP_ID=group_id, PREDICTOR__LOG_INTERVAL_S="5"
    )
    predictor = Service("predictor", "predictor", env, tmp_path)
    replay = Service("replay", "producer", env, tmp_path, ("--files", str(green_2021_01), *REPLAY))

    def predicted_so_far() -> int:
        return len(read_topic(kafka, topics.rides_predictions, expect=10**9, timeout_s=1.0))

    try:
        predictor.start(ready_line=r"predicting .* as group")
        replay.start()
        wait_until(
            f"{KILL_AFTER_PREDICTIONS} predictions",
            lambda: predicted_so_far() >= KILL_AFTER_PREDICTIONS,
            timeout_s=120,
        )
        internal = partitions_of(admin, ["__consumer_offsets"])
        assert internal, "the predictor's group has no offsets topic"
        assert {len(p["replica_nodes"]) for p in internal} == {3}

        # -- the kill ----------------------------------------------------------------------
        led = leaders(admin, watched)
        victim_id, victim_led = led.most_common(1)[0]
        victim = cluster[victim_id - 1]
        replay_running_at_kill = replay.exited() is None
        at_kill = predicted_so_far()
        killed_at = time.monotonic()
        kafka_broker.kill(victim)

        def leaders_moved() -> bool:
            return all(p["leader_id"] not in (victim_id, -1) for p in partitions_of(admin, watched))

        failover_s = wait_until("new leaders for every partition", leaders_moved, timeout_s=60)
        resumed_s = wait_until(
            "predictions after the kill", lambda: predicted_so_far() > at_kill, timeout_s=90
        )
        time.sleep(max(0.0, DOWN_S - (time.monotonic() - killed_at)))
        restarted_at = time.monotonic()
        kafka_broker.start(victim, cluster=cluster)
        serving_s = time.monotonic() - restarted_at

        def back_in_sync() -> bool:
            return all(victim_id in p["isr_nodes"] for p in partitions_of(admin, watched))

        in_sync_s = serving_s + wait_until("the restarted broker in every ISR", back_in_sync, 90)

        # -- afterwards: the replay ends, every ride gets its prediction -------------------
        wait_until("the replay ends", lambda: replay.exited() is not None, timeout_s=180)
        summary = replay.log_file.read_text(errors="replace")
        assert replay.exit_codes == [0], f"the replay reported lost sends:\n{summary[-2000:]}"
        sent = re.search(rf"{re.escape(topics.rides_requested)} ([\d,]+)", summary)
        assert sent, summary[-2000:]
        replayed = int(sent.group(1).replace(",", ""))
        requested = Counter(
            record.key
            for record in read_topic(kafka, topics.rides_requested, expect=replayed, timeout_s=60)
        )
        predicted: Counter[bytes] = Counter()

        def all_predicted() -> bool:
            predicted.clear()
            predicted.update(
                r.key for r in read_topic(kafka, topics.rides_predictions, expect=10**9)
            )
            return set(predicted) >= set(requested)

        wait_until("a prediction for every ride", all_predicted, timeout_s=120)
        assert predictor.exited() is None, predictor.logs()[-3000:]
    finally:
        admin.close()
        predictor.stop()
        replay.stop()

    lost = replayed - len(requested)
    duplicates = sum(predicted.values()) - len(predicted)
    # As the crash tests: one batch per disruption (here one, the broker's crash).
    bound = PredictorOptions().max_poll_records
    log.info(
        "leader kill -9 on a %d-broker cluster: broker %d (led %d of %d partitions of %s) killed "
        "at %d predictions, replay %s; leaders moved in %.1f s, predictions resumed %.1f s "
        "after the kill (on the partitions other brokers led), broker down %.0f s, serving %.1f s "
        "after its restart and back in every ISR %.1f s after it; %d rides replayed, "
        "%d on rides.requested (lost %d, doubled %d), every "
        "one predicted, %d duplicate prediction(s) (bound %d); predictor runs %d, replay exit %s",
        BROKERS,
        victim_id,
        victim_led,
        sum(led.values()),
        " and ".join(watched),
        at_kill,
        "mid-stream" if replay_running_at_kill else "already finished",
        failover_s,
        resumed_s,
        restarted_at - killed_at,
        serving_s,
        in_sync_s,
        replayed,
        len(requested),
        lost,
        sum(requested.values()) - len(requested),
        duplicates,
        bound,
        predictor.runs,
        replay.exit_codes,
    )
    assert replay_running_at_kill, "the replay had ended before the kill: nothing was tested"
    assert lost == 0
    assert sum(requested.values()) == len(requested), "a ride was sent twice"
    assert set(predicted) == set(requested)
    assert duplicates <= bound, f"{duplicates} duplicates > one batch"
    assert predictor.runs == 1


def _min_insync(admin: KafkaAdminClient, topic: str) -> str | None:
    """The topic's min.insync.replicas as the broker reports it."""
    resource = ConfigResource(ConfigResourceType.TOPIC, topic, {"min.insync.replicas": None})
    described = admin.describe_configs([resource])["topic"][topic]
    return described.get("min.insync.replicas", {}).get("value")
