"""Wiring of the predictor: settings, registry, clients, the model watcher, the loop.

`ridestream predictor [--exactly-once]` or `python -m predictor`. Stops on SIGTERM/SIGINT
after the batch in hand is produced, flushed and committed.
"""

from __future__ import annotations

import argparse
import gc
import logging
import os
import socket
import sys
import threading
from typing import Any

from kafka.errors import KafkaError
from pydantic import ValidationError

from predictor.predict import ServingModel, batch_handler
from predictor.settings import PredictorSettings
from predictor.stats import ThroughputLog
from predictor.swap import ModelHolder, ModelWatcher
from ridestream.cli import CommandParser, add_kafka_options, with_kafka_options
from ridestream.events import RideRequested
from ridestream.metrics import batch_recorder, default_metrics, partition_lags
from ridestream.observability import configure_logging, serve_metrics
from ridestream.registry import ModelRegistry, retry_on_our_terms
from ridestream.settings import settings_error
from ridestream.stream.admin import create_topics
from ridestream.stream.clients import build_consumer, build_producer
from ridestream.stream.errors import explain_connection_error
from ridestream.stream.loop import BatchStats, LoopStats, StreamLoop
from ridestream.stream.redaction import redact_client_secrets
from ridestream.stream.signals import stop_on_signals
from ridestream.stream.topic_reader import consumer_at_end
from ridestream.topics import dead_letter_topic

log = logging.getLogger("predictor")
SERVICE = "predictor"


def wait_for_champion(
    registry: ModelRegistry, stop: threading.Event, wait_s: float
) -> ServingModel | None:
    """Load the champion; with none yet, or no registry answering, log and check again every
    `wait_s` until `stop`."""
    from mlflow.exceptions import MlflowException

    while not stop.is_set():
        try:
            champion = registry.champion()
            if champion is not None:
                model = registry.load_model(champion.version)
                log.info("serving %s version %s", champion.name, champion.version)
                return ServingModel(champion.name, champion.version, model)
            why = f"no champion for model {registry.name!r} in {registry.settings.tracking_uri} yet"
        except (MlflowException, OSError) as error:  # the store is down: wait, do not crash-loop
            first_line = (str(error).strip().splitlines() or [type(error).__name__])[0][:200]
            why = f"the registry at {registry.settings.tracking_uri} did not answer ({first_line})"
        log.warning("%s: checking again in %.0f s", why, wait_s)
        stop.wait(wait_s)
    return None


def transactional_id(settings: PredictorSettings) -> str:
    """A transactional.id unique to this process (prefix, host name, pid)."""
    return f"{settings.predictor.transactional_id_prefix}-{socket.gethostname()}-{os.getpid()}"


def consumer_lag(consumer: Any) -> int | None:
    """Records behind the high watermark over the assigned partitions (None before every one
    was fetched, or while the broker does not answer)."""
    lags = partition_lags(consumer)
    if lags is None or len(lags) < len(consumer.assignment()):
        return None
    return sum(lags.values())


def tune_gc(threshold0: int) -> None:
    """Keep Python's collector off the hot path: freeze what startup made (imports, the model:
    ~250,000 objects that every full collection would walk again) and collect the young
    generation every `threshold0` allocations instead of 700. Decode + predict: 27.5 -> 19 us
    of CPU a ride (bench/predictor_throughput.py). Cycles are still collected. 0: no change
    (tests that run the predictor inside pytest's process)."""
    if threshold0 <= 0:
        return
    gc.freeze()
    _, threshold1, threshold2 = gc.get_threshold()
    gc.set_threshold(threshold0, threshold1, threshold2)


