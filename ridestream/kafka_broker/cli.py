"""`ridestream broker up|down|status`: the local Apache Kafka broker, without Docker."""

from __future__ import annotations

import argparse
import logging
import sys

from pydantic import ValidationError

from ridestream import kafka_broker
from ridestream.cli import CommandParser
from ridestream.kafka_broker import BrokerError, BrokerStatus
from ridestream.settings import BrokerSettings, Settings

DESCRIPTION = f"""\
Run Apache Kafka {kafka_broker.KAFKA_VERSION} (KRaft) on 127.0.0.1 from its Maven Central jars:
one node, or a cluster of --brokers nodes (each broker and controller voter; topics then get 3
replicas, 2 in sync). Needs Java 17+ and Maven, no Docker. The jars are cached in
{kafka_broker.default_jar_dir()}.

settings (environment):
  RIDESTREAM_BROKER__PORT             bootstrap port (default 19092; node n of a cluster: +2n)
  RIDESTREAM_BROKER__CONTROLLER_PORT  KRaft controller port (default 19093; node n: +2n)
  RIDESTREAM_BROKER__BROKERS          nodes (default 1; --brokers wins)
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
    up = commands.add_parser(
        "up",
        help="start the broker in the background (fetches the jars on first use)",
        description="Start the broker (or each node of the cluster) detached and wait until it "
        "serves; does nothing if it already runs.",
    )
    down = commands.add_parser(
        "down", help="stop the broker", description="Stop the broker or every node (SIGTERM)."
    )
    state = commands.add_parser(
        "status",
        help="say whether the broker runs, where, which Kafka version and its pid",
        description="Say whether the broker (each node) runs, its address, Kafka version and pid.",
    )
    for command in (up, down, state):
        command.add_argument(
            "--brokers",
            type=_node_count,
            metavar="N",
            help="nodes of the cluster (default: RIDESTREAM_BROKER__BROKERS; down and status "
            "find a cluster's nodes in the data dir)",
        )
    return parser


def _node_count(value: str) -> int:
    if not value.isdigit() or not 1 <= int(value) <= 9:
        raise argparse.ArgumentTypeError(f"{value!r} is not a number of brokers from 1 to 9")
    return int(value)


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
    brokers = args.brokers or (broker.brokers if args.command == "up" else _found_nodes(broker))
    nodes = kafka_broker.cluster_nodes(broker.model_copy(update={"brokers": brokers}))
    try:
        if args.command == "up":
            before = [kafka_broker.status(node) for node in nodes]
            after = kafka_broker.start_cluster(nodes)
            for was, now in zip(before, after, strict=True):
                verb = "already running" if was.running and was.pid == now.pid else "started"
                print(f"Apache Kafka {now.kafka_version} {verb} at {now.address}: pid {now.pid}")
                print(f"  data in {now.data_dir}, log {now.log_file}")
            print(f"bootstrap servers: {kafka_broker.bootstrap_servers(nodes)}")
        elif args.command == "down":
            stopped = kafka_broker.stop_cluster(nodes)
            where = kafka_broker.bootstrap_servers(nodes)
            print(f"stopped {stopped} broker(s) at {where}" if stopped else "no broker was running")
        else:
            print("\n\n".join(_describe(kafka_broker.status(node)) for node in nodes))
    except BrokerError as exc:
        print(f"ridestream broker {args.command}: {exc}", file=sys.stderr)
        return 1
    return 0


def _found_nodes(broker: BrokerSettings) -> int:
    """The nodes of the cluster in the data dir (`node-<n>` folders), else the settings'."""
    found = len(list(broker.data_dir.glob("node-*/server.properties")))
    return found or broker.brokers


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
