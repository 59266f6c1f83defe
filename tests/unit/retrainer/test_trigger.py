"""Coalescing: one training at a time, alerts during a run become one next run, offsets held."""

from __future__ import annotations

from kafka import TopicPartition

from retrainer.trigger import AlertCoalescer, PendingAlert

TOPIC = "drift.alerts"


def alert(n: int, partition: int = 0, offset: int | None = None) -> PendingAlert:
    return PendingAlert(f"alert-{n}", TOPIC, partition, n if offset is None else offset)


def test_first_alert_starts_a_run_at_once():
    coalescer = AlertCoalescer()
    coalescer.offer([alert(0)])
    assert [a.alert_id for a in coalescer.start() or []] == ["alert-0"]
    assert coalescer.busy


def test_alerts_during_a_run_are_coalesced_into_one_next_run():
    coalescer = AlertCoalescer()
    coalescer.offer([alert(0)])
    coalescer.start()
    coalescer.offer([alert(1)])
    coalescer.offer([alert(2), alert(3)])
    assert coalescer.start() is None  # one training at a time
    coalescer.finish()
    next_run = coalescer.start()
    assert [a.alert_id for a in next_run or []] == ["alert-1", "alert-2", "alert-3"]
    assert coalescer.runs_started == 2
    coalescer.finish()
    assert coalescer.start() is None


def test_an_alert_delivered_twice_is_queued_once():
    coalescer = AlertCoalescer()
    coalescer.offer([alert(0)])
    coalescer.start()
    coalescer.offer([alert(0, offset=0), alert(1), alert(1)])
    coalescer.finish()
    assert [a.alert_id for a in coalescer.start() or []] == ["alert-1"]


def test_offsets_of_alerts_not_yet_trained_on_are_held_back():
    coalescer = AlertCoalescer()
    tp0, tp1 = TopicPartition(TOPIC, 0), TopicPartition(TOPIC, 1)
    coalescer.offer([alert(5, partition=0)])
    assert coalescer.commit_gate({tp0: 6, tp1: 40}) == {tp0: 5, tp1: 40}
    coalescer.start()
    coalescer.offer([alert(6, partition=0)])
    assert coalescer.commit_gate({tp0: 7}) == {tp0: 5}
    coalescer.finish()
    assert coalescer.committable() == {tp0: 6, tp1: 40}
    coalescer.start()
    coalescer.finish()
    assert coalescer.committable() == {tp0: 7, tp1: 40}
