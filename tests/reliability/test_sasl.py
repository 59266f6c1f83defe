"""Authenticated Kafka: SASL/SCRAM-SHA-512 over SASL_PLAINTEXT, on a broker of this module's own.

The broker has a SASL_PLAINTEXT listener for clients; its controller and inter-broker listeners
stay PLAINTEXT on loopback, and the SCRAM user is created through the PLAINTEXT listener with
the AlterUserScramCredentials admin API (KIP-554; stored in the KRaft metadata log), exactly what
`kafka-configs.sh --alter --add-config 'SCRAM-SHA-512=[password=...]'` does on a real cluster.
"""

from __future__ import annotations

import logging
import uuid
from collections.abc import Iterator
from pathlib import Path

import pytest
from kafka import KafkaAdminClient
from kafka.admin import ScramMechanism, UserScramCredentialUpsertion
from kafka.errors import KafkaError
from pydantic import SecretStr

from ridestream import kafka_broker
from ridestream.events import RideRequested, encode
from ridestream.kafka_broker import free_ports
from ridestream.settings import KafkaSettings
from ridestream.stream.admin import create_topics
from ridestream.stream.clients import build_consumer, build_producer
from ridestream.stream.errors import explain_connection_error
from ridestream.stream.loop import StreamLoop
from ridestream.stream.redaction import redact_client_secrets
from ridestream.topics import Topics, dead_letter_topic
from tests.conftest import local_broker_settings_in
from tests.reliability.payloads import POISON_CORPUS, valid_ride
from tests.reliability.topic_io import (
    METADATA_MAX_AGE_MS,
    echo_to,
    headers_of,
    produce_raw,
    read_topic,
    run_until_polled,
)

pytestmark = [pytest.mark.integration, pytest.mark.reliability]

USERNAME = "ridestream-svc"
SERVICE = "sasl-test"
# A wrong login is only reported when bootstrapping gives up (kafka-python's default is 30 s).
BOOTSTRAP_TIMEOUT_MS = 2_000
SCRAM_JAAS = "org.apache.kafka.common.security.scram.ScramLoginModule required;"


def sasl_listener_properties(host: str, port: int, controller_port: int, sasl_port: int) -> dict:
    """server.properties additions: a SASL_PLAINTEXT listener with SCRAM-SHA-512 for clients."""
    return {
        "listeners": (
            f"PLAINTEXT://{host}:{port},CONTROLLER://{host}:{controller_port},"
            f"SASL_PLAINTEXT://{host}:{sasl_port}"
        ),
        "advertised.listeners": f"PLAINTEXT://{host}:{port},SASL_PLAINTEXT://{host}:{sasl_port}",
        "listener.security.protocol.map": (
            "CONTROLLER:PLAINTEXT,PLAINTEXT:PLAINTEXT,SASL_PLAINTEXT:SASL_PLAINTEXT"
        ),
        "sasl.enabled.mechanisms": "SCRAM-SHA-512",
        "listener.name.sasl_plaintext.scram-sha-512.sasl.jaas.config": SCRAM_JAAS,
    }


@pytest.fixture(scope="module")
def sasl_kafka(tmp_path_factory: pytest.TempPathFactory) -> Iterator[KafkaSettings]:
    """Client settings for the SASL listener of a broker started for this module only."""
    broker = local_broker_settings_in(Path(tmp_path_factory.mktemp("sasl-kafka")))
    (sasl_port,) = free_ports(1)
    extra = sasl_listener_properties(broker.host, broker.port, broker.controller_port, sasl_port)
    kafka_broker.start(broker, extra)
    try:
        password = f"pw-{uuid.uuid4().hex}"  # unique, so a search of the logs cannot miss it
        admin = KafkaAdminClient(bootstrap_servers=[broker.bootstrap])
        try:
            errors = admin.alter_user_scram_credentials(
                [UserScramCredentialUpsertion(USERNAME, ScramMechanism.SCRAM_SHA_512, password)]
            )
        finally:
            admin.close()
        assert errors == {USERNAME: None}
        yield KafkaSettings(
            bootstrap_servers=f"{broker.host}:{sasl_port}",
            security_protocol="SASL_PLAINTEXT",
            sasl_mechanism="SCRAM-SHA-512",
            sasl_username=USERNAME,
            sasl_password=SecretStr(password),
        )
    finally:
        kafka_broker.stop(broker)


# The Kafka clients (RIDESTREAM_KAFKA__CLIENT) every test here runs with.
CLIENTS = ["kafka-python", "confluent"]


def secret_of(settings: KafkaSettings) -> str:
    assert settings.sasl_password is not None
    return settings.sasl_password.get_secret_value()


