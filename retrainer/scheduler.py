"""The running retrainer: the ride buffer, the alert coalescer, the training worker and the
two stream loops, scheduled by one poll thread.

Two consumers, polled in turn by the poll thread, each through
`ridestream.stream.loop.StreamLoop`:

- `rides.completed` → the buffer. Read WITHOUT a consumer group and never committed: at
  start the consumer is assigned every partition from the beginning, and the buffer is
  rebuilt from the topic (its bounds apply while reading, so memory stays bounded; the
  topic's retention bounds the time this takes, ~2 s per 100k rides). Why not seek by
  time: record timestamps are the broker's append times, not the replayed 2021 event
  times, so `offsets_for_times` cannot find "the last 14 days of event time". Why not a
  local spill: a second copy of the truth to keep in step; the topic already is one.
  Alerts are consumed only once the buffer has caught up with the end offsets seen at start.
- `drift.alerts` → the coalescer. Its partitions are assigned (not subscribed) and the offsets
  committed under group `retrainer`: there is one retrainer (it is the one writer of the
  champion alias), and a restart resumes at once, with no wait for a dead member's session to
  expire. An alert's offset is committed only after the training that covered it finished
  (`AlertCoalescer.commit_gate`; the loop's `commit_released` commits it once the run is
  done), so a retrainer killed mid-training trains for it again.

Training runs on one worker thread (`retrainer.retrain.retrain`), which publishes its model
events with a producer of its own; the poll thread keeps polling, and alerts arriving
meanwhile are coalesced into one next run. A run starts only
once the buffer has read rides.completed up to its end offsets as of the alert, so a
retrainer that lags on rides does not train on a partial window. At start, a champion
that was moved but never announced gets its `ModelPromoted` (see `retrainer.promotion`).
Every registry call is retried with bounded exponential backoff (`ridestream.registry_retry`,
RIDESTREAM_RETRAINER__REGISTRY_RETRY_*); a registry still unreachable after that ends the
service with exit code 1 and one line on stderr (the alert stays uncommitted).
SIGTERM/SIGINT: the training in hand finishes, offsets are committed, clients close.
"""

from __future__ import annotations

import dataclasses
import logging
import threading
import time
from concurrent.futures import Future, ThreadPoolExecutor

from kafka import TopicPartition
from pydantic import ValidationError

from retrainer.buffer import RideBuffer, completed_rides
from retrainer.promotion import announce_missing_promotion, latest_promotion
from retrainer.retrain import RetrainOutcome, retrain
from retrainer.settings import RetrainerSettings
from retrainer.trigger import AlertCoalescer, PendingAlert
from ridestream.events import (
    DriftDetected,
    Event,
    ModelPromoted,
    ModelRejected,
    RideCompleted,
    decode_model_update,
)
from ridestream.metrics import default_metrics
from ridestream.registry import ModelRegistry
from ridestream.settings import KafkaSettings
from ridestream.stream.admin import create_topics
from ridestream.stream.clients import build_consumer, build_producer
from ridestream.stream.loop import StreamLoop
from ridestream.stream.messages import Outgoing, Received
from ridestream.stream.produce import send_all
from ridestream.stream.topic_reader import read_records, topic_partitions
from ridestream.topics import dead_letter_topic

log = logging.getLogger("retrainer")

SERVICE = "retrainer"
READ_TOPIC_TIMEOUT_S = 30.0


def read_promotions(settings: KafkaSettings, topic: str) -> list[ModelPromoted]:
    """Every `ModelPromoted` on `topic` (read from its beginning to its end offsets)."""
    found: list[ModelPromoted] = []
    for record in read_records(
        settings, topic, timeout_s=READ_TOPIC_TIMEOUT_S, must_reach_end=True
    ):
        try:
            update = decode_model_update(record.value or b"")
        except ValidationError:
            log.warning("not a model update: %s[%d]@%d", topic, record.partition, record.offset)
            continue
        if isinstance(update, ModelPromoted):
            found.append(update)
    return found


