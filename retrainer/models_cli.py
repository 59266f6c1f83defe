"""`ridestream models`, `ridestream promote VERSION`, `ridestream rollback`: manual control.

`promote` and `rollback` make the same registry moves as the retrainer and publish the same
`ModelPromoted` event (reason `manual` / `rollback`) through `retrainer.promotion`, so the
predictors hot-swap exactly as after a drift promotion. The alias move comes first; if the
event cannot be published, the command says so and exits 1, and the retrainer publishes the
missing event when it next starts.
"""

from __future__ import annotations

import argparse
import logging
import sys
from datetime import UTC, datetime
from typing import Any

from kafka.errors import KafkaError

from retrainer.promotion import Reason, promote_and_announce
from retrainer.settings import RetrainerSettings
from ridestream.cli import CommandParser, add_kafka_options, with_kafka_options
from ridestream.events import Event
from ridestream.observability import configure_logging
from ridestream.registry import CHAMPION, PREVIOUS, ModelInfo, ModelNotFoundError, ModelRegistry
from ridestream.stream.admin import create_topics
from ridestream.stream.clients import build_producer
from ridestream.stream.messages import Outgoing
from ridestream.stream.produce import send_all

PUBLISH_TIMEOUT_S = 15.0


def _settings(args: argparse.Namespace) -> RetrainerSettings:
    settings = with_kafka_options(RetrainerSettings(), args)
    configure_logging("WARNING" if settings.log_level == "INFO" else settings.log_level)
    # A broker that does not answer is reported in one line, not in a page of retries.
    logging.getLogger("kafka").setLevel(logging.CRITICAL)
    return settings


def _number(value: float | str | None, digits: int = 3) -> str:
    try:
        return f"{float(value):.{digits}f}" if value not in (None, "") else "-"
    except ValueError:
        return "-"


def models_table(infos: list[ModelInfo]) -> str:
    """A fixed-width table of versions: aliases, validation and hold-out RMSEs, lineage."""
    header = (
        "VERSION",
        "ALIASES",
        "VAL_RMSE",
        "CHAMP_RMSE",
        "CHALL_RMSE",
        "DECISION",
        "TRIGGER",
        "ROWS",
        "DATA_RANGE",
        "CREATED_UTC",
    )
    rows = [header]
    for info in infos:
        tags = info.tags
        created = (
            datetime.fromtimestamp(info.created_at_ms / 1000, UTC).strftime("%Y-%m-%d %H:%M:%S")
            if info.created_at_ms
            else "-"
        )
        rows.append(
            (
                info.version,
                ",".join(sorted(info.aliases)) or "-",
                _number(info.metrics.get("val_rmse")),
                _number(tags.get("champion_rmse")),
                _number(tags.get("challenger_rmse")),
                tags.get("decision", "-"),
                tags.get("trigger_alert_id") or tags.get("trigger", "-"),
                tags.get("rows") or _number(info.metrics.get("train_count"), 0),
                tags.get("data_range") or tags.get("train_range", "-"),
                created,
            )
        )
    widths = [max(len(str(row[i])) for row in rows) for i in range(len(header))]
    return "\n".join(
        "  ".join(str(cell).ljust(width) for cell, width in zip(row, widths, strict=True)).rstrip()
        for row in rows
    )


def list_main(argv: list[str]) -> int:
    """Run `ridestream models`: list the registered versions with aliases and metrics."""
    parser = CommandParser(
        prog="ridestream models",
        description="List the versions of the registered model (RIDESTREAM_MLFLOW__MODEL_NAME) "
        "with their aliases (champion, previous, challenger), metrics and lineage tags.",
    )
    args = parser.parse_args(argv)
    settings = _settings(args)
    registry = ModelRegistry(settings.mlflow)
    infos = registry.versions()
    if not infos:
        print(
            f"no versions of {registry.name!r} in {settings.mlflow.tracking_uri} "
            "(train one with `ridestream train`)"
        )
        return 0
    print(f"{registry.name} in {settings.mlflow.tracking_uri}")
    print(models_table(infos))
    return 0


