"""The shared Prometheus metrics: names in the exposition text, values after recording."""

from __future__ import annotations

import math
from datetime import UTC, datetime

import pytest
from kafka import TopicPartition
from kafka.errors import KafkaConnectionError
from prometheus_client import CollectorRegistry, generate_latest

from ridestream.events import (
    DriftDetected,
    DriftWindowClosed,
    ModelPromoted,
    ModelRejected,
    RuleFired,
    WindowQuality,
)
from ridestream.metrics import (
    BATCH_SECONDS_BUCKETS,
    PREFIX,
    Metrics,
    batch_recorder,
    partition_lags,
)
from ridestream.stream.loop import BatchStats

WALL = datetime(2026, 1, 1, tzinfo=UTC)


@pytest.fixture
def registry() -> CollectorRegistry:
    return CollectorRegistry()


@pytest.fixture
def metrics(registry: CollectorRegistry) -> Metrics:
    return Metrics(registry)


def value(registry: CollectorRegistry, name: str, **labels: str) -> float | None:
    return registry.get_sample_value(name, labels)


def window(drifted_share: float | None, rmse: float | None) -> DriftWindowClosed:
    return DriftWindowClosed(
        window_id="w-1",
        window_start=datetime(2021, 3, 1, 0, 0),
        event_time=datetime(2021, 3, 1, 1, 0),
        reference_version="1",
        model_versions=["1"],
        rides=1200,
        labelled=1100,
        late=3,
        expired=0,
        columns=[],
        drifted_share=drifted_share,
        prediction_drift=None,
        quality=WindowQuality(count=1100, rmse=rmse, mae=4.5, mean_error=0.2),
    )


def test_recorded_batch_appears_in_the_exposition_text(
    registry: CollectorRegistry, metrics: Metrics
) -> None:
    stats = BatchStats(polled=500, valid=498, dead_letters=2, produced=498, seconds=0.042)
    metrics.record_batch(
        "predictor", stats, topic_in="rides.requested", topic_out="rides.predictions"
    )

    text = generate_latest(registry).decode()

    assert 'ridestream_events_in_total{service="predictor",topic="rides.requested"} 500.0' in text
    assert (
        'ridestream_events_out_total{service="predictor",topic="rides.predictions"} 498.0' in text
    )
    assert 'ridestream_dead_letters_total{service="predictor",topic="rides.requested"} 2.0' in text
    assert 'ridestream_batch_seconds_bucket{le="0.05",service="predictor"} 1.0' in text
    assert 'ridestream_batch_seconds_bucket{le="0.025",service="predictor"} 0.0' in text
    assert 'ridestream_batch_seconds_count{service="predictor"} 1.0' in text


def test_batches_add_up_and_empty_polls_do_not_count_as_latency(
    registry: CollectorRegistry, metrics: Metrics
) -> None:
    for stats in (BatchStats(polled=10, valid=10, produced=10, seconds=0.01), BatchStats()):
        metrics.record_batch("predictor", stats, topic_in="in", topic_out="out")
    metrics.record_batch("predictor", BatchStats(polled=5, valid=5, produced=5), topic_in="in")

    assert value(registry, "ridestream_events_in_total", service="predictor", topic="in") == 15
    assert value(registry, "ridestream_events_out_total", service="predictor", topic="out") == 10
    assert value(registry, "ridestream_batch_seconds_count", service="predictor") == 2


def test_every_metric_name_has_the_ridestream_prefix(registry: CollectorRegistry) -> None:
    Metrics(registry)

    names = [family.name for family in registry.collect()]

    assert len(names) >= 14
    assert all(name.startswith(PREFIX) for name in names)


def test_latency_buckets_span_one_millisecond_to_five_seconds() -> None:
    assert BATCH_SECONDS_BUCKETS[0] == 0.001
    assert BATCH_SECONDS_BUCKETS[-1] == 5.0
    assert list(BATCH_SECONDS_BUCKETS) == sorted(set(BATCH_SECONDS_BUCKETS))


