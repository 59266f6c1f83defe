"""The running monitor: its configuration, the registry's references, the published windows
read back at start (restart safety), and `ridestream.stream.loop.StreamLoop` with
`monitor.pipeline.MonitorPipeline` as the handler and its commit gate.
"""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Callable, Sequence
from typing import Any

from kafka import KafkaConsumer, TopicPartition
from pydantic import ValidationError

from monitor.alerts import AlertRules
from monitor.calendar import CalendarOptions
from monitor.drift import DriftOptions, Reference, prepare_reference, reference_rmse
from monitor.join import IdlePartitions
from monitor.pipeline import (
    MonitorConfig,
    MonitoredPrediction,
    MonitorPipeline,
    ReferenceProvider,
    restore,
)
from monitor.settings import MonitorOptions, MonitorSettings
from monitor.snapshots import SnapshotWriter
from monitor.windows import WindowSpec, parse_duration
from ridestream.events import MODEL_UPDATES, DriftDetected, DriftWindowClosed, RideCompleted
from ridestream.metrics import batch_recorder, default_metrics
from ridestream.registry import ModelRegistry
from ridestream.registry_retry import Backoff
from ridestream.runner import UsageError, tune_gc
from ridestream.stream.admin import create_topics
from ridestream.stream.clients import build_consumer, build_producer
from ridestream.stream.loop import BatchStats, LoopStats, StreamLoop
from ridestream.stream.topic_reader import read_records

log = logging.getLogger("monitor")
SERVICE = "monitor"


def monitor_config(options: MonitorOptions) -> MonitorConfig:
    """The pure configuration of the pipeline from the settings."""
    if options.window_rides:
        spec = WindowSpec(parse_duration(options.slice), options.window_rides)
    else:
        spec = WindowSpec(parse_duration(options.window))
    return MonitorConfig(
        spec=spec,
        lateness=parse_duration(options.lateness),
        rules=AlertRules(
            drift_share_threshold=options.drift_share_threshold,
            quality_alpha=options.quality_alpha,
            quality_min_rise=options.quality_min_rise,
            debounce_windows=options.debounce_windows,
            cooldown_windows=options.cooldown_windows,
            min_window_rides=options.min_window_rides,
        ),
        drift=DriftOptions(
            num_method=options.num_method,
            cat_method=options.cat_method,
            num_threshold=options.num_threshold,
            cat_threshold=options.cat_threshold,
        ),
    )


def calendar_options(options: MonitorOptions) -> CalendarOptions | None:
    """How references are cut into hour-of-week cells (None: no calendar)."""
    if not options.calendar:
        return None
    return CalendarOptions(options.min_cell_rows, options.holidays_as_sunday)


def registry_reference_provider(
    settings: MonitorSettings, backoff: Backoff | None = None
) -> ReferenceProvider:
    """References from the MLflow registry: the champion's (None) or a given version's. Every
    registry call is retried with `backoff` (default: RIDESTREAM_MONITOR__REGISTRY_RETRY_*);
    a registry still down after that raises RegistryUnavailableError (the service exits 1
    and the uncommitted batch is read again after the restart)."""
    registry = ModelRegistry(settings.mlflow)
    retry = backoff or settings.monitor.registry_backoff

    def provide(version: str | None) -> Reference:
        if version is None:
            info = retry.call("read the champion", registry.champion)
        else:
            info = retry.call(f"read version {version}", lambda: registry.version(version))
        if info is None:
            raise UsageError(
                f"no champion of model {settings.mlflow.model_name!r} in the registry at "
                f"{settings.mlflow.tracking_uri} (run `ridestream train` first)"
            )
        started = time.perf_counter()
        frame = retry.call(
            f"load the reference of version {info.version}",
            lambda: registry.load_reference(info.version),
        )
        rmse = info.metrics.get("val_rmse")
        reference = prepare_reference(
            frame,
            info.version,
            rmse if rmse is not None else reference_rmse(frame),
            calendar_options(settings.monitor),
        )
        log.info(
            "reference of %s v%s: %d rows, val_rmse %s (prepared in %.2f s)",
            info.name,
            info.version,
            len(frame),
            reference.rmse,
            time.perf_counter() - started,
        )
        return reference

    return provide


