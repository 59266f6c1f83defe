"""The broker's server.properties: one KRaft broker and controller, on loopback only."""

from __future__ import annotations

import ipaddress
from collections.abc import Mapping
from pathlib import Path

from ridestream.kafka_broker.runtime import KAFKA_VERSION, BrokerError
from ridestream.settings import BrokerSettings


def server_properties(
    settings: BrokerSettings, extra_properties: Mapping[str, str] | None = None
) -> str:
    """The broker's server.properties: one KRaft broker+controller on loopback.

    `extra_properties` are added last and win over the defaults, e.g. a SASL listener.
    """
    _require_loopback(settings.host)
    host, data_dir = settings.host, settings.data_dir.absolute()
    properties: dict[str, str] = {
        "process.roles": "broker,controller",
        "node.id": "1",
        "controller.quorum.bootstrap.servers": f"{host}:{settings.controller_port}",
        "listeners": f"PLAINTEXT://{host}:{settings.port},CONTROLLER://{host}:{settings.controller_port}",
        "advertised.listeners": f"PLAINTEXT://{host}:{settings.port}",
        "controller.listener.names": "CONTROLLER",
        "inter.broker.listener.name": "PLAINTEXT",
        "listener.security.protocol.map": "CONTROLLER:PLAINTEXT,PLAINTEXT:PLAINTEXT",
        "log.dirs": str(data_dir / "data"),
        "num.partitions": str(settings.partitions),
        # One node: every internal topic has one replica.
        "offsets.topic.replication.factor": "1",
        "transaction.state.log.replication.factor": "1",
        "transaction.state.log.min.isr": "1",
        "share.coordinator.state.topic.replication.factor": "1",
        "share.coordinator.state.topic.min.isr": "1",
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