class FakeConsumer:
    """The three kafka-python consumer calls lag needs (we do not own KafkaConsumer)."""

    def __init__(self, positions: dict[TopicPartition, int], highwaters: dict) -> None:
        self.positions = positions
        self.highwaters = highwaters

    def assignment(self) -> set[TopicPartition]:
        return set(self.positions)

    def highwater(self, tp: TopicPartition) -> int | None:
        return self.highwaters.get(tp)

    def position(self, tp: TopicPartition) -> int:
        return self.positions[tp]


def test_consumer_lag_is_summed_per_topic_over_fetched_partitions(
    registry: CollectorRegistry, metrics: Metrics
) -> None:
    a0, a1, a2 = (TopicPartition("rides.requested", p) for p in range(3))
    b0 = TopicPartition("models.updates", 0)
    consumer = FakeConsumer(
        positions={a0: 100, a1: 50, a2: 0, b0: 7},
        highwaters={a0: 130, a1: 50, b0: 7},  # a2 not fetched yet: left out
    )

    metrics.record_consumer_lag("predictor", consumer)

    lag = "ridestream_consumer_lag_records"
    assert value(registry, lag, service="predictor", topic="rides.requested") == 30
    assert value(registry, lag, service="predictor", topic="models.updates") == 0


class BrokerAwayConsumer(FakeConsumer):
    def position(self, tp: TopicPartition) -> int:
        raise KafkaConnectionError("broker went away")


def test_partition_lags_leave_out_unfetched_partitions_and_give_none_with_the_broker_away() -> None:
    a0, a1 = TopicPartition("rides.requested", 0), TopicPartition("rides.requested", 1)
    fetched = FakeConsumer(positions={a0: 100, a1: 0}, highwaters={a0: 130})
    assert partition_lags(fetched) == {a0: 30}
    away = BrokerAwayConsumer(positions={a0: 100}, highwaters={a0: 130})
    assert partition_lags(away) is None


def test_batch_recorder_records_lag_then_calls_the_next_hook(
    registry: CollectorRegistry, metrics: Metrics
) -> None:
    tp = TopicPartition("rides.requested", 0)
    seen: list[BatchStats] = []
    hook = batch_recorder(
        "predictor",
        topic_in="rides.requested",
        topic_out="rides.predictions",
        consumer=FakeConsumer({tp: 10}, {tp: 25}),
        then=seen.append,
        metrics=metrics,
    )
    stats = BatchStats(polled=3, valid=3, produced=3, seconds=0.002)

    hook(stats)

    assert seen == [stats]
    assert (
        value(registry, "ridestream_events_in_total", service="predictor", topic="rides.requested")
        == 3
    )
    assert (
        value(
            registry,
            "ridestream_consumer_lag_records",
            service="predictor",
            topic="rides.requested",
        )
        == 15
    )


def test_closed_window_sets_drifted_share_rmse_and_counts_windows(
    registry: CollectorRegistry, metrics: Metrics
) -> None:
    metrics.record_window("monitor", window(drifted_share=0.25, rmse=6.1))
    metrics.record_window("monitor", window(drifted_share=0.5, rmse=None))

    assert value(registry, "ridestream_windows_closed_total", service="monitor") == 2
    assert value(registry, "ridestream_window_drifted_share", service="monitor") == 0.5
    rmse = value(registry, "ridestream_window_rmse_minutes", service="monitor")
    assert rmse is not None and math.isnan(rmse)
    assert value(registry, "ridestream_window_mae_minutes", service="monitor") == 4.5
    assert value(registry, "ridestream_window_rides", service="monitor") == 1200


