"""The MLflow registry goes away: a real `mlflow server` (SQLite store, served artifacts) is
stopped while the predictor and the retrainer run as real processes, and started again.

- The predictor keeps serving the model it holds: rides produced while the server is down
  are all predicted, by the current version; its alias checks fail and are logged.
- The retrainer gets a drift alert while the server is down: every registry call of the run
  is retried with bounded exponential backoff (logged), and once the server is back the run
  finishes. Afterwards the registry and models.updates agree: `champion` moved to the
  challenger AND exactly one ModelPromoted announced it (neither half without the other).
- The predictor then swaps to the promoted version.
- The monitor, started while the server is down, retries reading the champion's reference
  (bounded, logged) and starts once the server is back; a promotion that arrives while the
  server is down again is retried inside its handler the same way, and the monitor switches
  to the promoted version's reference once the server is back. It never exits.
"""

from __future__ import annotations

import logging
import re
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from ridestream.events import (
    DurationPredicted,
    Event,
    ModelPromoted,
    decode,
    decode_model_update,
    encode,
    utc_now,
)
from ridestream.kafka_broker import free_ports
from ridestream.registry import CHALLENGER, PREVIOUS, ModelRegistry
from ridestream.settings import KafkaSettings, MlflowSettings
from ridestream.stream.admin import create_topics
from ridestream.topics import Topics
from tests.reliability.outage import (
    RETRAIN_QUICKLY,
    MlflowServer,
    Service,
    completions,
    quality_alert,
    register_champion,
    service_env,
    wait_until,
)
from tests.reliability.topic_io import produce_raw, read_topic
from tests.synthetic import ride

pytestmark = [pytest.mark.integration, pytest.mark.reliability, pytest.mark.faults]
log = logging.getLogger("tests.registry_outage")

RIDES_PER_BATCH = 200
# The retrainer's budget while the server is down: waits 0.5, 1, 2, 4, 8, 8, ... (10 tries,
# 47.5 s in all), far more than the outage plus a server restart on a loaded machine.
RETRY = {"ATTEMPTS": "10", "BACKOFF_S": "0.5", "MAX_BACKOFF_S": "8"}
RETRY_LINE = r"registry unavailable: .* retrying in"


@pytest.fixture(scope="module")
def mlflow_server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[MlflowServer]:
    """One real MLflow server per module: its first start creates the store (seconds)."""
    server = MlflowServer(tmp_path_factory.mktemp("mlflow-server"))
    server.start()
    yield server
    server.stop()


def produce(settings: KafkaSettings, topic: str, events: list[Event]) -> None:
    produce_raw(settings, topic, [(e.key.encode(), encode(e)) for e in events])


def predictions_of(settings: KafkaSettings, topic: str, ride_ids: set[str]) -> dict[str, str]:
    """ride id -> model version of the predictions of `ride_ids` (read until all arrived)."""
    found: dict[str, str] = {}

    def all_there() -> bool:
        records = read_topic(settings, topic, expect=10**9, timeout_s=2.0)
        for record in records:
            prediction = decode(DurationPredicted, record.value)
            if prediction.ride_id in ride_ids:
                found[prediction.ride_id] = prediction.model_version
        return set(found) == ride_ids

    wait_until(f"predictions of {len(ride_ids)} rides", all_there, timeout_s=60)
    return found


def promotions(settings: KafkaSettings, topic: str) -> list[ModelPromoted]:
    records = read_topic(settings, topic, expect=10**9, timeout_s=2.0)
    updates = [decode_model_update(r.value) for r in records]
    events = [e for e in updates if isinstance(e, ModelPromoted)]
    return sorted(events, key=lambda e: e.event_time)


