"""Registry retries: the backoff schedule, what is retried, and a promotion through a registry
that keeps failing (each step retried on its own, none skipped, one event published)."""

from __future__ import annotations

import threading
from collections.abc import Callable
from typing import Any

import pytest
from mlflow.exceptions import MlflowException
from mlflow.protos.databricks_pb2 import (
    INVALID_PARAMETER_VALUE,
    RESOURCE_DOES_NOT_EXIST,
    TEMPORARILY_UNAVAILABLE,
)
from requests.exceptions import ConnectionError as RequestsConnectionError

from retrainer.promotion import announce_missing_promotion, promote_and_announce
from retrainer.settings import RetrainerOptions
from ridestream.events import Event, ModelPromoted
from ridestream.registry import CHAMPION, PREVIOUS, ModelInfo, ModelNotFoundError
from ridestream.registry_retry import (
    Backoff,
    RegistryUnavailableError,
    backoff_delays_s,
    is_transient,
)

NAME = "ride-duration"


def server_down() -> MlflowException:
    """What MlflowClient raises when the tracking server refuses the connection."""
    return MlflowException(
        "API request to http://127.0.0.1:5000/api/2.0/mlflow/registered-models/alias failed "
        "with exception HTTPConnectionPool(host='127.0.0.1', port=5000): Max retries exceeded"
    )


def test_waits_double_from_backoff_s_and_stop_at_the_cap():
    assert backoff_delays_s(6, 0.5, 3.0) == [0.5, 1.0, 2.0, 3.0, 3.0]
    assert backoff_delays_s(1, 0.5, 3.0) == []
    assert backoff_delays_s(3, 0.0, 3.0) == [0.0, 0.0]


@pytest.mark.parametrize(("attempts", "backoff_s", "cap_s"), [(0, 1.0, 1.0), (2, -1.0, 1.0)])
def test_nonsense_schedules_are_refused(attempts, backoff_s, cap_s):
    with pytest.raises(ValueError):
        backoff_delays_s(attempts, backoff_s, cap_s)


def test_default_options_wait_about_ninety_seconds_before_giving_up():
    backoff = RetrainerOptions().registry_backoff
    assert backoff.attempts == 8
    assert backoff.delays_s == [1.0, 2.0, 4.0, 8.0, 16.0, 30.0, 30.0]


@pytest.mark.parametrize(
    "error",
    [
        server_down(),
        MlflowException("busy", error_code=TEMPORARILY_UNAVAILABLE),
        RequestsConnectionError("refused"),
        ConnectionRefusedError(111, "refused"),
        TimeoutError("read timed out"),
    ],
    ids=["server-down", "unavailable", "requests", "refused", "timeout"],
)
def test_unreachable_registry_is_transient(error):
    assert is_transient(error)


def test_not_found_is_transient_only_when_the_server_did_not_answer():
    def wrapped(cause: Exception) -> ModelNotFoundError:
        try:
            raise ModelNotFoundError("ride-duration version 3 not found") from cause
        except ModelNotFoundError as error:
            return error

    assert is_transient(wrapped(server_down()))
    assert not is_transient(wrapped(MlflowException("no", error_code=RESOURCE_DOES_NOT_EXIST)))


@pytest.mark.parametrize(
    "error",
    [
        KeyError("val_rmse"),
        TypeError("bug"),
        MlflowException("bad alias", error_code=INVALID_PARAMETER_VALUE),
    ],
)
def test_bugs_and_bad_requests_are_not_transient(error):
    assert not is_transient(error)


def flaky(failures: int, error: Callable[[], Exception], result: Any = "ok") -> Callable[[], Any]:
    """A call that raises `error()` `failures` times, then returns `result`."""
    left = [failures]

    def call() -> Any:
        if left[0] > 0:
            left[0] -= 1
            raise error()
        return result

    return call


def test_call_retries_with_the_backoff_waits_and_returns_once_the_registry_answers(caplog):
    waits: list[float] = []
    backoff = Backoff(attempts=5, backoff_s=0.5, max_backoff_s=1.5, sleep=waits.append)
    assert backoff.call("read the champion", flaky(3, server_down)) == "ok"
    assert waits == [0.5, 1.0, 1.5]
    retries = [r.getMessage() for r in caplog.records if "registry unavailable" in r.message]
    assert len(retries) == 3
    assert "read the champion failed (attempt 1 of 5), retrying in 0.5 s" in retries[0]