def test_drift_alert_counts_each_rule_that_fired(
    registry: CollectorRegistry, metrics: Metrics
) -> None:
    alert = DriftDetected(
        alert_id="a-1",
        event_time=datetime(2021, 3, 1, 1, 0),
        window_id="w-1",
        window_start=datetime(2021, 3, 1, 0, 0),
        model_version="1",
        rules=[
            RuleFired(rule="data_drift_share", value=0.6, threshold=0.5),
            RuleFired(rule="quality", value=9.0, threshold=7.0),
        ],
    )

    metrics.record_drift_alert("monitor", alert)

    alerts = "ridestream_drift_alerts_total"
    assert value(registry, alerts, service="monitor", rule="data_drift_share") == 1
    assert value(registry, alerts, service="monitor", rule="quality") == 1
    assert value(registry, alerts, service="monitor", rule="prediction_drift") is None


def test_promotion_sets_the_model_version_and_rejection_leaves_it(
    registry: CollectorRegistry, metrics: Metrics
) -> None:
    metrics.record_retrain("retrainer")
    metrics.record_promotion(
        "retrainer",
        ModelPromoted(
            promotion_id="p-1",
            event_time=WALL,
            model_name="ride-duration",
            version="3",
            previous_version="2",
            reason="drift",
        ),
    )
    metrics.record_retrain("retrainer")
    metrics.record_rejection(
        "retrainer",
        ModelRejected(
            rejection_id="r-1",
            event_time=WALL,
            model_name="ride-duration",
            version="4",
            champion_version="3",
        ),
    )

    assert value(registry, "ridestream_retrains_total", service="retrainer") == 2
    assert (
        value(registry, "ridestream_model_promotions_total", service="retrainer", reason="drift")
        == 1
    )
    assert value(registry, "ridestream_model_rejections_total", service="retrainer") == 1
    assert value(registry, "ridestream_model_version", service="retrainer") == 3


def test_non_numeric_model_version_keeps_the_last_number(
    registry: CollectorRegistry, metrics: Metrics
) -> None:
    metrics.set_model_version("predictor", "7")
    metrics.set_model_version("predictor", "latest")

    assert value(registry, "ridestream_model_version", service="predictor") == 7


def test_per_topic_counts_give_one_series_per_topic(
    registry: CollectorRegistry, metrics: Metrics
) -> None:
    stats = BatchStats(
        polled=30,
        valid=29,
        dead_letters=1,
        produced=2,
        seconds=0.3,
        polled_by_topic={"rides.predictions": 20, "rides.completed": 10},
        dead_letters_by_topic={"rides.completed": 1},
        produced_by_topic={"drift.windows": 1, "drift.alerts": 1},
    )

    metrics.record_batch("monitor", stats, topic_in="unused", topic_out="unused")

    events_in = "ridestream_events_in_total"
    assert value(registry, events_in, service="monitor", topic="rides.predictions") == 20
    assert value(registry, events_in, service="monitor", topic="rides.completed") == 10
    assert value(registry, events_in, service="monitor", topic="unused") is None
    assert (
        value(registry, "ridestream_dead_letters_total", service="monitor", topic="rides.completed")
        == 1
    )
    assert (
        value(registry, "ridestream_events_out_total", service="monitor", topic="drift.alerts") == 1
    )


def test_decision_counters_exist_at_zero_once_their_service_starts(
    metrics: Metrics, registry: CollectorRegistry
) -> None:
    metrics.start_counters("retrainer")
    metrics.start_counters("monitor")
    metrics.start_counters("predictor")  # records no decision: nothing to create

    def value(name: str, **labels: str) -> float | None:
        return registry.get_sample_value(name, labels)

    for reason in ("initial", "drift", "manual", "rollback"):
        assert value("ridestream_model_promotions_total", service="retrainer", reason=reason) == 0
    assert value("ridestream_retrains_total", service="retrainer") == 0
    assert value("ridestream_model_rejections_total", service="retrainer") == 0
    assert value("ridestream_windows_closed_total", service="monitor") == 0
    for rule in ("data_drift_share", "prediction_drift", "quality"):
        assert value("ridestream_drift_alerts_total", service="monitor", rule=rule) == 0
    assert value("ridestream_retrains_total", service="predictor") is None
