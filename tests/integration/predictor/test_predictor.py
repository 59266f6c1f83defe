"""The predictor on a real broker and a real MLflow registry: rides in, predictions out,
poison to the dead-letter topic, and a model promotion in the middle of a stream."""

from __future__ import annotations

import logging
import threading
import time
import uuid
from collections import Counter
from collections.abc import Callable
from typing import Any

import pytest

from predictor.service import wait_for_champion
from predictor.settings import PredictorSettings
from ridestream.events import (
    DurationPredicted,
    ModelPromoted,
    ModelRejected,
    decode,
    encode,
    utc_now,
)
from ridestream.features import FEATURES
from ridestream.kafka_broker import free_ports
from ridestream.registry import MLFLOW_HTTP_RETRIES_ENV, ModelRegistry
from ridestream.stream.deadletter import (
    HEADER_ERROR_TYPE,
    HEADER_SERVICE,
    HEADER_SOURCE_OFFSET,
    HEADER_SOURCE_TOPIC,
)
from ridestream.topics import dead_letter_topic
from ridestream.training import train_and_register
from tests.synthetic import ride, synthetic_rides

from .conftest import TIMEOUT_S, produce, produce_rides, read_topic

pytestmark = pytest.mark.integration


def register(settings: PredictorSettings, slope: float, promote: bool | None) -> str:
    trained = train_and_register(
        settings.mlflow,
        synthetic_rides(1_500, seed=int(slope * 10), slope=slope),
        synthetic_rides(300, seed=99, slope=slope),
        "gbm",
        {"test": "predictor"},
        promote,
    )
    return trained.info.version


def predictions(records: list[Any]) -> list[DurationPredicted]:
    return [decode(DurationPredicted, r.value) for r in records]


def test_every_ride_gets_one_prediction_and_poison_goes_to_the_dead_letter_topic(
    predictor_settings: PredictorSettings, start_predictor: Callable[..., Any]
) -> None:
    settings = predictor_settings
    version = register(settings, slope=3.5, promote=None)
    predictor = start_predictor(settings)
    topics = settings.topics
    rides = [ride(n) for n in range(300)]
    produce_rides(settings.kafka, topics.rides_requested, rides[:150])
    produce(
        settings.kafka,
        topics.rides_requested,
        [(b"bad-1", b"{not json"), (b"bad-2", b'{"ride_id":"x","pu_location_id":999}')],
    )
    produce_rides(settings.kafka, topics.rides_requested, rides[150:])

    out = predictions(read_topic(settings.kafka, topics.rides_predictions, expect=len(rides)))
    dead = read_topic(settings.kafka, dead_letter_topic(topics.rides_requested), expect=2)
    predictor.close()

    assert Counter(p.ride_id for p in out) == Counter(r.ride_id for r in rides)
    by_id = {p.ride_id: p for p in out}
    for r in rides:
        p = by_id[r.ride_id]
        assert p.model_name == settings.mlflow.model_name and p.model_version == version
        assert p.event_time == r.event_time
        assert set(p.features) == set(FEATURES)
        assert p.features["PULocationID"] == str(r.pu_location_id)
        assert 0 < p.predicted_duration_min < 120
    # A longer ride is predicted longer (the model learned 3.5 min per mile).
    assert by_id["ride-19"].predicted_duration_min > by_id["ride-20"].predicted_duration_min

    assert sorted(r.key for r in dead) == [b"bad-1", b"bad-2"]
    for record in dead:
        headers = dict(record.headers)
        assert headers[HEADER_SERVICE] == b"predictor"
        assert headers[HEADER_SOURCE_TOPIC] == topics.rides_requested.encode()
        assert headers[HEADER_ERROR_TYPE] in (b"ValidationError", b"PoisonRecordError")
        assert int(headers[HEADER_SOURCE_OFFSET]) >= 0
    assert dead[0].value in (b"{not json", b'{"ride_id":"x","pu_location_id":999}')


def test_a_rejection_on_models_updates_is_read_silently_and_the_champion_keeps_serving(
    predictor_settings: PredictorSettings,
    start_predictor: Callable[..., Any],
    caplog: pytest.LogCaptureFixture,
) -> None:
    settings = predictor_settings
    topics = settings.topics
    v1 = register(settings, slope=3.5, promote=None)
    v2 = register(settings, slope=6.0, promote=False)
    predictor = start_predictor(settings)
    caplog.set_level(logging.INFO, logger="predictor")
    rejection = ModelRejected(
        rejection_id=str(uuid.uuid4()),
        event_time=utc_now(),
        model_name=settings.mlflow.model_name,
        version=v2,
        champion_version=v1,
        metrics={"challenger_rmse": 9.0, "champion_rmse": 5.0},
    )
    # The same key puts a bad value right after the rejection on its partition: the warning
    # for the bad value shows that the watcher has read the rejection before it.
    key = rejection.key.encode()
    produce(settings.kafka, topics.models_updates, [(key, encode(rejection)), (key, b"{}")])
    deadline = time.monotonic() + TIMEOUT_S
    while "skipping bad update" not in caplog.text:
        assert time.monotonic() < deadline, "the watcher did not read models.updates"
        time.sleep(0.1)
    rides = [ride(n, prefix="rejected") for n in range(50)]
    produce_rides(settings.kafka, topics.rides_requested, rides)
    out = predictions(read_topic(settings.kafka, topics.rides_predictions, expect=len(rides)))
    predictor.close()

    ours = [r for r in caplog.records if r.name.startswith(("predictor", "ridestream"))]
    warnings = [r.getMessage() for r in ours if r.levelno >= logging.WARNING]
    assert len(warnings) == 1 and warnings[0].startswith("skipping bad update"), warnings
    assert Counter(p.ride_id for p in out) == Counter(r.ride_id for r in rides)
    assert {p.model_version for p in out} == {v1}


