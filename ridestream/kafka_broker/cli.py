"""`ridestream broker up|down|status`: the local Apache Kafka broker, without Docker."""

from __future__ import annotations

import argparse
import logging
import sys

from pydantic import ValidationError

from ridestream import kafka_broker
from ridestream.cli import CommandParser
from ridestream.kafka_broker import BrokerError, BrokerStatus
from ridestream.settings import Settings

DESCRIPTION = f"""\
Run a single-node Apache Kafka {kafka_broker.KAFKA_VERSION} broker (KRaft) on 127.0.0.1 from its
Maven Central jars: needs Java 17+ and Maven, no Docker. The jars are cached in
{kafka_broker.default_jar_dir()}.

settings (environment):
  RIDESTREAM_BROKER__PORT             bootstrap port (default 19092)
  RIDESTREAM_BROKER__CONTROLLER_PORT  KRaft controller port (default 19093)
  RIDESTREAM_BROKER__DATA_DIR         logs, data and pid file (default .ridestream/kafka)
  RIDESTREAM_BROKER__HEAP             JVM heap, e.g. 512m
  RIDESTREAM_BROKER__PARTITIONS       partitions of auto-created topics
  RIDESTREAM_BROKER__STARTUP_TIMEOUT_S  how long `up` waits for the broker"""


def build_parser() -> argparse.ArgumentParser:
    """The argument parser of `ridestream broker`."""
    parser = CommandParser(
        prog="ridestream broker",
        description=DESCRIPTION,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    commands = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")
    commands.add_parser(
        "up",
        help="start the broker in the background (fetches the jars on first use)",
        description="Start the broker detached and wait until it serves; "
        "does nothing if it already runs.",
    )
    commands.add_parser("down", help="stop the broker", description="Stop the broker (SIGTERM).")
    commands.add_parser(
        "status",
        help="say whether the broker runs, where, which Kafka version and its pid",
        description="Say whether the broker runs, its address, Kafka version and pid.",
    )
    return parser


def main(argv: list[str] | None = None) -> int:
    """Run `ridestream broker ...`; returns the exit code (1 on a BrokerError, no traceback)."""
    args = build_parser().parse_args(argv)
    try:
        settings = Settings()
    except ValidationError as exc:
        first = exc.errors()[0]
        where = ".".join(str(part) for part in first["loc"])
        print(f"ridestream broker: invalid setting {where}: {first['msg']}", file=sys.stderr)
        return 1
    logging.basicConfig(level=settings.log_level, format="%(levelname)s %(name)s: %(message)s")
    logging.getLogger("kafka").setLevel(logging.WARNING)  # readiness probes retry noisily
    broker = settings.broker
    try:
        if args.command == "up":
            before = kafka_broker.status(broker)
            after = kafka_broker.start(broker)
            verb = "already running" if before.running and before.pid == after.pid else "started"
            print(f"Apache Kafka {after.kafka_version} {verb}: bootstrap servers {after.address}")
            print(f"pid {after.pid}, data in {after.data_dir}, log {after.log_file}")
        elif args.command == "down":
            stopped = kafka_broker.stop(broker)
            print(f"stopped broker at {broker.bootstrap}" if stopped else "no broker was running")
        else:
            print(_describe(kafka_broker.status(broker)))
    except BrokerError as exc:
        print(f"ridestream broker {args.command}: {exc}", file=sys.stderr)
        return 1
    return 0


def _describe(state: BrokerStatus) -> str:
    if state.running:
        headline = "running"
    elif state.pid is not None:
        headline = "starting (process alive, port not answering yet)"
    else:
        headline = "stopped"
    return "\n".join(
        [
            headline,
            f"address:       {state.address}",
            f"kafka version: {state.kafka_version or 'unknown (never started)'}",
            f"pid:           {state.pid if state.pid is not None else '-'}",
            f"data dir:      {state.data_dir}",
            f"log file:      {state.log_file}",
        ]
    )


if __name__ == "__main__":
    sys.exit(main())
