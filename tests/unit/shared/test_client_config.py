"""Every Kafka setting reaches both clients' configurations (ridestream.stream.client_config)."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import confluent_kafka
import pytest

from ridestream.settings import KafkaSettings
from ridestream.stream.client_config import (
    ADAPTER_KEYS,
    consumer_config,
    librdkafka_config,
    producer_config,
)

# A value unlike the default for every KafkaSettings field, and where it must show up:
# (role, kafka-python keyword, its value, librdkafka property or adapter key, its value).
NON_DEFAULT: dict[str, Any] = {
    "client": "confluent",
    "bootstrap_servers": "10.0.0.1:9092,10.0.0.2:9092",
    "security_protocol": "SASL_SSL",
    "sasl_mechanism": "SCRAM-SHA-512",
    "sasl_username": "rides",
    "sasl_password": "a-real-secret",
    "ssl_cafile": Path("/etc/ridestream/ca.pem"),
    "client_id": "ridestream-test",
    "max_message_bytes": 2**21,
    "request_timeout_ms": 12_345,
    "bootstrap_timeout_ms": 4_321,
    "reconnect_backoff_max_ms": 2_222,
    "session_timeout_ms": 9_000,
    "transaction_timeout_ms": 7_777,
}


def both(keyword: str, value: Any, name: str, librdkafka_value: Any) -> list[tuple]:
    """The same row for the consumer and the producer."""
    return [(role, keyword, value, name, librdkafka_value) for role in ("consumer", "producer")]


SERVERS = ["10.0.0.1:9092", "10.0.0.2:9092"]
CA = "/etc/ridestream/ca.pem"
EXPECTED: dict[str, list[tuple[str, str, Any, str, Any]]] = {
    "bootstrap_servers": both("bootstrap_servers", SERVERS, "bootstrap.servers", ",".join(SERVERS)),
    "security_protocol": both("security_protocol", "SASL_SSL", "security.protocol", "SASL_SSL"),
    "sasl_mechanism": both("sasl_mechanism", "SCRAM-SHA-512", "sasl.mechanism", "SCRAM-SHA-512"),
    "sasl_username": both("sasl_plain_username", "rides", "sasl.username", "rides"),
    "sasl_password": both("sasl_plain_password", "a-real-secret", "sasl.password", "a-real-secret"),
    "ssl_cafile": both("ssl_cafile", CA, "ssl.ca.location", CA),
    "client_id": both("client_id", "ridestream-test", "client.id", "ridestream-test"),
    "max_message_bytes": [
        ("consumer", "max_partition_fetch_bytes", 2**21, "max.partition.fetch.bytes", 2**21),
        ("producer", "max_request_size", 2**21 + 2**16, "message.max.bytes", 2**21 + 2**16),
    ],
    "request_timeout_ms": both("request_timeout_ms", 12_345, "socket.timeout.ms", 12_345),
    # Applied by the confluent adapter from the same configuration (ADAPTER_KEYS).
    "bootstrap_timeout_ms": both("bootstrap_timeout_ms", 4_321, "bootstrap_timeout_ms", 4_321),
    "reconnect_backoff_max_ms": both(
        "reconnect_backoff_max_ms", 2_222, "reconnect.backoff.max.ms", 2_222
    ),
    "session_timeout_ms": [
        ("consumer", "session_timeout_ms", 9_000, "session.timeout.ms", 9_000),
        ("consumer", "heartbeat_interval_ms", 3_000, "heartbeat.interval.ms", 3_000),
    ],
    "transaction_timeout_ms": [
        ("producer", "transaction_timeout_ms", 7_777, "transaction.timeout.ms", 7_777),
    ],
}


def _configs(settings: KafkaSettings) -> dict[str, dict[str, Any]]:
    return {
        "consumer": consumer_config(settings, group_id="g", exactly_once=False),
        "producer": producer_config(settings, transactional_id=None),
    }


# Settings of topic creation (ridestream.stream.admin), which uses kafka-python's admin client
# whichever client the services use: no consumer or producer configuration holds them.
TOPIC_SETTINGS = {"replication_factor", "min_insync_replicas"}


def test_every_kafka_setting_has_an_expected_place_in_both_clients() -> None:
    assert set(KafkaSettings.model_fields) == set(NON_DEFAULT) | TOPIC_SETTINGS
    assert set(EXPECTED) == set(NON_DEFAULT) - {"client"}


@pytest.mark.parametrize("field", sorted(EXPECTED))
def test_setting_reaches_kafka_python_and_librdkafka(field: str) -> None:
    settings = KafkaSettings(**NON_DEFAULT)
    default = _configs(KafkaSettings())
    configs = _configs(settings)
    for role, keyword, value, name, librdkafka_value in EXPECTED[field]:
        assert configs[role][keyword] == value
        assert default[role].get(keyword) != value  # the test value is not the default
        if name in ADAPTER_KEYS:  # applied by the confluent adapter from the same config
            assert keyword == name
            continue
        assert librdkafka_config(configs[role], role)[name] == librdkafka_value


def test_producer_partitions_keys_like_java_and_kafka_python() -> None:
    config = librdkafka_config(producer_config(KafkaSettings(), transactional_id=None), "producer")
    assert config["partitioner"] == "murmur2_random"
    assert config["acks"] == "all"
    assert config["enable.idempotence"] is True


def test_transactional_producer_delivery_timeout_fits_the_transaction() -> None:
    settings = KafkaSettings(transaction_timeout_ms=7_000)
    config = librdkafka_config(producer_config(settings, transactional_id="t-1"), "producer")
    assert config["transactional.id"] == "t-1"
    assert config["message.timeout.ms"] == 7_000
    assert config["socket.timeout.ms"] == 7_000


def test_exactly_once_consumer_reads_committed_on_both_clients() -> None:
    config = consumer_config(KafkaSettings(), group_id="g", exactly_once=True)
    assert config["isolation_level"] == "read_committed"
    assert librdkafka_config(config, "consumer")["isolation.level"] == "read_committed"


def test_override_without_a_librdkafka_equivalent_is_refused() -> None:
    config = producer_config(KafkaSettings(), transactional_id=None, api_version=(2, 8))
    with pytest.raises(ValueError, match="api_version"):
        librdkafka_config(config, "producer")


def test_librdkafka_accepts_both_translated_configurations() -> None:
    # Nothing listens on port 1: the clients are built (configuration checked), never used.
    settings = KafkaSettings(bootstrap_servers="127.0.0.1:1")
    configs = _configs(settings)
    confluent_kafka.Consumer(librdkafka_config(configs["consumer"], "consumer")).close()
    confluent_kafka.Producer(librdkafka_config(configs["producer"], "producer")).flush(0)