class Retrainer:
    """The running service: buffer, coalescer, worker thread, and the two stream loops."""

    def __init__(self, settings: RetrainerSettings) -> None:
        self.settings = settings
        self.options = settings.retrainer
        self.topics = settings.topics
        kafka = settings.kafka
        create_topics(
            kafka,
            [
                *(self.topics.rides_completed, self.topics.drift_alerts),
                self.topics.models_updates,
                *(
                    dead_letter_topic(t)
                    for t in (self.topics.rides_completed, self.topics.drift_alerts)
                ),
            ],
            partitions=settings.broker.partitions,
        )
        # The loops' producer (dead letters) is used by the poll thread only; the model events
        # of a training run have a producer of their own, so the worker thread shares no client
        # and its flush waits for its own event only.
        self.producer = build_producer(kafka, client_id=f"{kafka.client_id}-{SERVICE}")
        self.publisher = build_producer(kafka, client_id=f"{kafka.client_id}-{SERVICE}-models")
        self.buffer = RideBuffer(self.options.buffer_age, self.options.buffer_rows)
        self.coalescer = AlertCoalescer()
        self.registry = ModelRegistry(settings.mlflow)
        self.backoff = self.options.registry_backoff
        self.executor = ThreadPoolExecutor(max_workers=1, thread_name_prefix="retrain")
        self.running: Future[RetrainOutcome] | None = None
        self.outcomes: list[RetrainOutcome] = []
        self.metrics = default_metrics()

        rides_consumer = build_consumer(kafka, group_id=None)
        rides_topic = self.topics.rides_completed
        self.rides_partitions = topic_partitions(rides_consumer, rides_topic, READ_TOPIC_TIMEOUT_S)
        rides_consumer.assign(self.rides_partitions)
        rides_consumer.seek_to_beginning(*self.rides_partitions)
        self.rides_loop = StreamLoop(
            consumer=rides_consumer,
            producer=self.producer,
            service=SERVICE,
            decoders={rides_topic: RideCompleted},
            max_value_bytes=kafka.max_message_bytes,
            poll_timeout_ms=self.options.poll_timeout_ms,
            max_records=self.options.max_poll_records,
        )
        self.alerts_loop: StreamLoop | None = None
        self._rides_target: dict[TopicPartition, int] | None = None

    def publish(self, event: Event) -> None:
        """Publish a model event on models.updates, flushed (from the worker thread, or from the
        poll thread at start, before any run)."""
        send_all(self.publisher, [Outgoing.of(self.topics.models_updates, event)])
        if isinstance(event, ModelPromoted):
            self.metrics.record_promotion(SERVICE, event)
            self.metrics.set_model_version(SERVICE, event.version)
        elif isinstance(event, ModelRejected):
            self.metrics.record_rejection(SERVICE, event)

    def handle_rides(self, batch: list[Received]) -> list[Outgoing]:
        """Completed rides go into the buffer; nothing is produced."""
        events = [item.event for item in batch if isinstance(item.event, RideCompleted)]
        if events:
            self.buffer.append(completed_rides(events))
        return []

    def handle_alerts(self, batch: list[Received]) -> list[Outgoing]:
        """Drift alerts are queued for the next training; nothing is produced now."""
        alerts = [
            PendingAlert(item.event.alert_id, item.topic, item.partition, item.offset)
            for item in batch
            if isinstance(item.event, DriftDetected)
        ]
        if alerts:
            log.info("drift alerts %s queued", ", ".join(a.alert_id for a in alerts))
        self.coalescer.offer(alerts)
        return []

    def announce_missing_promotion(self) -> None:
        """Publish a `ModelPromoted` for a champion that was moved but never announced."""
        promotions = read_promotions(self.settings.kafka, self.topics.models_updates)
        announced = latest_promotion(promotions, self.registry.name)
        announce_missing_promotion(self.registry, announced, self.publish, self.backoff)

    def catch_up(self, stop: threading.Event) -> None:
        """Rebuild the buffer: read rides.completed up to the end offsets seen now."""
        consumer = self.rides_loop.consumer
        end = consumer.end_offsets(self.rides_partitions)
        started = time.perf_counter()
        while not stop.is_set() and any(
            consumer.position(tp) < end[tp] for tp in self.rides_partitions
        ):
            self.rides_loop.run_once(self.handle_rides)
        stats = self.buffer.stats()
        log.info(
            "buffer rebuilt from %s in %.1f s: %d labelled rides, drop-offs %s..%s",
            self.topics.rides_completed,
            time.perf_counter() - started,
            stats.rows,
            stats.oldest_dropoff,
            stats.newest_dropoff,
        )

    def step(self) -> None:
        """One turn of the poll thread: rides, alerts, then the worker's state."""
        assert self.alerts_loop is not None
        for loop, handle, topic in (
            (self.rides_loop, self.handle_rides, self.topics.rides_completed),
            (self.alerts_loop, self.handle_alerts, self.topics.drift_alerts),
        ):
            stats = loop.run_once(handle)
            if stats.polled:
                self.metrics.record_batch(SERVICE, stats, topic_in=topic)
                self.metrics.record_consumer_lag(SERVICE, loop.consumer)
        if self.running is not None and self.running.done():
            self._finish()
        if self.running is None and self.coalescer.pending and self._rides_caught_up():
            self._start()

    def _rides_caught_up(self) -> bool:
        """True once the buffer holds every ride produced before the pending alerts were seen
        (the end offsets of rides.completed are taken once, when the first is waiting)."""
        consumer = self.rides_loop.consumer
        if self._rides_target is None:
            self._rides_target = consumer.end_offsets(self.rides_partitions)
        return all(consumer.position(tp) >= end for tp, end in self._rides_target.items())

    def _start(self) -> None:
        self._rides_target = None
        alerts = self.coalescer.start()
        if alerts is None:
            return
        snapshot = self.buffer.snapshot()
        ids = [a.alert_id for a in alerts]
        log.info("retraining for %d alert(s) on %d buffered rides", len(ids), len(snapshot))
        self.running = self.executor.submit(
            retrain, self.settings.mlflow, self.options, snapshot, ids, self.publish
        )
        self.metrics.record_retrain(SERVICE)

    def _finish(self) -> None:
        assert self.running is not None and self.alerts_loop is not None
        future, self.running = self.running, None
        # A bug, or a registry still unreachable after the retries, ends the service here.
        outcome = future.result()
        self.outcomes.append(outcome)
        self.coalescer.finish()
        # The alerts this run covered release their offsets: committed as the loop commits.
        self.alerts_loop.commit_released()

    def start(self, stop: threading.Event) -> None:
        """Announce a missing promotion, rebuild the buffer, then assign the alert partitions."""
        # A stop request ends a wait between registry retries at once (then the service exits).
        self.backoff = dataclasses.replace(self.backoff, sleep=stop.wait)
        self.announce_missing_promotion()
        champion = self.backoff.call("read the champion", self.registry.champion)
        if champion is not None:
            self.metrics.set_model_version(SERVICE, champion.version)
        self.catch_up(stop)
        # Assigned, not subscribed: the group only stores the committed offsets, so a restart
        # after a kill resumes at once instead of waiting out the dead member's session.
        alerts_consumer = build_consumer(self.settings.kafka, group_id=self.options.group_id)
        alert_partitions = topic_partitions(
            alerts_consumer, self.topics.drift_alerts, READ_TOPIC_TIMEOUT_S
        )
        alerts_consumer.assign(alert_partitions)
        for tp in alert_partitions:  # find the coordinator and the committed offsets now
            alerts_consumer.position(tp)
        self.alerts_loop = StreamLoop(
            consumer=alerts_consumer,
            producer=self.producer,
            service=SERVICE,
            decoders={self.topics.drift_alerts: DriftDetected},
            max_value_bytes=self.settings.kafka.max_message_bytes,
            poll_timeout_ms=self.options.poll_timeout_ms,
            commit_gate=self.coalescer.commit_gate,
        )
        log.info("retrainer ready: waiting for alerts on %s", self.topics.drift_alerts)

    def serve(self, stop: threading.Event) -> None:
        """Poll rides and alerts, start and finish trainings, until `stop` is set."""
        while not stop.is_set():
            self.step()
        if self.running is not None:
            log.info("stopping: waiting for the training in hand")
            self.running.result()
            self._finish()

    def run(self, stop: threading.Event) -> None:
        """`start`, then `serve` until `stop` is set."""
        self.start(stop)
        self.serve(stop)

    def close(self) -> None:
        """Stop the worker, close the consumers and the producers (after a flush)."""
        self.executor.shutdown(wait=True)
        self.rides_loop.consumer.close()
        if self.alerts_loop is not None:
            self.alerts_loop.consumer.close()
        for producer in (self.producer, self.publisher):
            producer.flush()
            producer.close()
        log.info("retrainer stopped after %d training run(s)", len(self.outcomes))


def run(settings: RetrainerSettings, stop: threading.Event) -> Retrainer:
    """Run the retrainer until `stop` is set; returns it (its outcomes) after closing it."""
    service = Retrainer(settings)
    try:
        service.run(stop)
    finally:
        service.close()
    return service
