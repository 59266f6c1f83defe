"""The local Apache Kafka from jars: a real JVM broker on free loopback ports in a tmp dir."""

from __future__ import annotations

import os
import socket

import pytest
from kafka import KafkaAdminClient

from ridestream import kafka_broker
from ridestream.kafka_broker import BrokerError
from ridestream.settings import BrokerSettings

pytestmark = pytest.mark.integration


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    return True


def test_broker_starts_once_serves_and_stops(local_broker_settings: BrokerSettings) -> None:
    settings = local_broker_settings
    try:
        started = kafka_broker.start(settings)

        assert started.running
        assert started.pid is not None
        assert started.kafka_version is not None
        assert started.kafka_version.startswith("4.1.")
        assert kafka_broker.status(settings) == started
        admin = KafkaAdminClient(bootstrap_servers=[started.address])
        try:
            assert [b["port"] for b in admin.describe_cluster()["brokers"]] == [settings.port]
        finally:
            admin.close()

        again = kafka_broker.start(settings)

        assert again.pid == started.pid

        assert kafka_broker.stop(settings) is True
        stopped = kafka_broker.status(settings)

        assert not stopped.running
        assert stopped.pid is None
        assert not _alive(started.pid)
        assert kafka_broker.stop(settings) is False
    finally:
        kafka_broker.stop(settings)


def test_broker_that_cannot_bind_its_controller_port_raises_with_its_log(
    local_broker_settings: BrokerSettings,
) -> None:
    settings = local_broker_settings
    try:
        with (
            socket.create_server((settings.host, settings.controller_port)),
            pytest.raises(BrokerError, match="exited during startup") as error,
        ):
            kafka_broker.start(settings)

        assert "Address already in use" in str(error.value)  # the log tail names the cause
        assert kafka_broker.status(settings).pid is None
    finally:
        kafka_broker.stop(settings)