def read_published_windows(
    settings: MonitorSettings, topic: str
) -> list[tuple[DriftWindowClosed, dict[str, bytes]]]:
    """Every window already on `topic`, with its headers (read once at start, no group)."""
    found: list[tuple[DriftWindowClosed, dict[str, bytes]]] = []
    timeout_s = settings.monitor.restore_timeout_s
    for record in read_records(settings.kafka, topic, timeout_s=timeout_s, must_reach_end=True):
        try:
            window = DriftWindowClosed.model_validate_json(record.value)
        except (ValidationError, TypeError):
            log.warning("%s[%d]@%d is no window", topic, record.partition, record.offset)
            continue
        found.append((window, {k: v for k, v in record.headers or []}))
    return found


def partition_status(
    consumer: KafkaConsumer, topics: Sequence[str]
) -> tuple[list[TopicPartition], dict[TopicPartition, int], list[TopicPartition]]:
    """The assigned ride partitions, their positions, and those read to their end."""
    assigned = [tp for tp in consumer.assignment() if tp.topic in topics]
    positions: dict[TopicPartition, int] = {}
    at_end = []
    for tp in assigned:
        position = consumer.position(tp, timeout_ms=0)
        if position is None:
            continue
        positions[tp] = position
        highwater = consumer.highwater(tp)
        if highwater is not None and position >= highwater:
            at_end.append(tp)
    return assigned, positions, at_end


def run(
    settings: MonitorSettings,
    reference_provider: ReferenceProvider,
    stop: threading.Event,
    on_batch: Callable[[BatchStats], None] | None = None,
) -> LoopStats:
    """Run the monitor until `stop` is set, with references from `reference_provider`
    (`registry_reference_provider` in the service; the integration tests pass their own)."""
    options = settings.monitor
    config = monitor_config(options)
    topics = settings.topics
    create_topics(
        settings.kafka,
        [
            topics.rides_predictions,
            topics.rides_completed,
            topics.models_updates,
            topics.drift_windows,
            topics.drift_alerts,
        ],
        partitions=settings.broker.partitions,
    )
    restored = restore(config, read_published_windows(settings, topics.drift_windows))
    log.info(
        "%d windows of %s already published; resuming after %s",
        restored.windows,
        config.spec.label,
        restored.frontier,
    )
    writer = (
        SnapshotWriter(
            options.reports_dir,
            html=options.html,
            workspace=options.workspace,
            queue_size=options.snapshot_queue,
        )
        if options.snapshots
        else None
    )
    metrics = default_metrics()

    def published(window: DriftWindowClosed, alert: DriftDetected | None) -> None:
        metrics.record_window(SERVICE, window)
        if window.reference_version is not None:
            metrics.set_model_version(SERVICE, window.reference_version)
        if alert is not None:
            metrics.record_drift_alert(SERVICE, alert)

    pipeline = MonitorPipeline(
        config,
        topics,
        reference_provider,
        restored,
        snapshot_sink=writer.submit if writer else None,
        on_published=published,
    )
    tune_gc(options.gc_threshold)
    ride_topics = [topics.rides_predictions, topics.rides_completed]
    consumer = build_consumer(
        settings.kafka,
        group_id=options.group_id,
        topics=[*ride_topics, topics.models_updates],
    )
    producer = build_producer(settings.kafka)
    loop = StreamLoop(
        consumer=consumer,
        producer=producer,
        service=SERVICE,
        decoders={
            topics.rides_predictions: MonitoredPrediction,
            topics.rides_completed: RideCompleted,
            topics.models_updates: MODEL_UPDATES,
        },
        max_value_bytes=settings.kafka.max_message_bytes,
        max_records=options.max_poll_records,
        commit_gate=pipeline.join.commit_gate,
        handle_empty_polls=True,  # idle partitions close the last windows with nothing polled
    )
    idle_partitions = IdlePartitions(options.idle_partition_s)

    def handle(received: Any) -> Any:
        assigned, positions, at_end = partition_status(consumer, ride_topics)
        idle = idle_partitions.update(positions, at_end, time.monotonic())
        return pipeline.handle(received, assigned, idle)

    record = batch_recorder(
        SERVICE,
        topic_in=topics.rides_predictions,
        topic_out=topics.drift_windows,
        consumer=consumer,
        then=on_batch,
        metrics=metrics,
    )
    try:
        return loop.run(handle, stop, record)
    finally:
        if writer is not None:
            writer.close()
        producer.close()
        consumer.close()
        log.info(
            "monitor stopped: %d windows, %d alerts published, %d late events, "
            "%d replayed records of published windows dropped",
            pipeline.windows_published,
            pipeline.alerts_published,
            pipeline.join.late_total,
            pipeline.join.ignored,
        )
