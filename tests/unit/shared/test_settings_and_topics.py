"""Settings come from RIDESTREAM_* variables; topic names all follow one prefix."""

from __future__ import annotations

import pytest
from pydantic import ValidationError

from ridestream.settings import KafkaSettings, Settings
from ridestream.topics import Topics, dead_letter_topic


def test_defaults_point_at_the_embedded_setup(monkeypatch: pytest.MonkeyPatch) -> None:
    for name in list(__import__("os").environ):
        if name.startswith("RIDESTREAM_"):
            monkeypatch.delenv(name)
    settings = Settings(_env_file=None)  # type: ignore[call-arg]
    assert settings.kafka.bootstrap_servers == "127.0.0.1:19092"
    assert settings.mlflow.tracking_uri.startswith("sqlite:///")
    assert settings.topics.rides_requested == "rides.requested"


def test_nested_variables_use_double_underscore(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("RIDESTREAM_KAFKA__BOOTSTRAP_SERVERS", "127.0.0.1:29092")
    monkeypatch.setenv("RIDESTREAM_TOPIC_PREFIX", "whatif.")
    settings = Settings(_env_file=None)  # type: ignore[call-arg]
    assert settings.kafka.client_config()["bootstrap_servers"] == ["127.0.0.1:29092"]
    assert settings.topics.drift_alerts == "whatif.drift.alerts"


def test_sasl_needs_credentials() -> None:
    with pytest.raises(ValidationError, match="needs sasl_mechanism, sasl_username"):
        KafkaSettings(security_protocol="SASL_PLAINTEXT")


def test_placeholder_password_is_refused() -> None:
    with pytest.raises(ValidationError, match="placeholder"):
        KafkaSettings(
            security_protocol="SASL_PLAINTEXT",
            sasl_mechanism="SCRAM-SHA-512",
            sasl_username="svc",
            sasl_password="changeme",  # type: ignore[arg-type]
        )


def test_password_is_never_shown_in_repr_but_reaches_the_client() -> None:
    kafka = KafkaSettings(
        security_protocol="SASL_PLAINTEXT",
        sasl_mechanism="PLAIN",
        sasl_username="svc",
        sasl_password="s3cr3t-value",  # type: ignore[arg-type]
    )
    assert "s3cr3t-value" not in repr(kafka)
    assert kafka.client_config()["sasl_plain_password"] == "s3cr3t-value"


def test_every_topic_has_a_dead_letter_topic_under_the_same_prefix() -> None:
    topics = Topics("t1.")
    names = topics.all_with_dead_letters()
    assert len(names) == 14 and all(name.startswith("t1.") for name in names)
    assert dead_letter_topic(topics.rides_requested) == "t1.rides.requested.dlq"
