"""`ridestream monitor` (also `python -m monitor`): the drift and quality monitor.

Wiring only: parse arguments, read settings once, fetch the champion's reference through the
registry, read the windows already published (restart safety), build the clients and run
`ridestream.stream.loop.StreamLoop` with `monitor.pipeline.MonitorPipeline` as the handler and its
commit gate. SIGTERM/SIGINT finish the batch in hand, flush, commit and close.
"""

from __future__ import annotations

import argparse
import gc
import logging
import sys
import threading
import time
from collections.abc import Callable, Sequence
from typing import Any, NoReturn

from kafka import KafkaConsumer, TopicPartition
from kafka.errors import KafkaError
from pydantic import ValidationError

from monitor.alerts import AlertRules
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
from ridestream.cli import add_kafka_options, with_kafka_options
from ridestream.events import MODEL_UPDATES, DriftDetected, DriftWindowClosed, RideCompleted
from ridestream.metrics import batch_recorder, default_metrics
from ridestream.observability import configure_logging, serve_metrics
from ridestream.stream.admin import create_topics
from ridestream.stream.clients import build_consumer, build_producer
from ridestream.stream.errors import explain_connection_error
from ridestream.stream.loop import BatchStats, LoopStats, StreamLoop
from ridestream.stream.redaction import redact_client_secrets
from ridestream.stream.signals import stop_on_signals
from ridestream.stream.topic_reader import read_records

log = logging.getLogger("monitor")
SERVICE = "monitor"


class UsageError(ValueError):
    """A bad command line or setting (reported in one line, exit 2)."""


class _Parser(argparse.ArgumentParser):
    def error(self, message: str) -> NoReturn:
        raise UsageError(message)


def parse_args(argv: Sequence[str]) -> argparse.Namespace:
    """The command line (every option overrides its RIDESTREAM_MONITOR__* setting)."""
    parser = _Parser(
        prog="ridestream monitor",
        description=(
            "Join predictions with completed rides, close event-time windows, compute drift "
            "(Evidently's tests, against the champion's reference) and quality per window, "
            "publish DriftWindowClosed on drift.windows and DriftDetected on drift.alerts."
        ),
    )
    parser.add_argument(
        "--window", help="tumbling window by pickup time: 1d, 6h, 30m (default: 1d)"
    )
    parser.add_argument(
        "--window-rides", type=int, help="count windows of this many rides (instead of --window)"
    )
    parser.add_argument(
        "--slice", help="time slices that count windows are assembled from (default: 1h)"
    )
    parser.add_argument("--lateness", help="allowed lateness of events (default: 2h)")
    parser.add_argument(
        "--group-id", help="consumer group (RIDESTREAM_MONITOR__GROUP_ID, default: monitor)"
    )
    add_kafka_options(parser)
    parser.add_argument("--reports-dir", help="where Evidently snapshots (JSON) are written")
    parser.add_argument("--html", action="store_true", help="also save each snapshot as HTML")
    parser.add_argument(
        "--workspace", help="add each snapshot to this Evidently workspace (`evidently ui`)"
    )
    parser.add_argument("--no-snapshots", action="store_true", help="do not build snapshots")
    parser.add_argument("--drift-share", type=float, help="drifted-share alert threshold (0.5)")
    parser.add_argument("--rmse-tolerance", type=float, help="quality alert tolerance (0.2)")
    parser.add_argument("--debounce", type=int, help="consecutive bad windows per alert (1)")
    parser.add_argument("--cooldown", type=int, help="windows without alert after one (3)")
    parser.add_argument("--cat-threshold", type=float, help="Evidently categorical threshold")
    parser.add_argument("--num-threshold", type=float, help="Evidently numerical threshold")
    return parser.parse_args(list(argv))


