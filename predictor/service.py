"""The running predictor: the champion from the registry, the model watcher, the stream loop.

`run` serves until `stop` is set: it waits for a champion (logging, never crash-looping),
starts the watcher that hot-swaps models announced on models.updates, and runs
`ridestream.stream.loop.StreamLoop` with `predictor.predict.batch_handler`.
"""

from __future__ import annotations

import logging
import os
import socket
import threading
from typing import Any

from predictor.predict import ServingModel, batch_handler
from predictor.settings import PredictorSettings
from predictor.stats import ThroughputLog
from predictor.swap import ModelHolder, ModelWatcher
from ridestream.events import RideRequested
from ridestream.metrics import batch_recorder, default_metrics, partition_lags
from ridestream.registry import CHALLENGER, ModelRegistry
from ridestream.runner import tune_gc
from ridestream.stream.admin import create_topics
from ridestream.stream.clients import build_consumer, build_producer
from ridestream.stream.loop import BatchStats, LoopStats, StreamLoop
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
            topics.rides_shadow,
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
        challenger_info=lambda: registry.alias(CHALLENGER),
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
        handle = batch_handler(
            holder.current, topics.rides_predictions, holder.current_shadow, topics.rides_shadow
        )
        return loop.run(handle, stop, record)
    finally:
        watcher.stop()
        updates.close()
        consumer.close()
        producer.close()
