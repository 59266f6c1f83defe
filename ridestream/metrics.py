"""The Prometheus metrics every ridestream service exposes, defined once.

Every name starts with `ridestream_`. Labels are few and bounded, so the number of series
stays small whatever the traffic: `service` (producer, predictor, monitor, retrainer),
`topic` (the handful of topics of the loop; no partition label: lag is summed over the
partitions a process holds), `rule` (the three drift rules) and `reason` (the four promotion
reasons). Ride ids, model names and window ids are never labels.

A service builds nothing itself: it calls `default_metrics()` (the set registered on
prometheus_client's default registry, which `ridestream.observability.serve_metrics` serves)
and records what happened, e.g. from the StreamLoop's `on_batch` hook:

    record = batch_recorder("predictor", topic_in=topics.rides_requested,
                            topic_out=topics.rides_predictions, consumer=consumer)
    loop.run(handle, stop, on_batch=record)

Tests build their own `Metrics(CollectorRegistry())`, so nothing is shared between them.
"""

from __future__ import annotations

import logging
import math
import threading
from collections.abc import Callable
from typing import TYPE_CHECKING, Any, get_args

from kafka.errors import KafkaError
from prometheus_client import REGISTRY, CollectorRegistry, Counter, Gauge, Histogram

if TYPE_CHECKING:
    from ridestream.events import DriftDetected, DriftWindowClosed, ModelPromoted, ModelRejected
    from ridestream.stream.loop import BatchStats

log = logging.getLogger(__name__)

PREFIX = "ridestream_"

# One pass of the loop takes ~1 ms for a trickle and a few seconds for a 5,000-ride batch
# with an Evidently report: buckets from 1 ms to 5 s, about 2.5x apart.
BATCH_SECONDS_BUCKETS = (0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0)

BatchHook = Callable[["BatchStats"], None]


def partition_lags(consumer: Any) -> dict[Any, int] | None:
    """Records behind the high watermark per assigned partition fetched so far (local state:
    `highwater` comes with fetch responses), or None while the broker does not answer: a
    metric or a progress line must not stop the service."""
    lags: dict[Any, int] = {}
    for tp in consumer.assignment():
        highwater = consumer.highwater(tp)
        if highwater is None:
            continue
        try:
            position = consumer.position(tp)
        except KafkaError:  # position() may ask the broker (offset validation): away now
            return None
        lags[tp] = max(highwater - position, 0)
    return lags


