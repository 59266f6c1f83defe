"""Bounded exponential backoff for the services' calls to the MLflow registry.

A registry that does not answer (server restarting, network blip, SQLite locked) is a transient
fault (DESIGN.md, Errors): each registry call of a training run is retried on its own, with
waits of `backoff_s`, 2 × `backoff_s`, 4 × ... capped at `max_backoff_s`, for at most
`attempts` tries. Every call retried is idempotent (a read, an alias move, a tag), so retrying
one step never repeats or skips another: a promotion is finished step by step or not at all.
When the attempts are spent, or a stop request (SIGTERM) ends a wait, `RegistryUnavailableError`
ends the service with a non-zero exit (a supervisor restarts it; what was not committed is
processed again: the retrainer trains for the alert again, the monitor reads the batch again).

Anything that is not a transient registry fault (a bug, a version that does not exist) is
raised at once.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import TypeVar

from pydantic import BaseModel, Field

log = logging.getLogger(__name__)

T = TypeVar("T")

# MLflow error codes that say "your request is wrong": retrying cannot help.
PERMANENT_ERROR_CODES = frozenset(
    {
        "RESOURCE_DOES_NOT_EXIST",
        "RESOURCE_ALREADY_EXISTS",
        "INVALID_PARAMETER_VALUE",
        "INVALID_STATE",
        "BAD_REQUEST",
        "PERMISSION_DENIED",
        "UNAUTHENTICATED",
        "CUSTOMER_UNAUTHORIZED",
        "NOT_IMPLEMENTED",
    }
)


class RegistryUnavailableError(RuntimeError):
    """The registry did not answer within the retry budget (the cause is chained)."""


def backoff_delays_s(attempts: int, backoff_s: float, max_backoff_s: float) -> list[float]:
    """The waits between `attempts` tries: `backoff_s` doubling each time, capped at
    `max_backoff_s` (`attempts - 1` waits; none for a single attempt)."""
    if attempts < 1:
        raise ValueError(f"attempts must be at least 1, got {attempts}")
    if backoff_s < 0 or max_backoff_s < 0:
        raise ValueError("backoff_s and max_backoff_s must not be negative")
    return [min(backoff_s * 2**retry, max_backoff_s) for retry in range(attempts - 1)]


def is_transient(error: BaseException) -> bool:
    """True for a registry fault worth retrying: no connection, a timeout, or an MLflow error
    that is not about the request itself. Looks through the chain of causes, so a
    `ModelNotFoundError` raised because the server did not answer counts as transient."""
    from mlflow.exceptions import MlflowException
    from requests.exceptions import ConnectionError as RequestsConnectionError
    from requests.exceptions import Timeout as RequestsTimeout

    seen: set[int] = set()
    current: BaseException | None = error
    while current is not None and id(current) not in seen:
        seen.add(id(current))
        if isinstance(
            current, (ConnectionError, TimeoutError, RequestsConnectionError, RequestsTimeout)
        ):
            return True
        if isinstance(current, MlflowException):
            return current.error_code not in PERMANENT_ERROR_CODES
        current = current.__cause__ or current.__context__
    return False


@dataclass(frozen=True)
class Backoff:
    """A retry policy for registry calls. `sleep(delay_s)` waits between tries; a true result
    (`threading.Event.wait` of a stop event that was set) ends the retries at once."""

    attempts: int = 1
    backoff_s: float = 1.0
    max_backoff_s: float = 30.0
    sleep: Callable[[float], object] = time.sleep

    @property
    def delays_s(self) -> list[float]:
        """The waits this policy makes between tries."""
        return backoff_delays_s(self.attempts, self.backoff_s, self.max_backoff_s)

    def call(self, what: str, call: Callable[[], T]) -> T:
        """Return `call()`, retried on transient registry faults; `what` names it in the log.
        Raises `RegistryUnavailableError` once every attempt failed."""
        delays = self.delays_s
        for attempt in range(1, self.attempts + 1):
            try:
                return call()
            except Exception as error:
                if not is_transient(error):
                    raise
                first_line = str(error).strip().splitlines()[0][:200] if str(error) else ""
                reason = f"{type(error).__name__}: {first_line}"
                if attempt == self.attempts:
                    log.error(
                        "registry unavailable: %s failed %d time(s), giving up: %s",
                        what,
                        attempt,
                        reason,
                    )
                    raise RegistryUnavailableError(
                        f"the MLflow registry did not answer: {what} failed {attempt} time(s)"
                        f" ({reason})"
                    ) from error
                delay = delays[attempt - 1]
                log.warning(
                    "registry unavailable: %s failed (attempt %d of %d), retrying in %.1f s: %s",
                    what,
                    attempt,
                    self.attempts,
                    delay,
                    reason,
                )
                if self.sleep(delay):
                    raise RegistryUnavailableError(
                        f"stopped while {what} waited to retry the MLflow registry ({reason})"
                    ) from error
        raise AssertionError("unreachable")  # the loop returns or raises


NO_RETRY = Backoff()


class RegistryRetryOptions(BaseModel):
    """The registry retry knobs of a service's settings section
    (`RIDESTREAM_<SERVICE>__REGISTRY_RETRY_*`)."""

    # An unreachable registry is retried per call, waiting backoff_s, 2x, 4x ... capped at
    # registry_retry_max_backoff_s; the defaults wait 1+2+4+8+16+30+30 = 91 s in all before
    # the service exits non-zero.
    registry_retry_attempts: int = Field(default=8, ge=1)
    registry_retry_backoff_s: float = Field(default=1.0, ge=0)
    registry_retry_max_backoff_s: float = Field(default=30.0, ge=0)

    @property
    def registry_backoff(self) -> Backoff:
        """The retry policy of every registry call the service makes."""
        return Backoff(
            self.registry_retry_attempts,
            self.registry_retry_backoff_s,
            self.registry_retry_max_backoff_s,
        )
