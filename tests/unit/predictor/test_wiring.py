"""Small pieces of the predictor's wiring that need no broker."""

from __future__ import annotations

import gc
import os
from collections.abc import Iterator

import pytest

from predictor.service import transactional_id
from predictor.settings import PredictorOptions, PredictorSettings
from ridestream.runner import tune_gc


@pytest.fixture
def restored_gc() -> Iterator[None]:
    thresholds = gc.get_threshold()
    yield
    gc.unfreeze()
    gc.set_threshold(*thresholds)


def test_gc_tuning_freezes_startup_objects_and_raises_the_young_threshold(
    restored_gc: None,
) -> None:
    tune_gc(50_000)
    assert gc.get_threshold()[0] == 50_000
    assert gc.get_freeze_count() > 0


def test_gc_threshold_zero_leaves_the_collector_alone(restored_gc: None) -> None:
    before = gc.get_threshold()
    gc.unfreeze()
    tune_gc(0)
    assert gc.get_threshold() == before
    assert gc.get_freeze_count() == 0


def test_transactional_id_is_unique_to_the_process(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("RIDESTREAM_PREDICTOR__TRANSACTIONAL_ID_PREFIX", "pred-a")
    settings = PredictorSettings()
    assert transactional_id(settings).startswith("pred-a-")
    assert transactional_id(settings).endswith(f"-{os.getpid()}")


def test_predictor_settings_come_from_the_environment(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("RIDESTREAM_PREDICTOR__EXACTLY_ONCE", "true")
    monkeypatch.setenv("RIDESTREAM_PREDICTOR__MAX_POLL_RECORDS", "1000")
    monkeypatch.setenv("RIDESTREAM_TOPIC_PREFIX", "x.")
    settings = PredictorSettings()
    assert settings.predictor.exactly_once and settings.predictor.max_poll_records == 1000
    assert settings.topics.rides_requested == "x.rides.requested"
    assert PredictorOptions().group_id == "predictor"
