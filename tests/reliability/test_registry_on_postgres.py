"""MLflow as teams run it (and docker-compose.yml describes): `mlflow server` with a PostgreSQL
backend store and proxied artifacts (`--serve-artifacts`), reached over HTTP only.

Debian's PostgreSQL on a loopback port (see postgres.py), a real server, the predictor and the
retrainer as real processes on the session's broker: training registers the champion, a drift
alert makes the retrainer train, register and promote a challenger, the predictor hot-swaps to
it, and `ridestream models` lists both versions with their aliases. Then the rows are checked
in PostgreSQL itself, so the test fails if the server quietly fell back to a file store.
"""

from __future__ import annotations

import logging
import os
import re
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest

from retrainer.retrain import CHALLENGER
from ridestream.events import ModelPromoted, decode_model_update
from ridestream.registry import PREVIOUS, ModelRegistry
from ridestream.settings import KafkaSettings
from ridestream.stream.admin import create_topics
from ridestream.topics import Topics
from tests.environment import broker_and_registry_environment
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
from tests.reliability.postgres import PostgresServer
from tests.reliability.test_registry_outage import RIDES_PER_BATCH, predictions_of, produce
from tests.reliability.topic_io import read_topic
from tests.synthetic import ride

pytestmark = [pytest.mark.integration, pytest.mark.reliability, pytest.mark.faults]
log = logging.getLogger("tests.registry_on_postgres")


@pytest.fixture(scope="module")
def postgres() -> Iterator[PostgresServer]:
    server = PostgresServer()
    server.start()
    yield server
    server.stop()


@pytest.fixture(scope="module")
def mlflow_server(
    postgres: PostgresServer, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[MlflowServer]:
    server = MlflowServer(tmp_path_factory.mktemp("mlflow-postgres"), postgres.uri)
    server.start()
    yield server
    server.stop()


def test_train_promote_hot_swap_and_models_work_against_mlflow_on_postgres(
    postgres: PostgresServer,
    mlflow_server: MlflowServer,
    kafka_settings: KafkaSettings,
    topic_prefix: str,
    group_id: str,
    tmp_path: Path,
) -> None:
    kafka = kafka_settings
    topics = Topics(topic_prefix)
    mlflow = mlflow_server.settings("ride-duration-" + topic_prefix.strip("."))
    assert mlflow.tracking_uri.startswith("http://")
    champion = register_champion(mlflow)
    create_topics(kafka, topics.all())
    produce(kafka, topics.rides_completed, list(completions(2_000, seed=7, slope=5.5)))

    predictor = Service(
        "predictor",
        "predictor",
        service_env(
            kafka, topic_prefix, mlflow, PREDICTOR__GROUP_ID=group_id, PREDICTOR__ALIAS_CHECK_S="1"
        ),
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

        produce(kafka, topics.drift_alerts, [quality_alert(f"a-{group_id}", champion, "w-pg")])

        def promoted() -> list[ModelPromoted]:
            records = read_topic(kafka, topics.models_updates, expect=10**9, timeout_s=2.0)
            updates = [decode_model_update(r.value) for r in records]
            return [e for e in updates if isinstance(e, ModelPromoted) and e.version != champion]

        wait_until("the retrainer promotes a challenger", lambda: bool(promoted()), 120)
        challenger = promoted()[-1].version
        predictor.wait_for_log(rf"loaded {re.escape(mlflow.model_name)} version {challenger}", 60)
        after = [ride(n, "after") for n in range(RIDES_PER_BATCH)]
        produce(kafka, topics.rides_requested, list(after))
        served_after = predictions_of(kafka, topics.rides_predictions, {r.ride_id for r in after})
        assert predictor.exited() is None and retrainer.exited() is None
    finally:
        predictor.stop()
        retrainer.stop()

    models = subprocess.run(
        [sys.executable, "-m", "ridestream.cli", "models"],
        env={**os.environ, **broker_and_registry_environment(kafka, topic_prefix, mlflow)},
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )
    registry = ModelRegistry(mlflow)
    versions_in_postgres = postgres.query(
        "select count(*) from model_versions where name = %s", mlflow.model_name
    )

    assert set(served_before.values()) == {champion}
    assert set(served_after.values()) == {challenger}
    assert registry.champion().version == challenger != champion
    assert registry.alias(PREVIOUS).version == champion
    assert registry.alias(CHALLENGER).version == challenger
    assert models.returncode == 0, models.stderr
    assert f"{mlflow.model_name} in {mlflow_server.uri}" in models.stdout
    lines = [line.split() for line in models.stdout.splitlines()]
    rows = {cells[0]: " ".join(cells) for cells in lines if cells and cells[0].isdigit()}
    assert "champion" in rows[challenger] and "previous" in rows[champion]
    assert versions_in_postgres == 2
    log.info(
        "mlflow server on PostgreSQL (%s): champion v%s trained, v%s promoted by the "
        "retrainer and hot-swapped by the predictor (%d rides before, %d after); `ridestream "
        "models`:\n%s",
        postgres.uri,
        champion,
        challenger,
        len(served_before),
        len(served_after),
        models.stdout,
    )