def test_call_gives_up_after_the_last_attempt_with_the_cause_chained():
    waits: list[float] = []
    backoff = Backoff(attempts=3, backoff_s=1.0, max_backoff_s=10.0, sleep=waits.append)
    with pytest.raises(RegistryUnavailableError, match="failed 3 time") as raised:
        backoff.call("move champion to 2", flaky(99, server_down))
    assert waits == [1.0, 2.0]
    assert isinstance(raised.value.__cause__, MlflowException)


def test_a_stop_request_ends_the_retries_at_the_wait_it_interrupts():
    stop = threading.Event()
    tries: list[int] = []

    def read_champion() -> Any:
        tries.append(1)
        stop.set()  # SIGTERM arrives while the registry is down: Event.wait returns at once
        raise server_down()

    backoff = Backoff(attempts=8, backoff_s=30.0, max_backoff_s=30.0, sleep=stop.wait)
    with pytest.raises(RegistryUnavailableError, match="stopped while read the champion"):
        backoff.call("read the champion", read_champion)
    assert len(tries) == 1  # no second try, and none of the 210 s of waits


def test_a_bug_is_raised_at_once_without_waiting():
    waits: list[float] = []
    backoff = Backoff(attempts=5, backoff_s=1.0, sleep=waits.append)
    with pytest.raises(KeyError):
        backoff.call("read the champion", flaky(1, lambda: KeyError("x")))
    assert waits == []


class FlakyRegistry:
    """The registry calls a promotion makes, each failing `failures` times before it works
    (like an MLflow server that is restarting), over an in-memory alias table."""

    def __init__(self, aliases: dict[str, str], failures: int) -> None:
        self.name = NAME
        self.aliases = dict(aliases)
        self.tags: dict[str, dict[str, str]] = {}
        self.failures = failures
        self.calls: dict[str, int] = {}

    def _maybe_fail(self, call: str) -> None:
        self.calls[call] = self.calls.get(call, 0) + 1
        if self.calls[call] <= self.failures:
            raise server_down()

    def _info(self, version: str) -> ModelInfo:
        return ModelInfo(NAME, version, run_id="r", tags=self.tags.get(version, {}))

    def alias(self, alias: str) -> ModelInfo | None:
        self._maybe_fail(f"alias {alias}")
        version = self.aliases.get(alias)
        return self._info(version) if version else None

    def champion(self) -> ModelInfo | None:
        return self.alias(CHAMPION)

    def set_alias(self, alias: str, version: str) -> None:
        self._maybe_fail(f"set_alias {alias}")
        self.aliases[alias] = str(version)

    def set_version_tags(self, version: str, tags: dict[str, str]) -> None:
        self._maybe_fail(f"tags {version}")
        self.tags.setdefault(version, {}).update(tags)

    def version(self, version: str) -> ModelInfo:
        self._maybe_fail(f"version {version}")
        return self._info(version)


def test_promotion_through_a_failing_registry_finishes_every_step_and_publishes_once():
    registry = FlakyRegistry({CHAMPION: "1"}, failures=2)
    published: list[Event] = []
    waits: list[float] = []
    backoff = Backoff(attempts=3, backoff_s=0.1, sleep=waits.append)

    event = promote_and_announce(registry, "2", "drift", published.append, "alert-1", {}, backoff)  # type: ignore[arg-type]

    assert registry.aliases == {CHAMPION: "2", PREVIOUS: "1"}
    assert registry.tags["2"]["promotion_reason"] == "drift"
    assert published == [event]
    assert (event.version, event.previous_version, event.trigger_alert_id) == ("2", "1", "alert-1")
    assert len(waits) == 2 * 5  # five registry calls, each failed twice


def test_promotion_that_runs_out_of_retries_before_the_move_changes_nothing():
    registry = FlakyRegistry({CHAMPION: "1"}, failures=5)
    published: list[Event] = []
    backoff = Backoff(attempts=3, backoff_s=0.0, sleep=lambda _s: None)
    with pytest.raises(RegistryUnavailableError):
        promote_and_announce(registry, "2", "drift", published.append, backoff=backoff)  # type: ignore[arg-type]
    assert registry.aliases == {CHAMPION: "1"}
    assert published == []


def test_champion_moved_but_never_announced_is_announced_after_the_registry_returns():
    registry = FlakyRegistry({CHAMPION: "2", PREVIOUS: "1"}, failures=2)
    registry.tags["2"] = {"trigger_alert_id": "alert-7"}
    published: list[Event] = []
    backoff = Backoff(attempts=3, backoff_s=0.0, sleep=lambda _s: None)
    event = announce_missing_promotion(registry, None, published.append, backoff)  # type: ignore[arg-type]
    assert isinstance(event, ModelPromoted) and published == [event]
    assert (event.version, event.previous_version, event.reason) == ("2", "1", "drift")
