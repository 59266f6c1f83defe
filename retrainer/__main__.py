"""`ridestream retrainer` (also `python -m retrainer`): retrain on drift alerts. Wiring only.

Reads the command line and the settings, then runs `retrainer.scheduler.run` (the buffer, the
alert coalescer, the training worker and their two stream loops: see that module) under the
service runner (`ridestream.runner`). Every registry call is retried with bounded backoff
(RIDESTREAM_RETRAINER__REGISTRY_RETRY_*); a registry still unreachable after that ends the
service with exit code 1 and one line on stderr (the alert stays uncommitted).
SIGTERM/SIGINT: the training in hand finishes, offsets are committed, clients close.
"""

from __future__ import annotations

import argparse
import sys
import threading

from retrainer.scheduler import run
from retrainer.settings import RetrainerSettings
from ridestream.cli import CommandParser, add_kafka_options, with_kafka_options
from ridestream.runner import UsageError, run_service


def build_parser() -> argparse.ArgumentParser:
    """The `ridestream retrainer` command line."""
    parser = CommandParser(
        prog="ridestream retrainer",
        description=(
            "Keep a buffer of recent labelled rides from rides.completed; on every DriftDetected "
            "(drift.alerts) train a challenger, score it against the champion on the newest "
            "rides, register it in MLflow; one better by a margin goes to the live gate "
            "(RIDESTREAM_RETRAINER__GATE: shadow, canary or offline) and is promoted only when "
            "it is better on the labelled rides after its training cut-off (ChallengerStarted, "
            "ModelPromoted / ModelRejected with the evidence on models.updates)."
        ),
        epilog="Other settings: RIDESTREAM_RETRAINER__* and RIDESTREAM_* (see .env.example).",
    )
    add_kafka_options(parser)
    parser.add_argument(
        "--margin",
        type=float,
        metavar="FRACTION",
        help="a challenger must beat the champion's RMSE by this fraction "
        "(RIDESTREAM_RETRAINER__MARGIN, default 0.02)",
    )
    return parser


def main(argv: list[str] | None = None) -> int:
    """Run `ridestream retrainer ...`; returns the exit code."""
    args = build_parser().parse_args(argv)

    def read_settings() -> RetrainerSettings:
        settings = with_kafka_options(RetrainerSettings(), args)
        if args.margin is not None:
            if not 0 <= args.margin < 1:
                raise UsageError("--margin must be in [0, 1)")
            settings.retrainer = settings.retrainer.model_copy(update={"margin": args.margin})
        return settings

    def serve(settings: RetrainerSettings, stop: threading.Event) -> None:
        # Uncommitted alerts are delivered again after a restart; the buffer is rebuilt.
        run(settings, stop)

    return run_service("ridestream retrainer", read_settings, serve)


if __name__ == "__main__":
    sys.exit(main())
