"""The service runner: how every service starts, runs and ends, written once.

`run_service` reads the settings (a bad command line or variable: one line naming it, exit
2), sets up logging (with kafka-python's logged secrets blanked), leaves MLflow's HTTP retries
to the services' own bounded retries, serves the metrics endpoint, turns SIGTERM/SIGINT into
a stop request, then runs the service until it returns. A Kafka that cannot be reached, or a
registry still unreachable after its retries, ends the service with one line on stderr and
exit code 1 (transient: a supervisor restarts it and committed offsets replay). Bugs are
not caught: a traceback and exit code 1.

Exit codes: 0 stopped as asked (or finished), 1 transient failure, 2 usage error.
"""

from __future__ import annotations

import gc
import logging
import sys
import threading
from collections.abc import Callable
from typing import TypeVar

from kafka.errors import KafkaError
from pydantic import ValidationError

from ridestream.metrics import default_metrics
from ridestream.observability import configure_logging, serve_metrics
from ridestream.registry import disable_mlflow_http_retries
from ridestream.registry_retry import RegistryUnavailableError
from ridestream.settings import Settings, settings_error
from ridestream.stream.errors import explain_connection_error
from ridestream.stream.redaction import redact_client_secrets
from ridestream.stream.signals import stop_on_signals

log = logging.getLogger(__name__)

EXIT_OK, EXIT_TRANSIENT, EXIT_USAGE = 0, 1, 2

S = TypeVar("S", bound=Settings)


class UsageError(ValueError):
    """A bad command line or setting, found by the service (reported in one line, exit 2)."""


def run_service(
    command: str,
    read_settings: Callable[[], S],
    serve: Callable[[S, threading.Event], int | None],
) -> int:
    """Run a service as every service runs (see the module docstring); returns the exit code.

    `command` prefixes every line on stderr ("ridestream monitor"). `read_settings` parses
    the command line and the environment; it may raise UsageError, ValidationError or
    ValueError. `serve(settings, stop)` runs until `stop` is set and may return an exit code.
    """
    try:
        settings = read_settings()
    except (UsageError, ValidationError, ValueError) as error:
        print(f"{command}: {_usage_line(error)}", file=sys.stderr)
        return EXIT_USAGE
    configure_logging(settings.log_level)
    redact_client_secrets()
    disable_mlflow_http_retries()
    serve_metrics(settings.metrics_port, settings.metrics_host)
    default_metrics().start_counters(command.removeprefix("ridestream "))
    stop = threading.Event()
    stop_on_signals(stop)
    try:
        code = serve(settings, stop)
    except UsageError as error:
        print(f"{command}: {error}", file=sys.stderr)
        return EXIT_USAGE
    except (KafkaError, TimeoutError) as error:
        # The client retried already: exit, a supervisor restarts the service.
        print(f"{command}: {explain_connection_error(error, settings.kafka)}", file=sys.stderr)
        return EXIT_TRANSIENT
    except RegistryUnavailableError as error:  # retried with backoff already
        print(f"{command}: {error}", file=sys.stderr)
        return EXIT_TRANSIENT
    return EXIT_OK if code is None else code


def _usage_line(error: Exception) -> str:
    if isinstance(error, ValidationError):
        return settings_error(error)
    return (str(error).strip().splitlines() or [type(error).__name__])[0]


def tune_gc(threshold0: int) -> None:
    """Keep Python's collector off a service's hot path: freeze what startup made (imports, a
    model, a reference: objects every full collection would walk again) and collect the young
    generation every `threshold0` allocations instead of 700. Cycles are still collected, so
    memory stays flat. Predictor decode + predict: 27.5 -> 19 us of CPU a ride
    (bench/predictor_throughput.py); the monitor's throughput halves without it
    (bench/monitor_throughput.py). 0: no change at all (a service run inside pytest's process).
    Call it once startup is done."""
    if threshold0 <= 0:
        return
    gc.freeze()
    _, threshold1, threshold2 = gc.get_threshold()
    gc.set_threshold(threshold0, threshold1, threshold2)