class Metrics:
    """The ridestream metrics, registered on one Prometheus registry."""

    def __init__(self, registry: CollectorRegistry | None = REGISTRY) -> None:
        # prometheus_client appends `_total` to counters in the exposition.
        self.events_in = Counter(
            "ridestream_events_in",
            "Records polled from Kafka (valid and poison), by input topic",
            ("service", "topic"),
            registry=registry,
        )
        self.events_out = Counter(
            "ridestream_events_out",
            "Events produced to Kafka (dead letters not included), by output topic",
            ("service", "topic"),
            registry=registry,
        )
        self.dead_letters = Counter(
            "ridestream_dead_letters",
            "Poison records sent to <topic>.dlq, by the topic they were read from",
            ("service", "topic"),
            registry=registry,
        )
        self.batch_seconds = Histogram(
            "ridestream_batch_seconds",
            "Wall time of one non-empty loop pass: poll, decode, handle, produce, flush, commit",
            ("service",),
            buckets=BATCH_SECONDS_BUCKETS,
            registry=registry,
        )
        self.consumer_lag = Gauge(
            "ridestream_consumer_lag_records",
            "Records between the consumer's position and the high watermark, summed over "
            "the partitions of a topic assigned to this process",
            ("service", "topic"),
            registry=registry,
        )
        self.model_version = Gauge(
            "ridestream_model_version",
            "Version number (MLflow registry) of the model in use or last promoted",
            ("service",),
            registry=registry,
        )
        self.windows_closed = Counter(
            "ridestream_windows_closed",
            "Monitor windows closed (DriftWindowClosed events)",
            ("service",),
            registry=registry,
        )
        self.window_rides = Gauge(
            "ridestream_window_rides",
            "Rides in the last closed window",
            ("service",),
            registry=registry,
        )
        self.window_drifted_share = Gauge(
            "ridestream_window_drifted_share",
            "Share of drifted feature columns in the last closed window (0..1)",
            ("service",),
            registry=registry,
        )
        self.window_rmse_minutes = Gauge(
            "ridestream_window_rmse_minutes",
            "RMSE of the predicted duration on the labelled rides of the last closed window",
            ("service",),
            registry=registry,
        )
        self.window_mae_minutes = Gauge(
            "ridestream_window_mae_minutes",
            "MAE of the predicted duration on the labelled rides of the last closed window",
            ("service",),
            registry=registry,
        )
        self.drift_alerts = Counter(
            "ridestream_drift_alerts",
            "DriftDetected events, counted once per rule that fired",
            ("service", "rule"),
            registry=registry,
        )
        self.retrains = Counter(
            "ridestream_retrains",
            "Challenger training runs started",
            ("service",),
            registry=registry,
        )
        self.promotions = Counter(
            "ridestream_model_promotions",
            "ModelPromoted events (the champion alias moved), by reason",
            ("service", "reason"),
            registry=registry,
        )
        self.rejections = Counter(
            "ridestream_model_rejections",
            "ModelRejected events (a challenger that did not beat the champion)",
            ("service",),
            registry=registry,
        )

    def start_counters(self, service: str) -> None:
        """Create the decision counters `service` records (monitor: windows and alerts by rule;
        retrainer: retrains, promotions by reason, rejections) at 0, before anything happened.

        Prometheus' increase() and rate() count changes between two samples of a series: a
        series first scraped at 1 (the retrainer's "initial" promotion at start, a first alert
        between two scrapes) shows no increase ever, and its dashboard panel stays empty
        (found by tests/reliability/test_dashboard_queries.py).
        """
        from ridestream.events import ModelPromoted, RuleFired  # the label values, spelled once

        if service == "monitor":
            self.windows_closed.labels(service)
            for rule in get_args(RuleFired.model_fields["rule"].annotation):
                self.drift_alerts.labels(service, rule)
        elif service == "retrainer":
            self.retrains.labels(service)
            self.rejections.labels(service)
            for reason in get_args(ModelPromoted.model_fields["reason"].annotation):
                self.promotions.labels(service, reason)

    # -- the loop ---------------------------------------------------------------------

    def record_batch(
        self, service: str, stats: BatchStats, *, topic_in: str, topic_out: str | None = None
    ) -> None:
        """Count one loop pass: records in and dead letters under `topic_in`, outputs under
        `topic_out` (omit it for a service that produces nothing), latency when non-empty.

        The loop's per-topic counts (`BatchStats.polled_by_topic`, ...), when there are any, are
        used instead, so a service that reads or writes several topics (the monitor) gets one
        series per topic.
        """
        polled = stats.polled_by_topic or {topic_in: stats.polled}
        dead = stats.dead_letters_by_topic or {topic_in: stats.dead_letters}
        produced = stats.produced_by_topic
        if not produced and topic_out is not None:
            produced = {topic_out: stats.produced}
        for topic, count in polled.items():
            self.events_in.labels(service, topic).inc(count)
        for topic, count in dead.items():
            self.dead_letters.labels(service, topic).inc(count)
        for topic, count in produced.items():
            self.events_out.labels(service, topic).inc(count)
        # An empty poll returns before the clock is read: its 0.0 s would only skew the buckets.
        if stats.polled:
            self.batch_seconds.labels(service).observe(stats.seconds)

    def record_consumer_lag(self, service: str, consumer: Any) -> None:
        """Set the lag per topic from a kafka-python consumer's assignment (see
        `partition_lags`); partitions not fetched yet are left out."""
        lags = partition_lags(consumer)
        if lags is None:
            return
        lag_by_topic: dict[str, int] = {}
        for tp, lag in lags.items():
            lag_by_topic[tp.topic] = lag_by_topic.get(tp.topic, 0) + lag
        for topic, lag in lag_by_topic.items():
            self.consumer_lag.labels(service, topic).set(lag)

    # -- models -----------------------------------------------------------------------

    def set_model_version(self, service: str, version: str | int) -> None:
        """Set the version of the model in use (MLflow versions are integers)."""
        try:
            self.model_version.labels(service).set(int(version))
        except ValueError:
            log.warning("model version %r is not a number: ridestream_model_version unset", version)

    def record_retrain(self, service: str) -> None:
        """Count one challenger training run."""
        self.retrains.labels(service).inc()

    def record_promotion(self, service: str, promoted: ModelPromoted) -> None:
        """Count a promotion and set the model version to the new champion's."""
        self.promotions.labels(service, promoted.reason).inc()
        self.set_model_version(service, promoted.version)

    def record_rejection(self, service: str, rejected: ModelRejected) -> None:
        """Count a challenger that was not promoted."""
        self.rejections.labels(service).inc()

    # -- monitor ----------------------------------------------------------------------

    def record_window(self, service: str, window: DriftWindowClosed) -> None:
        """Count a closed window and set the last window's drifted share, RMSE and MAE
        (a value the window could not compute, e.g. RMSE with no labelled ride, becomes NaN)."""
        self.windows_closed.labels(service).inc()
        self.window_rides.labels(service).set(window.rides)
        self.window_drifted_share.labels(service).set(_or_nan(window.drifted_share))
        self.window_rmse_minutes.labels(service).set(_or_nan(window.quality.rmse))
        self.window_mae_minutes.labels(service).set(_or_nan(window.quality.mae))

    def record_drift_alert(self, service: str, alert: DriftDetected) -> None:
        """Count a drift alert once per rule that fired."""
        for fired in alert.rules:
            self.drift_alerts.labels(service, fired.rule).inc()


def _or_nan(value: float | None) -> float:
    return math.nan if value is None else value


_default: Metrics | None = None
_default_lock = threading.Lock()


def default_metrics() -> Metrics:
    """The process-wide metrics on prometheus_client's default registry (built on first use,
    so importing this module registers nothing)."""
    global _default
    with _default_lock:
        if _default is None:
            _default = Metrics(REGISTRY)
        return _default


def record_batch(
    service: str, stats: BatchStats, *, topic_in: str, topic_out: str | None = None
) -> None:
    """`Metrics.record_batch` on the process-wide metrics."""
    default_metrics().record_batch(service, stats, topic_in=topic_in, topic_out=topic_out)


def batch_recorder(
    service: str,
    *,
    topic_in: str,
    topic_out: str | None = None,
    consumer: Any = None,
    then: BatchHook | None = None,
    metrics: Metrics | None = None,
) -> BatchHook:
    """An `on_batch` hook for `StreamLoop.run`: records the batch (and the consumer's lag when
    `consumer` is given), then calls `then` (e.g. a service's own throughput log)."""
    chosen = metrics if metrics is not None else default_metrics()

    def on_batch(stats: BatchStats) -> None:
        chosen.record_batch(service, stats, topic_in=topic_in, topic_out=topic_out)
        if consumer is not None:
            chosen.record_consumer_lag(service, consumer)
        if then is not None:
            then(stats)

    return on_batch
