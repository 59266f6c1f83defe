"""Shared fixtures: one Kafka broker per session, and each test's own topics and group.

The broker is started only when a test asks for `kafka_bootstrap` (integration tests), from the
first source that works:

1. the address in `RIDESTREAM_TEST_KAFKA` (a broker someone already runs);
2. testcontainers with the `apache/kafka` image, when a Docker daemon answers;
3. the local Apache Kafka from its Maven jars (`ridestream.kafka_broker`), on free ports.

Tests that need real TLC months get them from `tests.tripdata` (which skips them when the data
cannot be had); the run then ends with one line counting those skips.
"""

from __future__ import annotations

import logging
import os
import uuid
from collections.abc import Iterator
from pathlib import Path

import pytest

from ridestream import kafka_broker
from ridestream.settings import BrokerSettings, KafkaSettings
from tests import tripdata

log = logging.getLogger("tests.kafka")

KAFKA_IMAGE = f"apache/kafka:{kafka_broker.KAFKA_VERSION}"
STARTUP_TIMEOUT_S = 120.0  # a cold JVM on a busy 2-core CI runner
_served_by = pytest.StashKey[str]()


def local_broker_settings_in(data_dir: Path) -> BrokerSettings:
    """Settings for a local broker on free ports with its data in `data_dir`."""
    port, controller_port = kafka_broker.free_ports(2)
    return BrokerSettings(
        port=port,
        controller_port=controller_port,
        data_dir=data_dir,
        startup_timeout_s=STARTUP_TIMEOUT_S,
    )


@pytest.fixture
def local_broker_settings(tmp_path: Path) -> BrokerSettings:
    """A not-yet-started local broker of the test's own (free ports, data in tmp_path)."""
    return local_broker_settings_in(tmp_path / "kafka")


