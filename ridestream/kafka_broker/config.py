"""The broker's server.properties: KRaft nodes that are broker and controller in one, on
loopback only; one node alone, or one node of a cluster whose nodes are all controller voters."""

from __future__ import annotations

import ipaddress
from collections.abc import Mapping, Sequence
from pathlib import Path

from ridestream.kafka_broker.runtime import KAFKA_VERSION, BrokerError
from ridestream.settings import BrokerSettings
from ridestream.stream.admin import replication_for


def server_properties(
    settings: BrokerSettings,
    extra_properties: Mapping[str, str] | None = None,
    cluster: Sequence[BrokerSettings] = (),
) -> str:
    """The broker's server.properties: a KRaft broker+controller on loopback.

    With `cluster` (every node's settings, this one among them) the node is one of a cluster:
    node id = its place in `cluster` + 1, every node a controller voter, internal topics
    replicated. `extra_properties` are added last and win over the defaults, e.g. a SASL
    listener.
    """
    _require_loopback(settings.host)
    host, data_dir = settings.host, settings.data_dir.absolute()
    if cluster:
        node_id = [node.data_dir.absolute() for node in cluster].index(data_dir) + 1
        # A static voter set: every node formats with the same cluster id and no --standalone.
        quorum = {
            "controller.quorum.voters": ",".join(
                f"{n}@{node.host}:{node.controller_port}" for n, node in enumerate(cluster, 1)
            )
        }
    else:
        node_id = 1
        quorum = {"controller.quorum.bootstrap.servers": f"{host}:{settings.controller_port}"}
    # Internal topics (consumer offsets, transactions) are replicated as ridestream's own.
    replicas, min_isr = map(str, replication_for(len(cluster) or 1))
    properties: dict[str, str] = {
        "process.roles": "broker,controller",
        "node.id": str(node_id),
        **quorum,
        "listeners": f"PLAINTEXT://{host}:{settings.port},CONTROLLER://{host}:{settings.controller_port}",
        "advertised.listeners": f"PLAINTEXT://{host}:{settings.port}",
        "controller.listener.names": "CONTROLLER",
        "inter.broker.listener.name": "PLAINTEXT",
        "listener.security.protocol.map": "CONTROLLER:PLAINTEXT,PLAINTEXT:PLAINTEXT",
        "log.dirs": str(data_dir / "data"),
        "num.partitions": str(settings.partitions),
        "offsets.topic.replication.factor": replicas,
        "transaction.state.log.replication.factor": replicas,
        "transaction.state.log.min.isr": min_isr,
        "share.coordinator.state.topic.replication.factor": replicas,
        "share.coordinator.state.topic.min.isr": min_isr,
        # Topics created by a client that names no replication (auto-created ones too).
        "default.replication.factor": replicas,
        "min.insync.replicas": min_isr,
        # The 3 s default only helps groups whose members start together; tests want speed.
        "group.initial.rebalance.delay.ms": "0",
    }
    properties.update(extra_properties or {})
    lines = [
        f"# Written by `ridestream broker up` for Apache Kafka {KAFKA_VERSION}; edits are lost.",
        *(f"{key}={_escape(value)}" for key, value in properties.items()),
    ]
    return "\n".join(lines) + "\n"


def _escape(value: str) -> str:
    return value.replace("\\", "\\\\")  # java.util.Properties reads backslashes as escapes


def _require_loopback(host: str) -> None:
    try:
        loopback = host == "localhost" or ipaddress.ip_address(host).is_loopback
    except ValueError:
        loopback = False
    if not loopback:
        raise BrokerError(f"broker host {host!r} is not a loopback address: use 127.0.0.1")


def read_properties(path: Path) -> dict[str, str]:
    """The key/value pairs of a .properties file (comments and blank lines skipped)."""
    properties: dict[str, str] = {}
    for line in path.read_text().splitlines():
        if line.strip() and not line.lstrip().startswith("#") and "=" in line:
            key, _, value = line.partition("=")
            properties[key.strip()] = value.strip()
    return properties