def test_registry_outage_predictor_keeps_serving_and_retrainer_finishes_the_promotion_after(
    mlflow_server: MlflowServer,
    kafka_settings: KafkaSettings,
    topic_prefix: str,
    group_id: str,
    tmp_path: Path,
) -> None:
    started = time.monotonic()
    kafka = kafka_settings
    topics = Topics(topic_prefix)
    mlflow = mlflow_server.settings("ride-duration-" + topic_prefix.strip("."))
    champion = register_champion(mlflow)
    create_topics(kafka, [topics.rides_requested, topics.rides_completed, topics.drift_alerts])
    # Rides of a city that got slower (5.5 min per mile against the champion's 3.5): the
    # challenger beats the champion by far more than the margin.
    produce(kafka, topics.rides_completed, list(completions(2_000, seed=7, slope=5.5)))

    predictor = Service(
        "predictor",
        "predictor",
        {
            **service_env(
                kafka,
                topic_prefix,
                mlflow,
                PREDICTOR__GROUP_ID=group_id,
                PREDICTOR__ALIAS_CHECK_S="1",
                PREDICTOR__POLL_TIMEOUT_MS="100",
            ),
            # One try per check, so each failed check shows in the log during the outage
            # (MLflow's default retries one call for ~4 min; see the report).
            "MLFLOW_HTTP_REQUEST_MAX_RETRIES": "0",
        },
        tmp_path,
    )
    retrainer = Service(
        "retrainer",
        "retrainer",
        service_env(
            kafka,
            topic_prefix,
            mlflow,
            RETRAINER__GROUP_ID=f"{group_id}-retrainer",
            **RETRAIN_QUICKLY,
            RETRAINER__POLL_TIMEOUT_MS="100",
            **{f"RETRAINER__REGISTRY_RETRY_{k}": v for k, v in RETRY.items()},
        ),
        tmp_path,
    )
    try:
        predictor.start()
        retrainer.start()
        predictor.wait_for_log(r"predicting .* as group", timeout_s=90)
        retrainer.wait_for_log(r"retrainer ready", timeout_s=90)

        before = [ride(n, "before") for n in range(RIDES_PER_BATCH)]
        produce(kafka, topics.rides_requested, list(before))
        served_before = predictions_of(kafka, topics.rides_predictions, {r.ride_id for r in before})

        # -- the registry goes away --------------------------------------------------------
        mlflow_server.stop()
        down_at = time.monotonic()
        during = [ride(n, "during") for n in range(RIDES_PER_BATCH)]
        produce(kafka, topics.rides_requested, list(during))
        served_during = predictions_of(kafka, topics.rides_predictions, {r.ride_id for r in during})
        predictor.wait_for_log(r"champion check failed \(keeping the current model\)", 30)
        alert = quality_alert(f"alert-{group_id}", champion, "w-outage")
        produce(kafka, topics.drift_alerts, [alert])
        wait_until(
            "the retrainer retries the registry twice",
            lambda: retrainer.count(RETRY_LINE) >= 2,
            timeout_s=60,
        )
        assert predictor.exited() is None and retrainer.exited() is None
        restart_s = mlflow_server.start()
        outage_s = time.monotonic() - down_at

        # -- the registry is back: the run finishes, the predictor swaps -------------------
        wait_until(
            "ModelPromoted of the challenger on models.updates",
            lambda: any(e.version != champion for e in promotions(kafka, topics.models_updates)),
            timeout_s=90,
        )
        announced = promotions(kafka, topics.models_updates)
        challenger = announced[-1].version
        predictor.wait_for_log(rf"loaded {re.escape(mlflow.model_name)} version {challenger}", 60)
        after = [ride(n, "after") for n in range(RIDES_PER_BATCH)]
        produce(kafka, topics.rides_requested, list(after))
        served_after = predictions_of(kafka, topics.rides_predictions, {r.ride_id for r in after})

        retries = retrainer.count(RETRY_LINE)
        failed_checks = predictor.count(r"champion check failed")
        assert predictor.exited() is None, "the predictor must ride out a registry outage"
        assert retrainer.exited() is None, "the retrainer must ride out a short registry outage"
    finally:
        predictor.stop()
        retrainer.stop()
        if mlflow_server.process is None or mlflow_server.process.poll() is not None:
            mlflow_server.start()  # for the registry checks below and the next test

    # The predictor served its model throughout; the outage cost no ride.
    assert set(served_before.values()) == {champion}
    assert set(served_during.values()) == {champion}
    assert set(served_after.values()) == {challenger}
    assert failed_checks >= 1
    # The retrainer retried with backoff, and the promotion is whole: alias AND event.
    assert retries >= 2
    registry = ModelRegistry(mlflow)
    assert registry.champion().version == challenger != champion
    assert registry.alias(PREVIOUS).version == champion
    assert registry.alias(CHALLENGER) is None  # decided: nothing under live evaluation
    tags = registry.version(challenger).tags
    assert tags["decision"] == "promoted"
    assert tags["trigger_alert_id"] == alert.alert_id
    assert [(e.version, e.reason, e.previous_version) for e in announced] == [
        (champion, "initial", None),
        (challenger, "drift", champion),
    ]
    assert announced[-1].trigger_alert_id == alert.alert_id
    log.info(
        "registry outage of %.1f s (server restart %.1f s): predictor rode it out "
        "(%d failed alias checks, %d rides predicted by v%s while down), retrainer retried "
        "%d time(s) and promoted v%s -> v%s once; %d rides checked, none lost; test %.0f s",
        outage_s,
        restart_s,
        failed_checks,
        len(served_during),
        champion,
        retries,
        champion,
        challenger,
        len(served_before) + len(served_during) + len(served_after),
        time.monotonic() - started,
    )