def run(
    settings: PredictorSettings, stop: threading.Event, ready: threading.Event | None = None
) -> LoopStats | None:
    """Serve until `stop` is set; `ready` is set once the model and the clients are up."""
    options = settings.predictor
    topics = settings.topics
    create_topics(
        settings.kafka,
        [
            topics.rides_requested,
            topics.rides_predictions,
            topics.models_updates,
            dead_letter_topic(topics.rides_requested),
        ],
        partitions=settings.broker.partitions,
    )
    registry = ModelRegistry(settings.mlflow)
    serving = wait_for_champion(registry, stop, options.champion_wait_s)
    if serving is None:
        return None
    holder = ModelHolder(serving)

    def champion_version() -> str | None:
        champion = registry.champion()
        return champion.version if champion else None

    updates = consumer_at_end(settings.kafka, topics.models_updates)
    watcher = ModelWatcher(
        holder=holder,
        consumer=updates,
        model_name=registry.name,
        load=registry.load_model,
        champion_version=champion_version,
        periodic_check_s=options.alias_check_s,
    )
    # A promotion between loading the champion and positioning `updates` would be missed.
    watcher.check_alias()
    watcher.start()
    consumer = build_consumer(
        settings.kafka,
        group_id=options.group_id,
        topics=[topics.rides_requested],
        exactly_once=options.exactly_once,
        max_poll_records=options.max_poll_records,
    )
    producer = build_producer(
        settings.kafka,
        transactional_id=transactional_id(settings) if options.exactly_once else None,
    )
    loop = StreamLoop(
        consumer=consumer,
        producer=producer,
        service=SERVICE,
        decoders={topics.rides_requested: RideRequested},
        exactly_once=options.exactly_once,
        max_value_bytes=settings.kafka.max_message_bytes,
        poll_timeout_ms=options.poll_timeout_ms,
        max_records=options.max_poll_records,
        # The commit round trip (~7 ms) overlaps the next batch instead of adding to latency.
        commit_in_background=True,
    )
    report = ThroughputLog(
        options.log_interval_s, lambda: holder.serving.version, lambda: consumer_lag(consumer)
    )
    metrics = default_metrics()

    def on_batch(stats: BatchStats) -> None:
        metrics.set_model_version(SERVICE, holder.serving.version)
        report(stats)

    record = batch_recorder(
        SERVICE,
        topic_in=topics.rides_requested,
        topic_out=topics.rides_predictions,
        consumer=consumer,
        then=on_batch,
    )
    log.info(
        "predicting %s -> %s as group %r%s",
        topics.rides_requested,
        topics.rides_predictions,
        options.group_id,
        " (exactly-once)" if options.exactly_once else "",
    )
    tune_gc(options.gc_threshold)
    if ready is not None:
        ready.set()
    try:
        return loop.run(batch_handler(holder.current, topics.rides_predictions), stop, record)
    finally:
        watcher.stop()
        updates.close()
        consumer.close()
        producer.close()


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
    try:
        settings = PredictorSettings()
    except ValidationError as error:  # a bad RIDESTREAM_* variable: one line, no trace
        print(f"ridestream predictor: {settings_error(error)}", file=sys.stderr)
        return 2
    updates: dict[str, Any] = {}
    if args.exactly_once:
        updates["exactly_once"] = True
    if args.group_id:
        updates["group_id"] = args.group_id
    settings = with_kafka_options(settings, args).model_copy(
        update={"predictor": settings.predictor.model_copy(update=updates)}
    )
    configure_logging(settings.log_level)
    redact_client_secrets()
    retry_on_our_terms()  # a down registry fails an alias check at once; the next one retries
    serve_metrics(settings.metrics_port, settings.metrics_host)
    stop = threading.Event()
    stop_on_signals(stop)
    try:
        stats = run(settings, stop)
    except KafkaError as error:  # the client retried already: exit, a supervisor restarts us
        print(
            f"ridestream predictor: {explain_connection_error(error, settings.kafka)}",
            file=sys.stderr,
        )
        return 1
    if stats is not None:
        log.info(
            "stopped: %d rides in %d batches, %d dead letters",
            stats.valid,
            stats.batches,
            stats.dead_letters,
        )
    return 0


if __name__ == "__main__":
    sys.exit(main())
