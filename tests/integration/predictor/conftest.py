"""Fixtures for the predictor on a real broker and a real MLflow store (SQLite in tmp)."""

from __future__ import annotations

import threading
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from kafka import KafkaConsumer, KafkaProducer

from predictor.service import run
from predictor.settings import PredictorOptions, PredictorSettings
from ridestream.events import RideRequested, encode
from ridestream.settings import KafkaSettings, MlflowSettings
from ridestream.stream.loop import LoopStats

TIMEOUT_S = 30.0


@pytest.fixture(scope="module")
def mlflow_store(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """One SQLite MLflow store per module: creating its schema takes seconds."""
    return tmp_path_factory.mktemp("mlflow")


@pytest.fixture
def mlflow_settings(mlflow_store: Path, topic_prefix: str) -> MlflowSettings:
    """The module's store, with a model and experiment of the test's own."""
    name = "ride-duration-" + topic_prefix.strip(".")
    return MlflowSettings(
        tracking_uri=f"sqlite:///{mlflow_store}/mlflow.db",
        artifact_location=str(mlflow_store / "artifacts" / name),
        experiment=name,
        model_name=name,
    )


@pytest.fixture
def predictor_settings(
    kafka_settings: KafkaSettings, topic_prefix: str, group_id: str, mlflow_settings: MlflowSettings
) -> PredictorSettings:
    return PredictorSettings(
        kafka=kafka_settings,
        mlflow=mlflow_settings,
        topic_prefix=topic_prefix,
        predictor=PredictorOptions(
            group_id=group_id,
            champion_wait_s=0.5,
            log_interval_s=1.0,
            poll_timeout_ms=100,
            gc_threshold=0,  # pytest's process: leave its collector alone
        ),
    )


class RunningPredictor:
    """The predictor's `run` in a thread, stopped like SIGTERM stops it."""

    def __init__(self, settings: PredictorSettings) -> None:
        self.stop = threading.Event()
        self.ready = threading.Event()
        self.stats: LoopStats | None = None
        self.error: BaseException | None = None
        self.thread = threading.Thread(target=self._run, args=(settings,), daemon=True)

    def _run(self, settings: PredictorSettings) -> None:
        try:
            self.stats = run(settings, self.stop, self.ready)
        except BaseException as error:  # surfaced by the test through `close`
            self.error = error
            self.ready.set()

    def start(self) -> RunningPredictor:
        self.thread.start()
        assert self.ready.wait(TIMEOUT_S), "predictor not ready"
        if self.error:
            raise self.error
        return self

    def close(self) -> None:
        self.stop.set()
        self.thread.join(TIMEOUT_S)
        assert not self.thread.is_alive(), "predictor did not stop"
        if self.error:
            raise self.error


@pytest.fixture
def start_predictor() -> Iterator[Any]:
    running: list[RunningPredictor] = []

    def start(settings: PredictorSettings) -> RunningPredictor:
        predictor = RunningPredictor(settings)
        running.append(predictor)
        return predictor.start()

    yield start
    for predictor in running:
        predictor.stop.set()
    for predictor in running:
        predictor.thread.join(TIMEOUT_S)


def produce(
    settings: KafkaSettings, topic: str, messages: list[tuple[bytes | None, bytes]]
) -> None:
    producer = KafkaProducer(**settings.client_config())
    for key, value in messages:
        producer.send(topic, key=key, value=value)
    producer.flush()
    producer.close()


def produce_rides(settings: KafkaSettings, topic: str, rides: list[RideRequested]) -> None:
    produce(settings, topic, [(r.key.encode(), encode(r)) for r in rides])


def read_topic(
    settings: KafkaSettings,
    topic: str,
    expect: int,
    timeout_s: float = TIMEOUT_S,
    committed_only: bool = False,
) -> list[Any]:
    """Every record of `topic`, read until `expect` arrived (and 1 s more) or the timeout."""
    consumer = KafkaConsumer(
        topic,
        **settings.client_config(),
        group_id=None,
        auto_offset_reset="earliest",
        isolation_level="read_committed" if committed_only else "read_uncommitted",
    )
    records: list[Any] = []
    deadline = time.monotonic() + timeout_s
    try:
        while time.monotonic() < deadline:
            for batch in consumer.poll(timeout_ms=300).values():
                records.extend(batch)
            if len(records) >= expect:
                # A little longer, so a duplicate would show up too.
                deadline = min(deadline, time.monotonic() + 1.0)
    finally:
        consumer.close()
    return records