def _publisher(settings: RetrainerSettings) -> Any:
    topic = settings.topics.models_updates
    create_topics(settings.kafka, [topic], partitions=settings.broker.partitions)
    producer = build_producer(settings.kafka, max_block_ms=int(PUBLISH_TIMEOUT_S * 1000))

    def publish(event: Event) -> None:
        send_all(producer, [Outgoing.of(topic, event)])

    return producer, publish


def _move(settings: RetrainerSettings, version: str, reason: Reason, prog: str) -> int:
    from mlflow.exceptions import MlflowException

    registry = ModelRegistry(settings.mlflow)
    try:
        producer, publish = _publisher(settings)
    except KafkaError as error:  # broker down: refuse before touching the registry
        print(
            f"{prog}: cannot reach Kafka at {settings.kafka.bootstrap_servers}: "
            f"{' '.join(str(error).split()) or type(error).__name__}",
            file=sys.stderr,
        )
        return 1
    try:
        event = promote_and_announce(registry, version, reason, publish)
    except (KafkaError, MlflowException, OSError) as error:  # a store or broker fault, not a bug
        moved = (champion := registry.champion()) is not None and champion.version == version
        state = (
            "champion moved but ModelPromoted not published (the retrainer publishes it "
            "when it starts)"
            if moved
            else "champion unchanged"
        )
        print(
            f"{prog}: {' '.join(str(error).split()) or type(error).__name__}; {state}",
            file=sys.stderr,
        )
        return 1
    finally:
        producer.close()
    print(
        f"{registry.name}: champion {event.previous_version or 'none'} -> {event.version} "
        f"({reason}); ModelPromoted {event.promotion_id} on {settings.topics.models_updates}"
    )
    return 0


def promote_main(argv: list[str]) -> int:
    """Run `ridestream promote VERSION`: make VERSION champion and publish ModelPromoted."""
    parser = CommandParser(
        prog="ridestream promote",
        description="Make a model version champion (the replaced one becomes `previous`) and "
        "publish ModelPromoted (reason manual) on models.updates, so predictors swap to it.",
    )
    parser.add_argument("version", help="the registered version number, e.g. 3")
    add_kafka_options(parser)
    args = parser.parse_args(argv)
    prog = parser.prog
    if not args.version.isdigit():
        print(f"{prog}: VERSION must be a version number, got {args.version!r}", file=sys.stderr)
        return 2
    settings = _settings(args)
    registry = ModelRegistry(settings.mlflow)
    try:
        registry.version(args.version)
    except ModelNotFoundError as error:
        print(f"{prog}: {error}", file=sys.stderr)
        return 2
    champion = registry.alias(CHAMPION)
    if champion is not None and champion.version == args.version:
        print(f"{registry.name}: version {args.version} is already champion")
        return 0
    return _move(settings, args.version, "manual", prog)


def rollback_main(argv: list[str]) -> int:
    """Run `ridestream rollback`: champion ← previous, and publish ModelPromoted (rollback)."""
    parser = CommandParser(
        prog="ridestream rollback",
        description="Restore the previous champion (alias `previous`); the current champion "
        "becomes `previous`, so a second rollback undoes the first. Publishes ModelPromoted "
        "(reason rollback) on models.updates.",
    )
    add_kafka_options(parser)
    args = parser.parse_args(argv)
    settings = _settings(args)
    registry = ModelRegistry(settings.mlflow)
    previous = registry.alias(PREVIOUS)
    if previous is None:
        print(
            f"{parser.prog}: {registry.name} has no `previous` version to roll back to",
            file=sys.stderr,
        )
        return 2
    champion = registry.alias(CHAMPION)
    if champion is not None and champion.version == previous.version:
        print(f"{registry.name}: previous ({previous.version}) is already champion")
        return 0
    return _move(settings, previous.version, "rollback", parser.prog)