@pytest.mark.parametrize("client", CLIENTS)
def test_authenticated_loop_processes_rides_and_dead_letters_poison_without_logging_the_password(
    sasl_kafka: KafkaSettings,
    client: str,
    topic_prefix: str,
    group_id: str,
    caplog: pytest.LogCaptureFixture,
) -> None:
    sasl_kafka = sasl_kafka.model_copy(update={"client": client})
    # Every logger at DEBUG, kafka-python's wire-level ones included (another test's
    # configure_logging may have left "kafka" at WARNING).
    caplog.set_level(logging.DEBUG)
    caplog.set_level(logging.DEBUG, logger="kafka")
    redact_client_secrets()  # as every service does at startup
    topics = Topics(topic_prefix)
    source, sink = topics.rides_requested, topics.rides_predictions
    create_topics(sasl_kafka, [source, sink, dead_letter_topic(source)], partitions=2)
    rides = [valid_ride(n) for n in range(20)]
    poison = [p for p in POISON_CORPUS if p.name in {"invalid-utf8", "zone-266", "tombstone"}]
    records = [(ride.key.encode(), encode(ride)) for ride in rides]
    records += [(p.key, p.value) for p in poison]
    produce_raw(sasl_kafka, source, records)
    loop = StreamLoop(
        consumer=build_consumer(
            sasl_kafka, group_id=group_id, topics=[source], metadata_max_age_ms=METADATA_MAX_AGE_MS
        ),
        producer=build_producer(sasl_kafka),
        service=SERVICE,
        decoders={source: RideRequested},
        poll_timeout_ms=300,
    )
    try:
        stats = run_until_polled(loop, echo_to(sink), len(records))
    finally:
        loop.consumer.close()
        loop.producer.close()

    assert (stats.valid, stats.dead_letters) == (len(rides), len(poison))
    outputs = read_topic(sasl_kafka, sink, expect=len(rides))
    assert sorted(r.key for r in outputs) == sorted(ride.key.encode() for ride in rides)
    letters = read_topic(sasl_kafka, dead_letter_topic(source), expect=len(poison))
    assert sorted(r.key for r in letters) == sorted(p.key for p in poison)
    assert {headers_of(r)["service"] for r in letters} == {SERVICE}
    if client == "kafka-python":
        # The capture saw kafka-python at DEBUG and its SASL exchange: the search below means
        # something (librdkafka logs to stderr, not through logging).
        assert any(
            r.name.startswith("kafka") and r.levelno == logging.DEBUG for r in caplog.records
        )
        assert any(r.name.startswith("kafka.net.sasl") for r in caplog.records)
    assert secret_of(sasl_kafka) not in caplog.text


@pytest.mark.parametrize("client", CLIENTS)
def test_wrong_password_is_refused_with_a_one_line_explanation(
    sasl_kafka: KafkaSettings, client: str, group_id: str, caplog: pytest.LogCaptureFixture
) -> None:
    sasl_kafka = sasl_kafka.model_copy(update={"client": client})
    caplog.set_level(logging.DEBUG)
    caplog.set_level(logging.DEBUG, logger="kafka")
    redact_client_secrets()  # as every service does at startup
    wrong_password = f"wrong-{uuid.uuid4().hex}"
    wrong = sasl_kafka.model_copy(update={"sasl_password": SecretStr(wrong_password)})

    with pytest.raises(KafkaError) as refused:
        build_consumer(wrong, group_id=group_id, bootstrap_timeout_ms=BOOTSTRAP_TIMEOUT_MS)
    line = explain_connection_error(refused.value, wrong)

    assert "\n" not in line
    assert line.startswith(f"Kafka at {wrong.bootstrap_servers} ")
    assert f"SCRAM-SHA-512 as user '{USERNAME}'" in line
    assert "RIDESTREAM_KAFKA__SASL_PASSWORD" in line
    assert wrong_password not in line and wrong_password not in caplog.text
    assert secret_of(sasl_kafka) not in caplog.text


@pytest.mark.parametrize("client", CLIENTS)
def test_client_without_sasl_is_told_the_broker_wants_it(
    sasl_kafka: KafkaSettings, client: str
) -> None:
    plain = KafkaSettings(bootstrap_servers=sasl_kafka.bootstrap_servers, client=client)

    with pytest.raises(KafkaError) as refused:
        build_producer(plain, bootstrap_timeout_ms=BOOTSTRAP_TIMEOUT_MS)
    line = explain_connection_error(refused.value, plain)

    assert "\n" not in line
    assert "RIDESTREAM_KAFKA__SECURITY_PROTOCOL" in line


@pytest.mark.parametrize("client", CLIENTS)
def test_unreachable_broker_is_told_apart_from_a_refused_login(client: str) -> None:
    (closed_port,) = free_ports(1)  # free a moment ago: nothing listens there
    nowhere = KafkaSettings(
        client=client,
        bootstrap_servers=f"127.0.0.1:{closed_port}",
        security_protocol="SASL_PLAINTEXT",
        sasl_mechanism="SCRAM-SHA-512",
        sasl_username=USERNAME,
        sasl_password=SecretStr(f"pw-{uuid.uuid4().hex}"),
    )

    with pytest.raises(KafkaError) as failed:
        build_producer(nowhere, bootstrap_timeout_ms=1_000)
    line = explain_connection_error(failed.value, nowhere)

    assert line.startswith(f"nothing answers at 127.0.0.1:{closed_port}")
    assert "RIDESTREAM_KAFKA__BOOTSTRAP_SERVERS" in line
