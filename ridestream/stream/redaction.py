"""Secrets blanked in the client configurations kafka-python logs (installed by the service
runner, `redact_client_secrets`, not on import)."""

from __future__ import annotations

import logging
from collections.abc import Mapping
from typing import Any

# kafka-python's configuration keys that hold secrets.
_SECRET_CONFIG_KEYS = frozenset({"sasl_plain_password", "ssl_password"})
_REDACTED = "**********"


class _RedactClientSecrets(logging.Filter):
    """Blank secrets in the client configurations kafka-python logs.

    KafkaAdminClient logs its whole configuration at DEBUG ("Starting KafkaAdminClient with
    configuration: {...}"), SASL password included; a service run with log level DEBUG would
    write the password to its logs. The filter copies such a mapping with the secrets blanked.
    """

    def filter(self, record: logging.LogRecord) -> bool:
        if isinstance(record.args, Mapping):
            record.args = _without_secrets(record.args)
        elif isinstance(record.args, tuple):
            record.args = tuple(_without_secrets(arg) for arg in record.args)
        return True


def _without_secrets(value: Any) -> Any:
    if isinstance(value, Mapping) and not _SECRET_CONFIG_KEYS.isdisjoint(value):
        return {k: _REDACTED if k in _SECRET_CONFIG_KEYS and v else v for k, v in value.items()}
    return value


_FILTER = _RedactClientSecrets()


def redact_client_secrets() -> None:
    """Install the filter on kafka-python's admin client logger (idempotent). On the logger
    itself, so it holds whatever handlers the service configures."""
    logger = logging.getLogger("kafka.admin.client")
    if _FILTER not in logger.filters:
        logger.addFilter(_FILTER)
