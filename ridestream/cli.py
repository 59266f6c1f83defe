"""The `ridestream` command: one entry point, one sub-command per job.

Each sub-command lives with the code it runs and parses its own arguments; this module only
names them. They are imported by name when called, so `ridestream --help` stays fast and the
shared package imports nothing from the services at import time.
"""

from __future__ import annotations

import argparse
import importlib
import sys
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, NoReturn, TypeVar

if TYPE_CHECKING:
    from ridestream.settings import Settings

SettingsT = TypeVar("SettingsT", bound="Settings")


class CommandParser(argparse.ArgumentParser):
    """The parser of every `ridestream` command: a bad argument is one line, exit 2.

    argparse's own error prints the usage block first; a user wants what was wrong.
    """

    def error(self, message: str) -> NoReturn:
        self.exit(2, f"{self.prog}: {message} (see --help)\n")


def add_kafka_options(parser: argparse.ArgumentParser) -> None:
    """`--topic-prefix` and `--bootstrap-servers`, the same in every command that uses Kafka."""
    parser.add_argument(
        "--topic-prefix", help="prefix of every topic name (RIDESTREAM_TOPIC_PREFIX; default none)"
    )
    parser.add_argument(
        "--bootstrap-servers",
        metavar="HOST:PORT[,...]",
        help="Kafka brokers (RIDESTREAM_KAFKA__BOOTSTRAP_SERVERS)",
    )


def with_kafka_options(settings: SettingsT, args: argparse.Namespace) -> SettingsT:
    """`settings` with the `--topic-prefix` / `--bootstrap-servers` the command line gave."""
    update: dict[str, Any] = {}
    if getattr(args, "topic_prefix", None) is not None:
        update["topic_prefix"] = args.topic_prefix
    if getattr(args, "bootstrap_servers", None):
        servers = {"bootstrap_servers": args.bootstrap_servers}
        update["kafka"] = settings.kafka.model_copy(update=servers)
    return settings.model_copy(update=update) if update else settings


@dataclass(frozen=True)
class Command:
    name: str
    target: str  # "module:function"; the function takes argv and returns an exit code
    summary: str


COMMANDS = (
    Command("broker", "ridestream.kafka_broker.cli:main", "start/stop the local Apache Kafka"),
    Command("data", "producer.data_cli:main", "fetch and list NYC TLC trip files"),
    Command("replay", "producer.__main__:main", "replay trip files into Kafka in event-time order"),
    Command("synth", "producer.synth_cli:main", "write synthetic trips fitted on a real month"),
    Command("train", "ridestream.training:main", "train a model and register it in MLflow"),
    Command("predictor", "predictor.__main__:main", "run the predictor service"),
    Command("monitor", "monitor.__main__:main", "run the drift and quality monitor"),
    Command("retrainer", "retrainer.__main__:main", "run the drift-triggered retrainer"),
    Command("models", "retrainer.models_cli:list_main", "list model versions and aliases"),
    Command("promote", "retrainer.models_cli:promote_main", "make a model version champion"),
    Command("rollback", "retrainer.models_cli:rollback_main", "restore the previous champion"),
    Command("demo", "ridestream.demo:main", "run the whole loop on real data, end to end"),
    Command("report", "ridestream.report:main", "build the HTML report of a run from its topics"),
    Command("backtest", "backtest.cli:main", "score retraining policies on past months, offline"),
)


def _usage() -> str:
    width = max(len(c.name) for c in COMMANDS)
    lines = [
        "usage: ridestream COMMAND [ARGS...]",
        "",
        "Streaming taxi-trip duration prediction with drift monitoring and retraining on Kafka.",
        "",
        "commands:",
        *(f"  {c.name:<{width}}  {c.summary}" for c in COMMANDS),
        "",
        "Run `ridestream COMMAND --help` for the options of one command.",
        "Settings come from RIDESTREAM_* environment variables (see .env.example).",
    ]
    return "\n".join(lines)


def resolve(target: str) -> Callable[[list[str]], int]:
    """Import the function named by a `module:function` target."""
    module_name, _, function = target.partition(":")
    return getattr(importlib.import_module(module_name), function)


def main(argv: Sequence[str] | None = None) -> int:
    """Run `ridestream COMMAND ...`; returns the process exit code."""
    args = list(sys.argv[1:] if argv is None else argv)
    if not args or args[0] in ("-h", "--help", "help"):
        print(_usage())
        return 0
    if args[0] == "--version":
        from ridestream import __version__

        print(f"ridestream {__version__}")
        return 0
    by_name = {c.name: c for c in COMMANDS}
    command = by_name.get(args[0])
    if command is None:
        print(f"ridestream: unknown command {args[0]!r} (try `ridestream --help`)", file=sys.stderr)
        return 2
    return resolve(command.target)(args[1:])


if __name__ == "__main__":
    sys.exit(main())
