"""`ridestream predictor [--exactly-once]` (also `python -m predictor`): wiring only.

Reads the command line and the settings, then runs `predictor.service.run` under the service
runner (`ridestream.runner`). Stops on SIGTERM/SIGINT after the batch in hand is produced,
flushed and committed.
"""

from __future__ import annotations

import argparse
import logging
import sys
import threading
from typing import Any

from predictor.service import run
from predictor.settings import PredictorSettings
from ridestream.cli import CommandParser, add_kafka_options, with_kafka_options
from ridestream.runner import run_service

log = logging.getLogger("predictor")


def _parser() -> argparse.ArgumentParser:
    parser = CommandParser(
        prog="ridestream predictor",
        description=(
            "Predict ride durations: consume rides.requested, produce one DurationPredicted per "
            "ride to rides.predictions with the champion model of the MLflow registry, and "
            "hot-swap models announced on models.updates. Settings: RIDESTREAM_* variables."
        ),
    )
    parser.add_argument(
        "--exactly-once",
        action="store_true",
        help="produce and commit in Kafka transactions (RIDESTREAM_PREDICTOR__EXACTLY_ONCE)",
    )
    add_kafka_options(parser)
    parser.add_argument(
        "--group-id", default=None, help="consumer group (RIDESTREAM_PREDICTOR__GROUP_ID)"
    )
    return parser


def main(argv: list[str] | None = None) -> int:
    """Run the predictor until SIGTERM/SIGINT; returns the exit code."""
    args = _parser().parse_args(argv)

    def read_settings() -> PredictorSettings:
        settings = PredictorSettings()
        updates: dict[str, Any] = {}
        if args.exactly_once:
            updates["exactly_once"] = True
        if args.group_id:
            updates["group_id"] = args.group_id
        return with_kafka_options(settings, args).model_copy(
            update={"predictor": settings.predictor.model_copy(update=updates)}
        )

    def serve(settings: PredictorSettings, stop: threading.Event) -> None:
        # A down registry fails an alias check at once (MLflow's own retries are off); the
        # next check tries again.
        stats = run(settings, stop)
        if stats is not None:
            log.info(
                "stopped: %d rides in %d batches, %d dead letters",
                stats.valid,
                stats.batches,
                stats.dead_letters,
            )

    return run_service("ridestream predictor", read_settings, serve)


if __name__ == "__main__":
    sys.exit(main())
