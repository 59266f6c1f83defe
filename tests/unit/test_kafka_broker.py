"""The local broker's configuration and its errors, with no broker and no JVM."""

from __future__ import annotations

import re
import shutil
import socket
import subprocess
import sys
from pathlib import Path

import pytest

from ridestream import kafka_broker
from ridestream.kafka_broker import BrokerError
from ridestream.kafka_broker.cli import main
from ridestream.settings import BrokerSettings


def _properties(text: str) -> dict[str, str]:
    pairs = (line.split("=", 1) for line in text.splitlines() if line and not line.startswith("#"))
    return {key: value for key, value in pairs}


@pytest.fixture
def settings(tmp_path: Path) -> BrokerSettings:
    return BrokerSettings(port=29092, controller_port=29093, data_dir=tmp_path, partitions=6)


def test_server_properties_bind_loopback_only_on_the_configured_ports(
    settings: BrokerSettings,
) -> None:
    properties = _properties(kafka_broker.server_properties(settings))

    assert properties["listeners"] == "PLAINTEXT://127.0.0.1:29092,CONTROLLER://127.0.0.1:29093"
    assert properties["advertised.listeners"] == "PLAINTEXT://127.0.0.1:29092"
    assert properties["controller.quorum.bootstrap.servers"] == "127.0.0.1:29093"
    hosts = re.findall(r"//([^:]+):", properties["listeners"] + properties["advertised.listeners"])
    assert set(hosts) == {"127.0.0.1"}


def test_server_properties_describe_one_kraft_node_with_single_replicas(
    settings: BrokerSettings,
) -> None:
    properties = _properties(kafka_broker.server_properties(settings))

    assert properties["process.roles"] == "broker,controller"
    assert properties["num.partitions"] == "6"
    assert properties["group.initial.rebalance.delay.ms"] == "0"
    assert Path(properties["log.dirs"]).is_relative_to(settings.data_dir.absolute())
    replication = {k: v for k, v in properties.items() if k.endswith("replication.factor")}
    assert replication and set(replication.values()) == {"1"}


def test_extra_properties_override_defaults_and_add_new_keys(settings: BrokerSettings) -> None:
    extra = {"num.partitions": "1", "sasl.enabled.mechanisms": "PLAIN"}

    properties = _properties(kafka_broker.server_properties(settings, extra))

    assert properties["num.partitions"] == "1"
    assert properties["sasl.enabled.mechanisms"] == "PLAIN"


def test_cluster_nodes_take_every_second_port_and_a_data_dir_each(tmp_path: Path) -> None:
    settings = BrokerSettings(data_dir=tmp_path, brokers=3)

    nodes = kafka_broker.cluster_nodes(settings)

    assert [(n.port, n.controller_port) for n in nodes] == [
        (19092, 19093),
        (19094, 19095),
        (19096, 19097),
    ]
    assert [n.data_dir for n in nodes] == [tmp_path / f"node-{i}" for i in (1, 2, 3)]
    assert (
        kafka_broker.bootstrap_servers(nodes) == "127.0.0.1:19092,127.0.0.1:19094,127.0.0.1:19096"
    )
    assert kafka_broker.cluster_nodes(BrokerSettings(data_dir=tmp_path)) == [
        BrokerSettings(data_dir=tmp_path)
    ]


def test_cluster_node_properties_name_three_voters_and_replicate_internal_topics(
    tmp_path: Path,
) -> None:
    nodes = kafka_broker.cluster_nodes(
        BrokerSettings(data_dir=tmp_path), ports=[(40001, 40002), (40003, 40004), (40005, 40006)]
    )

    properties = _properties(kafka_broker.server_properties(nodes[1], cluster=nodes))

    assert properties["node.id"] == "2"
    assert properties["listeners"] == "PLAINTEXT://127.0.0.1:40003,CONTROLLER://127.0.0.1:40004"
    assert properties["controller.quorum.voters"] == (
        "1@127.0.0.1:40002,2@127.0.0.1:40004,3@127.0.0.1:40006"
    )
    assert "controller.quorum.bootstrap.servers" not in properties
    replication = {k: v for k, v in properties.items() if k.endswith("replication.factor")}
    assert replication and set(replication.values()) == {"3"}
    min_isr = {k: v for k, v in properties.items() if k.endswith("min.isr")}
    assert min_isr and set(min_isr.values()) == {"2"}
    assert properties["min.insync.replicas"] == "2"


