"""Kafka connection errors explained in one line (never with the password)."""

from __future__ import annotations

from ridestream.settings import KafkaSettings

# Environment variables named in connection errors (see ridestream.settings.KafkaSettings).
_ENV_KAFKA = "RIDESTREAM_KAFKA__"


def explain_connection_error(error: BaseException, settings: KafkaSettings) -> str:
    """One line for a service's startup: why Kafka was out of reach or refused the login.

    kafka-python 3 reports a refused SASL login while bootstrapping only as a timeout
    ("Unable to bootstrap from ..."), the same as an unreachable broker; a TCP probe of the
    bootstrap servers tells the two apart. The password never appears in the line.
    """
    from kafka.errors import (
        KafkaConnectionError,
        KafkaTimeoutError,
        SaslAuthenticationFailedError,
        UnsupportedSaslMechanismError,
    )

    where = settings.bootstrap_servers
    login: str = settings.security_protocol
    if settings.sasl_mechanism:
        login += f" {settings.sasl_mechanism} as user {settings.sasl_username!r}"
    credentials = f"check {_ENV_KAFKA}SASL_USERNAME and {_ENV_KAFKA}SASL_PASSWORD"
    if isinstance(error, SaslAuthenticationFailedError):
        line = f"Kafka at {where} refused the login ({login}): {credentials}"
    elif isinstance(error, UnsupportedSaslMechanismError):
        line = (
            f"Kafka at {where} does not offer SASL {settings.sasl_mechanism}: set "
            f"{_ENV_KAFKA}SASL_MECHANISM to a mechanism the broker enables"
        )
    elif isinstance(error, KafkaTimeoutError | KafkaConnectionError):
        if not _bootstrap_answers(settings):
            line = (
                f"nothing answers at {where}: is the broker running (`ridestream broker "
                f"status`) and is {_ENV_KAFKA}BOOTSTRAP_SERVERS right?"
            )
        elif settings.sasl_mechanism:
            line = f"Kafka at {where} answers but the login ({login}) failed: {credentials}"
        else:
            line = (
                f"Kafka at {where} answers but did not let a {login} client in: if it wants "
                f"SASL, set {_ENV_KAFKA}SECURITY_PROTOCOL, SASL_MECHANISM, SASL_USERNAME and "
                "SASL_PASSWORD"
            )
    else:
        detail = " ".join(str(error).split()) or type(error).__name__
        line = f"cannot use Kafka at {where} ({login}): {type(error).__name__}: {detail}"
    if settings.sasl_password is not None:  # no library message may leak it either
        line = line.replace(settings.sasl_password.get_secret_value(), "**********")
    return line


def _bootstrap_answers(settings: KafkaSettings, timeout_s: float = 2.0) -> bool:
    """True when any bootstrap server accepts a TCP connection."""
    import socket

    for server in settings.bootstrap_servers.split(","):
        host, _, port = server.strip().rpartition(":")
        try:
            with socket.create_connection((host.strip("[]") or "localhost", int(port)), timeout_s):
                return True
        except (OSError, ValueError):
            continue
    return False
