"""The SASL password stays out of logs, reprs and error lines (no broker needed)."""

from __future__ import annotations

import logging
import uuid

import pytest
from kafka.errors import KafkaTimeoutError, SaslAuthenticationFailedError
from pydantic import SecretStr

from ridestream.kafka_broker import free_ports
from ridestream.settings import KafkaSettings, Settings
from ridestream.stream.errors import explain_connection_error
from ridestream.stream.redaction import redact_client_secrets

pytestmark = pytest.mark.reliability

USERNAME = "ridestream-svc"


def sasl_settings(password: str, bootstrap_servers: str = "127.0.0.1:19092") -> KafkaSettings:
    return KafkaSettings(
        bootstrap_servers=bootstrap_servers,
        security_protocol="SASL_PLAINTEXT",
        sasl_mechanism="SCRAM-SHA-512",
        sasl_username=USERNAME,
        sasl_password=SecretStr(password),
    )


def test_password_is_not_in_the_repr_of_settings_read_from_the_environment(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    password = f"pw-{uuid.uuid4().hex}"
    monkeypatch.setenv("RIDESTREAM_KAFKA__SECURITY_PROTOCOL", "SASL_PLAINTEXT")
    monkeypatch.setenv("RIDESTREAM_KAFKA__SASL_MECHANISM", "SCRAM-SHA-512")
    monkeypatch.setenv("RIDESTREAM_KAFKA__SASL_USERNAME", USERNAME)
    monkeypatch.setenv("RIDESTREAM_KAFKA__SASL_PASSWORD", password)

    settings = Settings()

    for text in (repr(settings), str(settings), repr(settings.kafka), settings.model_dump_json()):
        assert password not in text
    assert settings.kafka.client_config()["sasl_plain_password"] == password  # only for clients


def test_admin_client_configuration_is_logged_without_the_password(
    caplog: pytest.LogCaptureFixture,
) -> None:
    password = f"pw-{uuid.uuid4().hex}"
    config = sasl_settings(password).client_config()
    caplog.set_level(logging.DEBUG)
    caplog.set_level(logging.DEBUG, logger="kafka")  # whatever another test's setup left there
    redact_client_secrets()  # as every service does at startup

    # What kafka-python's KafkaAdminClient.__init__ logs (kafka/admin/client.py).
    logging.getLogger("kafka.admin.client").debug(
        "Starting KafkaAdminClient with configuration: %s", config
    )

    assert USERNAME in caplog.text and "sasl_plain_password" in caplog.text
    assert password not in caplog.text
    assert config["sasl_plain_password"] == password  # the client's own config is untouched


def test_refused_login_is_explained_in_one_line_without_the_password() -> None:
    password = f"pw-{uuid.uuid4().hex}"
    settings = sasl_settings(password)

    line = explain_connection_error(SaslAuthenticationFailedError(f"bad {password}"), settings)

    assert line == (
        "Kafka at 127.0.0.1:19092 refused the login (SASL_PLAINTEXT SCRAM-SHA-512 as user "
        f"'{USERNAME}'): check RIDESTREAM_KAFKA__SASL_USERNAME and RIDESTREAM_KAFKA__SASL_PASSWORD"
    )


def test_unexpected_error_line_has_the_password_blanked() -> None:
    password = f"pw-{uuid.uuid4().hex}"

    line = explain_connection_error(ValueError(f"odd\n{password}"), sasl_settings(password))

    assert password not in line and "\n" not in line
    assert line.endswith("ValueError: odd **********")


def test_timeout_with_nothing_listening_says_nothing_answers() -> None:
    (closed_port,) = free_ports(1)
    settings = sasl_settings("pw-x1", bootstrap_servers=f"127.0.0.1:{closed_port}")

    line = explain_connection_error(KafkaTimeoutError("Unable to bootstrap"), settings)

    assert line.startswith(f"nothing answers at 127.0.0.1:{closed_port}: ")
