"""Dead letters: a poison record's original key and value on `<topic>.dlq`, with headers
saying why and where it came from."""

from __future__ import annotations

from typing import Any

from ridestream.stream.codec import one_line
from ridestream.stream.messages import Outgoing
from ridestream.topics import dead_letter_topic

# Dead-letter headers (values are UTF-8 bytes).
HEADER_ERROR_TYPE = "error.type"
HEADER_ERROR_MESSAGE = "error.message"
HEADER_SOURCE_TOPIC = "source.topic"
HEADER_SOURCE_PARTITION = "source.partition"
HEADER_SOURCE_OFFSET = "source.offset"
HEADER_SERVICE = "service"
HEADER_VALUE_TRUNCATED_FROM = "value.truncated.from"
MAX_ERROR_MESSAGE_CHARS = 2_000
# The broker's default message.max.bytes (1 MiB + record overhead). Our producers may send a
# little more than that so that the dead letter of any value a consumer accepted fits with its
# headers; a value so large that its dead letter would not fit the broker's default is cut to
# DEAD_LETTER_MAX_VALUE_BYTES (the original stays on the source topic at the offset the
# headers name).
BROKER_MAX_MESSAGE_BYTES = 1_048_588
DEAD_LETTER_HEADROOM_BYTES = 64 * 1024
DEAD_LETTER_MAX_VALUE_BYTES = BROKER_MAX_MESSAGE_BYTES - DEAD_LETTER_HEADROOM_BYTES


def source_topic(letter: Outgoing) -> str:
    """The topic the record of a dead letter was read from (its header)."""
    return dict(letter.headers)[HEADER_SOURCE_TOPIC].decode()


def dead_letter(record: Any, error: Exception, service: str) -> Outgoing:
    """The dead letter of a consumed record: original key and value, headers saying why."""
    message = one_line(error)[:MAX_ERROR_MESSAGE_CHARS]
    headers: tuple[tuple[str, bytes], ...] = (
        (HEADER_ERROR_TYPE, type(error).__name__.encode()),
        (HEADER_ERROR_MESSAGE, message.encode()),
        (HEADER_SOURCE_TOPIC, record.topic.encode()),
        (HEADER_SOURCE_PARTITION, str(record.partition).encode()),
        (HEADER_SOURCE_OFFSET, str(record.offset).encode()),
        (HEADER_SERVICE, service.encode()),
    )
    value = record.value if record.value is not None else b""
    if len(value) > DEAD_LETTER_MAX_VALUE_BYTES:
        headers += ((HEADER_VALUE_TRUNCATED_FROM, str(len(value)).encode()),)
        value = value[:DEAD_LETTER_MAX_VALUE_BYTES]
    return Outgoing(dead_letter_topic(record.topic), record.key, value, headers)
