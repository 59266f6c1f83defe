"""Logging set-up and the Prometheus metrics endpoint, the same for every service."""

from __future__ import annotations

import logging

LOG_FORMAT = "%(asctime)s %(levelname)-7s %(name)s: %(message)s"


def configure_logging(level: str = "INFO") -> None:
    """Log to stderr in one format for every service; quiet the chatty client libraries."""
    logging.basicConfig(level=level, format=LOG_FORMAT)
    for noisy in ("kafka", "urllib3", "alembic", "mlflow", "evidently", "git"):
        logging.getLogger(noisy).setLevel(max(logging.WARNING, logging.getLevelName(level)))


def serve_metrics(port: int, host: str = "127.0.0.1") -> None:
    """Serve Prometheus metrics on `host:port` (port 0: off)."""
    if port:
        from prometheus_client import start_http_server

        start_http_server(port, addr=host)