@pytest.fixture(scope="session")
def kafka_bootstrap(
    request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[str]:
    """Bootstrap address of the session's Kafka broker, started on first use."""
    external = os.environ.get("RIDESTREAM_TEST_KAFKA")
    if external:
        served_by = f"broker at {external} from RIDESTREAM_TEST_KAFKA ({_api_version(external)})"
        _announce(request.config, served_by)
        yield external
    elif _docker_answers():
        yield from _container_broker(request.config)
    else:
        yield from _local_broker(request.config, tmp_path_factory.mktemp("kafka"))


@pytest.fixture
def topic_prefix() -> str:
    """A prefix no other test uses, so each test has its own topics."""
    return f"t-{uuid.uuid4().hex[:8]}."


@pytest.fixture
def group_id() -> str:
    """A consumer group no other test uses."""
    return f"g-{uuid.uuid4().hex[:8]}"


@pytest.fixture
def kafka_settings(kafka_bootstrap: str) -> KafkaSettings:
    """Client settings pointing at the session's broker."""
    return KafkaSettings(bootstrap_servers=kafka_bootstrap)


# A wrapper that runs first, so its lines come after pytest's own short summary (`-ra`).
@pytest.hookimpl(wrapper=True, tryfirst=True)
def pytest_terminal_summary(terminalreporter: pytest.TerminalReporter) -> Iterator[None]:
    """Say which broker served the run, and how many tests lacked real data (when any did)."""
    yield
    served_by = terminalreporter.config.stash.get(_served_by, None)
    if served_by:
        terminalreporter.write_line(f"kafka: {served_by}")
    no_data = sum(
        1
        for report in terminalreporter.stats.get("skipped", [])
        if isinstance(report.longrepr, tuple) and tripdata.SKIP_REASON in report.longrepr[2]
    )
    if no_data:
        terminalreporter.write_line(tripdata.skip_summary(no_data), yellow=True)


def _announce(config: pytest.Config, served_by: str) -> None:
    config.stash[_served_by] = served_by
    log.info("kafka: %s", served_by)


def _api_version(bootstrap: str) -> str:
    """The broker version as kafka-python infers it from the broker's API versions."""
    from kafka import KafkaAdminClient

    try:
        admin = KafkaAdminClient(bootstrap_servers=bootstrap.split(","), bootstrap_timeout_ms=5000)
    except Exception:  # e.g. the broker wants SASL: only this report line loses detail
        return "Kafka version unknown"
    try:
        # No public accessor in kafka-python 3; this is display only.
        version = admin._manager.broker_version
    finally:
        admin.close()
    return f"Kafka {'.'.join(map(str, version))} API" if version else "Kafka version unknown"


def _docker_answers() -> bool:
    """True when a Docker daemon answers a ping within a few seconds (a client is not enough)."""
    try:
        import docker

        client = docker.from_env(timeout=3)
        try:
            return bool(client.ping())
        finally:
            client.close()
    except Exception:  # no SDK, no socket, no daemon: all mean "no Docker"
        return False


def _container_broker(config: pytest.Config) -> Iterator[str]:
    """apache/kafka in a container, published on a free loopback port."""
    from testcontainers.core.container import DockerContainer
    from testcontainers.core.wait_strategies import LogMessageWaitStrategy

    (host_port,) = kafka_broker.free_ports(1)
    container = (
        DockerContainer(KAFKA_IMAGE)
        .with_envs(
            KAFKA_NODE_ID="1",
            KAFKA_PROCESS_ROLES="broker,controller",
            # Clients use HOST (the published port); the broker reaches itself on BROKER.
            KAFKA_LISTENERS="HOST://0.0.0.0:9092,BROKER://localhost:9094,CONTROLLER://localhost:9093",
            KAFKA_ADVERTISED_LISTENERS=f"HOST://127.0.0.1:{host_port},BROKER://localhost:9094",
            KAFKA_LISTENER_SECURITY_PROTOCOL_MAP="HOST:PLAINTEXT,BROKER:PLAINTEXT,CONTROLLER:PLAINTEXT",
            KAFKA_INTER_BROKER_LISTENER_NAME="BROKER",
            KAFKA_CONTROLLER_LISTENER_NAMES="CONTROLLER",
            KAFKA_CONTROLLER_QUORUM_VOTERS="1@localhost:9093",
            KAFKA_NUM_PARTITIONS=str(BrokerSettings().partitions),
            KAFKA_OFFSETS_TOPIC_REPLICATION_FACTOR="1",
            KAFKA_TRANSACTION_STATE_LOG_REPLICATION_FACTOR="1",
            KAFKA_TRANSACTION_STATE_LOG_MIN_ISR="1",
            KAFKA_SHARE_COORDINATOR_STATE_TOPIC_REPLICATION_FACTOR="1",
            KAFKA_SHARE_COORDINATOR_STATE_TOPIC_MIN_ISR="1",
            KAFKA_GROUP_INITIAL_REBALANCE_DELAY_MS="0",
        )
        .waiting_for(
            LogMessageWaitStrategy("Kafka Server started").with_startup_timeout(
                int(STARTUP_TIMEOUT_S)
            )
        )
    )
    # Published on loopback only (docker-py takes an (ip, port) pair).
    container.ports["9092/tcp"] = ("127.0.0.1", host_port)
    container.start()
    try:
        bootstrap = f"127.0.0.1:{host_port}"
        _announce(config, f"Apache Kafka {KAFKA_IMAGE} container (testcontainers) at {bootstrap}")
        yield bootstrap
    finally:
        container.stop()


def _local_broker(config: pytest.Config, data_dir: Path) -> Iterator[str]:
    """The local Apache Kafka from its Maven jars, stopped when the session ends."""
    settings = local_broker_settings_in(data_dir)
    started = kafka_broker.start(settings)
    try:
        _announce(
            config,
            f"local Apache Kafka {started.kafka_version} from jars at {started.address} "
            f"(pid {started.pid}, log {started.log_file})",
        )
        yield started.address
    finally:
        kafka_broker.stop(settings)


def pytest_configure(config: pytest.Config) -> None:
    """kafka-python logs every connection at INFO: keep failure reports readable."""
    logging.getLogger("kafka").setLevel(logging.WARNING)


@pytest.fixture(params=["kafka-python", "confluent"])
def client_settings(request: pytest.FixtureRequest, kafka_bootstrap: str) -> KafkaSettings:
    """Client settings pointing at the session's broker, once per Kafka client library
    (`RIDESTREAM_KAFKA__CLIENT`): the tests that take it run on both."""
    return KafkaSettings(bootstrap_servers=kafka_bootstrap, client=request.param)