def test_retrainer_that_runs_out_of_registry_retries_exits_non_zero_and_announces_nothing(
    kafka_settings: KafkaSettings, topic_prefix: str, group_id: str, tmp_path: Path
) -> None:
    (port,) = free_ports(1)  # no registry answers there
    name = "ride-duration-" + topic_prefix.strip(".")
    mlflow = MlflowSettings(
        tracking_uri=f"http://127.0.0.1:{port}",
        artifact_location=f"mlflow-artifacts:/{name}",
        experiment=name,
        model_name=name,
    )
    retrainer = Service(
        "retrainer",
        "retrainer",
        service_env(
            kafka_settings,
            topic_prefix,
            mlflow,
            RETRAINER__GROUP_ID=group_id,
            RETRAINER__REGISTRY_RETRY_ATTEMPTS="3",
            RETRAINER__REGISTRY_RETRY_BACKOFF_S="0.2",
        ),
        tmp_path,
    )
    try:
        retrainer.start()
        wait_until("the retrainer exits", lambda: retrainer.exited() is not None, timeout_s=90)
    finally:
        retrainer.stop()

    output = retrainer.logs()
    assert retrainer.exit_codes == [1]
    assert retrainer.count(RETRY_LINE) == 2  # 3 attempts: 2 waits, then it gives up
    assert "read the champion failed 3 time(s), giving up" in output
    assert (
        output.rstrip()
        .splitlines()[-1]
        .startswith(
            "ridestream retrainer: the MLflow registry did not answer: read the champion failed 3"
        )
    )
    assert promotions(kafka_settings, Topics(topic_prefix).models_updates) == []


def test_monitor_rides_out_a_registry_outage_at_start_and_at_a_promotion(
    mlflow_server: MlflowServer,
    kafka_settings: KafkaSettings,
    topic_prefix: str,
    group_id: str,
    tmp_path: Path,
) -> None:
    kafka = kafka_settings
    topics = Topics(topic_prefix)
    mlflow = mlflow_server.settings("ride-duration-" + topic_prefix.strip("."))
    champion = register_champion(mlflow)
    challenger = register_champion(mlflow, seed=36, promote=False)
    reference_line = r"reference of {} v{}: "
    monitor = Service(
        "monitor",
        "monitor",
        service_env(
            kafka,
            topic_prefix,
            mlflow,
            MONITOR__GROUP_ID=group_id,
            MONITOR__SNAPSHOTS="false",
            **{f"MONITOR__REGISTRY_RETRY_{k}": v for k, v in RETRY.items()},
        ),
        tmp_path,
    )
    try:
        # -- down while the monitor starts: the champion's reference is retried ------------
        mlflow_server.stop()
        monitor.start()
        wait_until(
            "the monitor retries the registry twice at start",
            lambda: monitor.count(RETRY_LINE) >= 2,
            timeout_s=90,
        )
        assert monitor.exited() is None
        mlflow_server.start()
        monitor.wait_for_log(reference_line.format(re.escape(mlflow.model_name), champion), 60)
        retries_at_start = monitor.count(RETRY_LINE)

        # -- down when a promotion arrives: the handler's reference load is retried --------
        mlflow_server.stop()
        promotion = ModelPromoted(
            promotion_id=f"promotion-{group_id}",
            event_time=utc_now(),
            model_name=mlflow.model_name,
            version=challenger,
            previous_version=champion,
            reason="manual",
        )
        produce(kafka, topics.models_updates, [promotion])
        wait_until(
            "the monitor retries the registry twice at the promotion",
            lambda: monitor.count(RETRY_LINE) >= retries_at_start + 2,
            timeout_s=60,
        )
        assert monitor.exited() is None
        mlflow_server.start()
        monitor.wait_for_log(reference_line.format(re.escape(mlflow.model_name), challenger), 60)
        assert monitor.exited() is None, "the monitor must ride out a registry outage"
    finally:
        monitor.stop()
        if mlflow_server.process is None or mlflow_server.process.poll() is not None:
            mlflow_server.start()  # for the next test
    assert monitor.exit_codes in ([], [0]), monitor.logs()[-3000:]
