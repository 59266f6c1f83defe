"""Stopping on SIGTERM and SIGINT after the batch in hand."""

from __future__ import annotations

import logging
import signal
import threading

log = logging.getLogger(__name__)


def stop_on_signals(stop: threading.Event) -> None:
    """Set `stop` on SIGTERM and SIGINT, so the loop finishes its batch, flushes and commits."""

    def _handle(signum: int, _frame: object) -> None:
        log.info("received %s: finishing the batch in hand", signal.Signals(signum).name)
        stop.set()

    signal.signal(signal.SIGTERM, _handle)
    signal.signal(signal.SIGINT, _handle)