def test_cli_refuses_a_bad_broker_count_in_one_line(capsys: pytest.CaptureFixture[str]) -> None:
    with pytest.raises(SystemExit) as exited:
        main(["up", "--brokers", "0"])

    assert exited.value.code == 2
    assert "'0' is not a number of brokers from 1 to 9" in capsys.readouterr().err


def test_non_loopback_host_is_refused(tmp_path: Path) -> None:
    with pytest.raises(BrokerError, match="not a loopback address"):
        kafka_broker.server_properties(BrokerSettings(host="0.0.0.0", data_dir=tmp_path))


def test_kafka_version_constant_matches_the_pom() -> None:
    pom = kafka_broker.POM.read_text()

    assert f"<kafka.version>{kafka_broker.KAFKA_VERSION}</kafka.version>" in pom


def test_missing_java_gives_one_line_error_saying_what_to_install(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.delenv("JAVA_HOME", raising=False)
    monkeypatch.setattr(shutil, "which", lambda name: None)

    with pytest.raises(BrokerError) as error:
        kafka_broker.find_java()

    assert "\n" not in str(error.value)
    assert "install a Java 17+" in str(error.value)


def test_missing_mvn_gives_one_line_error_when_jars_are_not_cached(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    monkeypatch.setattr(shutil, "which", lambda name: None)

    with pytest.raises(BrokerError) as error:
        kafka_broker.resolve_jars(tmp_path / "jars")

    assert "\n" not in str(error.value)
    assert "install Apache Maven" in str(error.value)


def test_cli_prints_the_error_on_one_line_and_exits_1(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    monkeypatch.setenv("RIDESTREAM_BROKER__DATA_DIR", str(tmp_path / "kafka"))
    monkeypatch.setenv("RIDESTREAM_BROKER__PORT", "1")  # nothing listens there
    monkeypatch.delenv("JAVA_HOME", raising=False)
    monkeypatch.setattr(shutil, "which", lambda name: None)

    exit_code = main(["up"])

    assert exit_code == 1
    err_lines = [line for line in capsys.readouterr().err.splitlines() if "java" in line]
    assert err_lines == [
        "ridestream broker up: java not found: install a Java 17+ runtime "
        "(e.g. `apt install openjdk-17-jre-headless`) to run Apache Kafka"
    ]


@pytest.mark.parametrize(
    ("output", "major"),
    [
        ('openjdk version "17.0.15" 2025-04-15', 17),
        ('java version "1.8.0_382"', 8),
        ('openjdk version "21" 2023-09-19', 21),
        ("no java here", None),
    ],
)
def test_java_major_version_is_read_from_java_version_output(
    output: str, major: int | None
) -> None:
    assert kafka_broker.java_major_version(output) == major


def test_jar_kafka_version_comes_from_the_kafka_jar_name(tmp_path: Path) -> None:
    for name in ("kafka-clients-4.1.2.jar", "kafka_2.13-4.1.2.jar", "scala-library-2.13.16.jar"):
        (tmp_path / name).touch()

    assert kafka_broker.jar_kafka_version(tmp_path) == "4.1.2"
    assert kafka_broker.jar_kafka_version(tmp_path / "missing") is None


def test_status_is_stopped_without_a_pid_file(settings: BrokerSettings) -> None:
    state = kafka_broker.status(settings)

    assert not state.running
    assert state.pid is None
    assert state.address == "127.0.0.1:29092"


def test_status_ignores_a_stale_pid_file(settings: BrokerSettings) -> None:
    gone = subprocess.run(
        [sys.executable, "-c", "import os; print(os.getpid())"],
        capture_output=True,
        text=True,
        check=True,
    )
    (settings.data_dir / "broker.pid").write_text(gone.stdout)

    assert kafka_broker.status(settings).pid is None
    assert kafka_broker.stop(settings) is False


def test_start_refuses_a_port_another_process_listens_on(tmp_path: Path) -> None:
    with socket.create_server(("127.0.0.1", 0)) as other:
        port = other.getsockname()[1]
        settings = BrokerSettings(port=port, controller_port=port + 1, data_dir=tmp_path)

        with pytest.raises(BrokerError, match="already in use by another process"):
            kafka_broker.start(settings)
