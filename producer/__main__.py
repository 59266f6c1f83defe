"""`ridestream replay` (also `python -m producer`): replay TLC trip files into Kafka.

Wiring only: parse arguments, read settings once, and run `producer.service.run` (open the
files, create the topics, build the producer, run `producer.replay.replay`, flush) under the
service runner (`ridestream.runner`), then print the summary. SIGTERM/SIGINT stop the replay
after the slice in hand; what was sent is flushed. A failed send makes the exit code 1.
"""

from __future__ import annotations

import argparse
import logging
import sys
import threading
from collections.abc import Sequence
from pathlib import Path

from producer.arguments import positive_int, speed, timestamp
from producer.replay import ReplayOptions
from producer.service import input_files, run, summary
from producer.settings import ProducerSettings
from producer.sink import DeliveryFailedError, kafka_reason
from ridestream.cli import CommandParser, add_kafka_options, with_kafka_options
from ridestream.runner import EXIT_TRANSIENT, UsageError, run_service
from ridestream.tripdata_fetch import month_argument


def build_parser() -> argparse.ArgumentParser:
    """The `ridestream replay` command line."""
    parser = CommandParser(
        prog="ridestream replay",
        description=(
            "Replay NYC TLC trip files into Kafka: each trip becomes RideRequested at pickup "
            "(topic rides.requested) and RideCompleted at drop-off (rides.completed), merged in "
            "event-time order, keyed by the ride id (<file>:<row>)."
        ),
        epilog="Kafka and other settings come from RIDESTREAM_* variables (see .env.example).",
    )
    inputs = parser.add_mutually_exclusive_group()
    inputs.add_argument(
        "--months",
        nargs="+",
        type=month_argument,
        metavar="YYYY-MM",
        help="monthly files in the data dir (RIDESTREAM_DATA_DIR, default ./data)",
    )
    inputs.add_argument(
        "--files",
        nargs="+",
        type=Path,
        metavar="PATH",
        help="trip files (parquet or CSV, green or yellow), replayed as one stream",
    )
    parser.add_argument(
        "--color",
        choices=("green", "yellow"),
        default="green",
        help="TLC colour of --months files (default: green)",
    )
    parser.add_argument("--data-dir", type=Path, help="overrides RIDESTREAM_DATA_DIR")
    parser.add_argument(
        "--speed",
        type=speed,
        default=None,
        metavar="FACTOR",
        help="event time runs FACTOR times faster than real time; 'max' = as fast as "
        "possible (default: max)",
    )
    parser.add_argument(
        "--limit",
        type=positive_int,
        metavar="N",
        help="stop after N rides read from the files (skipped rows included)",
    )
    parser.add_argument(
        "--start",
        type=timestamp,
        metavar="TIME",
        help="only rides picked up at or after TIME (ISO, TLC local time)",
    )
    parser.add_argument(
        "--end", type=timestamp, metavar="TIME", help="only rides picked up before TIME"
    )
    add_kafka_options(parser)
    parser.add_argument("--no-progress", action="store_true", help="no progress lines on stderr")
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    """Run `ridestream replay ARGS`; returns the exit code."""
    args = build_parser().parse_args(list(sys.argv[1:] if argv is None else argv))

    def read_settings() -> ProducerSettings:
        settings = with_kafka_options(ProducerSettings(), args)
        if args.data_dir is not None:
            settings = settings.model_copy(update={"data_dir": args.data_dir})
        if args.start and args.end and args.end <= args.start:
            raise UsageError("--end must be after --start")
        return settings

    def serve(settings: ProducerSettings, stop: threading.Event) -> int | None:
        # kafka-python logs every connection attempt; the replay reports failures itself, in
        # one line (RIDESTREAM_LOG_LEVEL=DEBUG shows the client's own story).
        if settings.log_level != "DEBUG":
            logging.getLogger("kafka").setLevel(logging.CRITICAL)
        paths = input_files(args.files, args.months, args.color, settings.data_dir)
        knobs = settings.producer
        options = ReplayOptions(
            speed=args.speed,
            limit_rides=args.limit,
            start=args.start,
            end=args.end,
            reorder_events=knobs.reorder_events,
            max_gap_s=knobs.max_gap_s,
            progress_interval_s=knobs.progress_interval_s,
        )
        try:
            stats, sink = run(settings, paths, options, stop=stop, progress=not args.no_progress)
        except DeliveryFailedError as error:
            print(f"ridestream replay: {error}", file=sys.stderr)
            return EXIT_TRANSIENT
        print(
            summary(
                stats, (settings.topics.rides_requested, settings.topics.rides_completed), paths
            )
        )
        if sink.failed:
            print(
                f"ridestream replay: {sink.failed:,} events failed to send "
                f"(first: {kafka_reason(sink.first_error)})",
                file=sys.stderr,
            )
            return EXIT_TRANSIENT
        return None

    return run_service("ridestream replay", read_settings, serve)


if __name__ == "__main__":
    sys.exit(main())