def settings_from(args: argparse.Namespace) -> MonitorSettings:
    """Settings from the environment, with the command line on top."""
    settings = MonitorSettings()
    overrides: dict[str, Any] = {
        "window": args.window,
        "window_rides": args.window_rides,
        "slice": args.slice,
        "lateness": args.lateness,
        "group_id": args.group_id,
        "reports_dir": args.reports_dir,
        "workspace": args.workspace,
        "drift_share_threshold": args.drift_share,
        "rmse_tolerance": args.rmse_tolerance,
        "debounce_windows": args.debounce,
        "cooldown_windows": args.cooldown,
        "cat_threshold": args.cat_threshold,
        "num_threshold": args.num_threshold,
    }
    options = settings.monitor.model_dump()
    options.update({k: v for k, v in overrides.items() if v is not None})
    if args.html:
        options["html"] = True
    if args.no_snapshots:
        options["snapshots"] = False
    monitor = MonitorOptions.model_validate(options)
    return with_kafka_options(settings, args).model_copy(update={"monitor": monitor})


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
            rmse_tolerance=options.rmse_tolerance,
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


def registry_reference_provider(settings: MonitorSettings) -> ReferenceProvider:
    """References from the MLflow registry: the champion's (None) or a given version's."""
    from ridestream.registry import ModelRegistry

    registry = ModelRegistry(settings.mlflow)

    def provide(version: str | None) -> Reference:
        info = registry.champion() if version is None else registry.version(version)
        if info is None:
            raise UsageError(
                f"no champion of model {settings.mlflow.model_name!r} in the registry at "
                f"{settings.mlflow.tracking_uri} (run `ridestream train` first)"
            )
        started = time.perf_counter()
        frame = registry.load_reference(info.version)
        rmse = info.metrics.get("val_rmse")
        reference = prepare_reference(
            frame, info.version, rmse if rmse is not None else reference_rmse(frame)
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


def tune_gc(threshold0: int) -> None:
    """Make Python's garbage collector cheap for a stream of short-lived events.

    The default collects the young generation every 700 allocations and walks every object
    that survived: with thousands of rides held in open windows that halves the throughput
    (bench/monitor_throughput.py). Startup objects (imports, the reference) are frozen out of
    the collector and the young generation is collected every `threshold0` allocations.
    Reference cycles are still collected, so memory stays flat.
    """
    gc.freeze()
    if threshold0 > 0:
        _, threshold1, threshold2 = gc.get_threshold()
        gc.set_threshold(threshold0, threshold1, threshold2)


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
    """Run the monitor until `stop` is set (the integration tests call this directly)."""
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


def main(argv: Sequence[str] | None = None) -> int:
    """Entry point of `ridestream monitor`; returns the exit code."""
    try:
        args = parse_args(sys.argv[1:] if argv is None else argv)
        settings = settings_from(args)
        monitor_config(settings.monitor)
    except (UsageError, ValidationError, ValueError) as error:
        message = str(error).splitlines()[0] if str(error) else type(error).__name__
        if isinstance(error, ValidationError):
            message = "; ".join(
                f"{'.'.join(str(p) for p in e['loc'])}: {e['msg']}" for e in error.errors()
            )
        print(f"ridestream monitor: {message}", file=sys.stderr)
        return 2
    configure_logging(settings.log_level)
    redact_client_secrets()
    serve_metrics(settings.metrics_port, settings.metrics_host)
    stop = threading.Event()
    stop_on_signals(stop)
    try:
        provider = registry_reference_provider(settings)
        stats = run(settings, provider, stop)
    except UsageError as error:
        print(f"ridestream monitor: {error}", file=sys.stderr)
        return 2
    except KafkaError as error:  # retried by the client already: exit, a supervisor restarts
        print(
            f"ridestream monitor: {explain_connection_error(error, settings.kafka)}",
            file=sys.stderr,
        )
        return 1
    log.info(
        "%d batches, %d records, %d dead letters", stats.batches, stats.polled, stats.dead_letters
    )
    return 0


if __name__ == "__main__":
    sys.exit(main())