def test_promotion_mid_stream_swaps_the_model_without_losing_or_doubling_rides(
    predictor_settings: PredictorSettings, start_predictor: Callable[..., Any]
) -> None:
    settings = predictor_settings
    topics = settings.topics
    registry = ModelRegistry(settings.mlflow)
    v1 = register(settings, slope=3.5, promote=None)
    start_predictor(settings)

    # A steady stream of rides, produced in small batches while the promotion happens.
    rides = [ride(n, prefix="swap") for n in range(1_200)]
    producing = threading.Event()

    def stream() -> None:
        for start in range(0, len(rides), 40):
            produce_rides(settings.kafka, topics.rides_requested, rides[start : start + 40])
            if start == 200:
                producing.set()
            time.sleep(0.05)

    producer = threading.Thread(target=stream)
    producer.start()
    assert producing.wait(30)
    v2 = register(settings, slope=6.0, promote=False)
    previous = registry.promote(v2)
    assert previous == v1
    promotion = ModelPromoted(
        promotion_id=str(uuid.uuid4()),
        event_time=utc_now(),
        model_name=settings.mlflow.model_name,
        version=v2,
        previous_version=previous,
        reason="manual",
    )
    produce(settings.kafka, topics.models_updates, [(promotion.key.encode(), encode(promotion))])
    producer.join()
    # Loading v2 takes seconds on a busy machine: more rides until a whole chunk gets it.
    deadline = time.monotonic() + TIMEOUT_S
    while True:
        chunk = [ride(n, prefix="swap") for n in range(len(rides), len(rides) + 20)]
        produce_rides(settings.kafka, topics.rides_requested, chunk)
        rides += chunk
        out = predictions(read_topic(settings.kafka, topics.rides_predictions, expect=len(rides)))
        chunk_ids = {r.ride_id for r in chunk}
        if {p.model_version for p in out if p.ride_id in chunk_ids} == {v2}:
            break
        assert time.monotonic() < deadline, f"v{v2} not serving within {TIMEOUT_S:.0f} s"

    out = predictions(read_topic(settings.kafka, topics.rides_predictions, expect=len(rides)))
    counts = Counter(p.ride_id for p in out)
    assert counts == Counter(r.ride_id for r in rides)  # none missing, none doubled

    # Rides are keyed by id, so order holds per partition: v1 first, then v2, never back.
    order = {r.ride_id: n for n, r in enumerate(rides)}
    first = {p.ride_id: p.model_version for p in out}
    assert first[rides[0].ride_id] == v1
    assert first[rides[-1].ride_id] == v2
    by_partition: dict[int, list[str]] = {}
    records = read_topic(settings.kafka, topics.rides_predictions, expect=len(rides), timeout_s=5)
    for record in sorted(records, key=lambda r: (r.partition, r.offset)):
        p = decode(DurationPredicted, record.value)
        by_partition.setdefault(record.partition, []).append(p.model_version)
    for versions in by_partition.values():
        switched = versions.index(v2) if v2 in versions else len(versions)
        assert set(versions[:switched]) <= {v1} and set(versions[switched:]) <= {v2}
    assert {p.model_version for p in out} == {v1, v2}
    assert len(order) == len(rides)


def test_exactly_once_mode_predicts_every_ride_once_for_read_committed_readers(
    predictor_settings: PredictorSettings, start_predictor: Callable[..., Any]
) -> None:
    options = predictor_settings.predictor.model_copy(update={"exactly_once": True})
    settings = predictor_settings.model_copy(update={"predictor": options})
    version = register(settings, slope=3.5, promote=None)
    predictor = start_predictor(settings)
    rides = [ride(n, prefix="eos") for n in range(200)]
    produce_rides(settings.kafka, settings.topics.rides_requested, rides)
    records = read_topic(
        settings.kafka, settings.topics.rides_predictions, expect=len(rides), committed_only=True
    )
    predictor.close()
    out = predictions(records)
    assert Counter(p.ride_id for p in out) == Counter(r.ride_id for r in rides)
    assert {p.model_version for p in out} == {version}


def test_with_no_champion_the_predictor_waits_instead_of_crashing(
    predictor_settings: PredictorSettings, caplog: pytest.LogCaptureFixture
) -> None:
    registry = ModelRegistry(predictor_settings.mlflow)
    assert registry.champion() is None  # (the first call also makes a new store's tables)
    stop = threading.Event()
    timer = threading.Timer(1.2, stop.set)
    timer.start()
    with caplog.at_level("WARNING", logger="predictor"):
        assert wait_for_champion(registry, stop, wait_s=0.5) is None
    timer.join()
    waits = [r for r in caplog.records if "no champion" in r.getMessage()]
    assert len(waits) >= 2


def test_with_the_registry_down_the_predictor_waits_and_says_so_instead_of_crashing(
    predictor_settings: PredictorSettings,
    caplog: pytest.LogCaptureFixture,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setenv(MLFLOW_HTTP_RETRIES_ENV, "0")  # what the service sets at start
    (port,) = free_ports(1)  # nothing listens there
    down = predictor_settings.mlflow.model_copy(update={"tracking_uri": f"http://127.0.0.1:{port}"})
    stop = threading.Event()
    timer = threading.Timer(1.5, stop.set)
    timer.start()
    with caplog.at_level("WARNING", logger="predictor"):
        assert wait_for_champion(ModelRegistry(down), stop, wait_s=0.5) is None
    timer.join()
    waits = [r.getMessage() for r in caplog.records if "did not answer" in r.getMessage()]
    assert len(waits) >= 2
    assert f"127.0.0.1:{port}" in waits[0]
