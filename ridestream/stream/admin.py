"""Topic administration: create the topics a service needs and wait for their leaders."""

from __future__ import annotations

import contextlib
import logging
import time
from collections.abc import Iterable, Mapping

from kafka import KafkaAdminClient
from kafka.admin import NewTopic
from kafka.errors import TopicAlreadyExistsError

from ridestream.settings import KafkaSettings

log = logging.getLogger(__name__)


def create_topics(
    settings: KafkaSettings,
    names: Iterable[str],
    *,
    partitions: int = 4,
    config: Mapping[str, str] | None = None,
) -> list[str]:
    """Create the topics that do not exist yet; returns the names it created.

    Their replication factor and `min.insync.replicas` come from the settings when set, else
    from the cluster's size (`replication_for`); `config` wins over both."""
    admin = KafkaAdminClient(**settings.client_config())
    try:
        existing = set(admin.list_topics())
        wanted = [name for name in dict.fromkeys(names) if name not in existing]
        if not wanted:
            return []
        brokers = len(admin.describe_cluster()["brokers"])
        replicas, min_insync = replication_for(
            brokers, settings.replication_factor, settings.min_insync_replicas
        )
        topic_config = {"min.insync.replicas": str(min_insync), **(config or {})}
        new = [
            NewTopic(
                name,
                num_partitions=partitions,
                replication_factor=replicas,
                topic_configs=topic_config,
            )
            for name in wanted
        ]
        # Created meanwhile by another service: that is what we wanted.
        with contextlib.suppress(TopicAlreadyExistsError):
            admin.create_topics(new)
        _wait_for_leaders(admin, wanted, timeout_s=10.0)
        return wanted
    finally:
        admin.close()


def replication_for(
    brokers: int, replication_factor: int | None = None, min_insync_replicas: int | None = None
) -> tuple[int, int]:
    """The replication factor and `min.insync.replicas` of a new topic on `brokers` brokers.

    Three replicas with two in sync: with acks=all a write survives the loss of any one broker
    and the topic stays writable while one broker is down. A smaller cluster gets one replica
    per broker and min.insync.replicas one below that (1 on one broker, where nothing else is
    possible). Explicit values win; the minimum never exceeds the replicas.
    """
    replicas = replication_factor or min(3, max(1, brokers))
    min_insync = min_insync_replicas or max(1, replicas - 1)
    return replicas, min(min_insync, replicas)


def _wait_for_leaders(admin: KafkaAdminClient, names: list[str], timeout_s: float) -> None:
    """Return once every partition of `names` has a leader (or after `timeout_s`), so that a
    consumer subscribing next finds them in its first metadata and is assigned partitions."""
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        described = admin.describe_topics(names)
        if len(described) == len(names) and all(
            topic["error_code"] == 0
            and topic["partitions"]
            and all(p["leader_id"] >= 0 for p in topic["partitions"])
            for topic in described
        ):
            return
        time.sleep(0.1)
    log.warning("topics %s have no leader after %.0f s", ", ".join(names), timeout_s)
