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

The live gate (`shadow` / `canary`, `retrainer.live`) is held by the poll thread: a training
run whose challenger passed the offline check hands it back (both models in memory); the poll
thread replaces any challenger still under evaluation (rejected, "superseded"), points the
`challenger` alias at it, publishes `ChallengerStarted` and seeds the evaluation from the
buffer. Every rides batch then adds its labelled rides (both models predict them) and the gate
looks at the event-time watermark: the minimum over the partitions of rides.completed of the
newest drop-off read (monotone; a partition that was empty at start joins when it delivers).
A verdict promotes (champion moved, ModelPromoted with the evidence, alias cleared) or
rejects (ModelRejected with the evidence and reason, alias cleared). Only the poll thread
moves the `challenger` alias or ends an evaluation. After a restart the challenger is found
from the alias and its version tags (a missing `ChallengerStarted` is published again), BEFORE
the buffer is rebuilt, so the rebuild feeds the evaluation the same rides in the same looks.
"""

from __future__ import annotations

import dataclasses
import logging
import threading
import time
from concurrent.futures import Future, ThreadPoolExecutor
from datetime import datetime
from typing import Any

from kafka import TopicPartition
from pydantic import ValidationError

from retrainer.buffer import RideBuffer, completed_rides
from retrainer.live import LiveDecision, LiveEvaluation, live_evidence
from retrainer.promotion import (
    TAG_DECISION,
    RejectReason,
    announce_missing_promotion,
    latest_promotion,
    promote_and_announce,
    promotion_id,
    rejected_event,
)
from retrainer.retrain import RetrainOutcome, retrain
from retrainer.settings import RetrainerSettings
from retrainer.trigger import AlertCoalescer, PendingAlert
from ridestream.events import (
    AnyModelUpdate,
    ChallengerStarted,
    DriftDetected,
    Event,
    ModelPromoted,
    ModelRejected,
    RideCompleted,
    decode_model_update,
    utc_now,
)
from ridestream.metrics import default_metrics
from ridestream.registry import (
    CHALLENGER,
    TAG_CANARY_FRACTION,
    TAG_GATE,
    ModelInfo,
    ModelRegistry,
)
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


# Version tags of a challenger under live evaluation: what a restarted retrainer or predictor
# needs to resume it without the ChallengerStarted event.
TAG_EVALUATION_START = "evaluation_start"
TAG_CHAMPION_VERSION = "parent_version"


def read_model_updates(settings: KafkaSettings, topic: str) -> list[AnyModelUpdate]:
    """Every model update on `topic` (read from its beginning to its end offsets)."""
    found: list[AnyModelUpdate] = []
    for record in read_records(
        settings, topic, timeout_s=READ_TOPIC_TIMEOUT_S, must_reach_end=True
    ):
        try:
            update = decode_model_update(record.value or b"")
        except ValidationError:
            log.warning("not a model update: %s[%d]@%d", topic, record.partition, record.offset)
            continue
        found.append(update)
    return found


def challenger_started(
    info: ModelInfo, announced: list[AnyModelUpdate]
) -> ChallengerStarted | None:
    """The `ChallengerStarted` of the version under the `challenger` alias: the newest one on
    models.updates, else rebuilt from its version tags (None: not a live-gate challenger)."""
    mine = [
        u
        for u in announced
        if isinstance(u, ChallengerStarted)
        and (u.model_name, u.version) == (info.name, info.version)
    ]
    if mine:
        return max(mine, key=lambda u: u.event_time)
    tags = info.tags
    if tags.get(TAG_GATE) not in ("shadow", "canary") or TAG_EVALUATION_START not in tags:
        return None
    return ChallengerStarted(
        challenge_id=promotion_id(info.name, info.version),
        event_time=utc_now(),
        model_name=info.name,
        version=info.version,
        champion_version=tags.get(TAG_CHAMPION_VERSION) or None,
        gate=tags[TAG_GATE],
        canary_fraction=float(tags.get(TAG_CANARY_FRACTION, "0")),
        evaluation_start=datetime.fromisoformat(tags[TAG_EVALUATION_START]),
        trigger_alert_ids=[a for a in tags.get("trigger_alert_ids", "").split(",") if a],
    )


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
        self.gate_options = self.options.gate_options
        self.live: LiveEvaluation | None = None
        self.decisions: list[LiveDecision] = []
        # Event-time watermark of rides.completed: newest drop-off per partition read so far;
        # partitions not empty at start hold it back until they deliver.
        self._newest_dropoff: dict[int, datetime] = {}
        ends = rides_consumer.end_offsets(self.rides_partitions)
        starts = rides_consumer.beginning_offsets(self.rides_partitions)
        self._awaited = {tp.partition for tp in self.rides_partitions if ends[tp] > starts[tp]}
        self._watermark: datetime | None = None

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
        """Completed rides go into the buffer and the live evaluation; nothing is produced."""
        events: list[RideCompleted] = []
        for item in batch:
            if isinstance(item.event, RideCompleted):
                events.append(item.event)
                newest = self._newest_dropoff.get(item.partition)
                if newest is None or item.event.event_time > newest:
                    self._newest_dropoff[item.partition] = item.event.event_time
        if events:
            rides = completed_rides(events)
            self.buffer.append(rides)
            if self.live is not None:
                self.live.add(rides)
        self._advance_watermark()
        self.look()
        return []

    def _advance_watermark(self) -> None:
        if not self._newest_dropoff or not self._awaited <= self._newest_dropoff.keys():
            return
        candidate = min(self._newest_dropoff.values())
        if self._watermark is None or candidate > self._watermark:
            self._watermark = candidate

    def look(self) -> None:
        """Let the live gate look at the watermark; end the evaluation on a verdict."""
        if self.live is None:
            return
        verdict = self.live.look(self._watermark)
        if verdict is not None:
            self.conclude(verdict)

    def conclude(self, verdict: LiveDecision) -> None:
        """Promote or reject the challenger on the gate's verdict, with its evidence."""
        live = self.live
        assert live is not None
        self.live = None
        self.decisions.append(verdict)
        decision = verdict.decision
        log.info("live gate on %s at %s: %s", live.version, verdict.look, decision.reason)
        if decision.verdict == "promote":
            started = live.started
            trigger = started.trigger_alert_ids[-1] if started.trigger_alert_ids else None
            promote_and_announce(
                self.registry,
                live.version,
                "drift",
                self.publish,
                trigger,
                started.metrics,
                backoff=self.backoff,
                gate=live_evidence(decision.evidence, self.gate_options),
                # Cleared before the event: whoever reads ModelPromoted finds no challenger.
                before_announce=lambda: self._close_challenger(live.version, "promoted"),
            )
        else:
            reason: RejectReason = "futility" if "futility" in decision.reason else "budget"
            self.reject_challenger(live, reason)

    def reject_challenger(self, live: LiveEvaluation, reason: RejectReason) -> None:
        """Tag the challenger rejected, clear the alias, publish `ModelRejected` (evidence of
        the last look)."""
        self.live = None
        version = live.version
        self._close_challenger(version, "rejected")
        info = self.backoff.call(f"read version {version}", lambda: self.registry.version(version))
        started = live.started
        evidence = live.last.evidence if live.last is not None else None
        event = rejected_event(
            info,
            started.champion_version,
            started.trigger_alert_ids[-1] if started.trigger_alert_ids else None,
            started.metrics,
            reason,
            live_evidence(evidence, self.gate_options),
        )
        self.publish(event)
        log.info("challenger %s rejected on live rides (%s)", version, reason)

    def _close_challenger(self, version: str, decision: str) -> None:
        """Tag the decision and clear the `challenger` alias: it means "under evaluation now"."""
        self.backoff.call(
            f"tag version {version}",
            lambda: self.registry.set_version_tags(version, {TAG_DECISION: decision}),
        )
        self.backoff.call(f"clear {CHALLENGER}", lambda: self.registry.delete_alias(CHALLENGER))

    def start_challenger(self, outcome: RetrainOutcome) -> None:
        """A challenger passed the offline check: it replaces any under evaluation, gets the
        `challenger` alias and a `ChallengerStarted`, and is evaluated from the buffer on."""
        assert outcome.version is not None and outcome.evaluation_start is not None
        if self.live is not None:
            self.reject_challenger(self.live, "superseded")
        version = outcome.version
        options = self.options
        assert options.gate in ("shadow", "canary")
        evaluation_start = outcome.evaluation_start
        oldest = self.buffer.stats().oldest_dropoff
        if oldest is not None and oldest.to_pydatetime() > evaluation_start:
            # The stream ran further past the cut-off than the buffer spans while the challenger
            # trained (a fast replay): the first rides after the cut-off are gone. Evaluate from
            # the oldest ride still held, so no hour counts with part of its rides missing.
            log.warning(
                "the buffer no longer holds the rides since challenger %s's cut-off %s: "
                "evaluated from %s",
                version,
                evaluation_start,
                oldest,
            )
            evaluation_start = oldest.to_pydatetime()
        started = ChallengerStarted(
            challenge_id=promotion_id(self.registry.name, version),
            event_time=utc_now(),
            model_name=self.registry.name,
            version=version,
            champion_version=outcome.champion_version,
            gate=options.gate,
            canary_fraction=options.canary_fraction if options.gate == "canary" else 0.0,
            evaluation_start=evaluation_start,
            trigger_alert_ids=outcome.alert_ids,
            metrics=outcome.metrics,
        )
        live = LiveEvaluation(
            started, outcome.champion_model, outcome.challenger_model, self.gate_options
        )
        # A champion moved since the training started (by hand): the challenger was compared
        # with a model that no longer serves.
        champion = self.backoff.call("read the champion", self.registry.champion)
        if champion is None or champion.version != outcome.champion_version:
            self.reject_challenger(live, "stale")
            return
        tags = {
            TAG_GATE: started.gate,
            TAG_CANARY_FRACTION: str(started.canary_fraction),
            TAG_EVALUATION_START: started.evaluation_start.isoformat(),
            TAG_DECISION: "challenger",
        }
        self.backoff.call(
            f"tag version {version}", lambda: self.registry.set_version_tags(version, tags)
        )
        self.backoff.call(
            f"move {CHALLENGER} to {version}",
            lambda: self.registry.set_alias(CHALLENGER, version),
        )
        self.publish(started)
        self.live = live
        live.add(self.buffer.snapshot())
        log.info(
            "challenger %s under live evaluation (%s) from %s: %d labelled rides already in",
            version,
            started.gate,
            started.evaluation_start,
            live.rides,
        )
        self.look()

    def resume_challenger(self, announced: list[AnyModelUpdate]) -> None:
        """After a restart: the challenger under the alias is evaluated again (its rides come
        as the buffer is rebuilt); a stale alias is cleared."""
        info = self.backoff.call(
            f"read alias {CHALLENGER}", lambda: self.registry.alias(CHALLENGER)
        )
        if info is None:
            return
        champion = self.backoff.call("read the champion", self.registry.champion)
        started = challenger_started(info, announced)
        if (
            started is None
            or self.options.gate == "offline"
            or (champion is not None and champion.version == info.version)
        ):
            # Promoted (the alias clear was lost), or not a live-gate challenger: nothing to
            # evaluate; the alias must not make a predictor shadow it.
            log.info(
                "clearing %s alias of version %s: not under evaluation", CHALLENGER, info.version
            )
            self.backoff.call(f"clear {CHALLENGER}", lambda: self.registry.delete_alias(CHALLENGER))
            return
        if not any(u is started for u in announced):
            self.publish(started)  # killed between the alias move and the event
        champion_model: Any = None
        if started.champion_version is not None:
            version = started.champion_version
            champion_model = self.backoff.call(
                f"load champion {version}", lambda: self.registry.load_model(version)
            )
        challenger_model = self.backoff.call(
            f"load challenger {info.version}", lambda: self.registry.load_model(info.version)
        )
        live = LiveEvaluation(started, champion_model, challenger_model, self.gate_options)
        self.live = live
        if champion is None or champion.version != started.champion_version:
            self.reject_challenger(live, "stale")
            return
        log.info("resuming the live evaluation of challenger %s", info.version)

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

    def announce_missing_promotion(self, updates: list[AnyModelUpdate]) -> None:
        """Publish a `ModelPromoted` for a champion that was moved but never announced."""
        promotions = [u for u in updates if isinstance(u, ModelPromoted)]
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
        if outcome.status == "challenger":
            self.start_challenger(outcome)
        self.coalescer.finish()
        # The alerts this run covered release their offsets: committed as the loop commits.
        self.alerts_loop.commit_released()

    def start(self, stop: threading.Event) -> None:
        """Announce a missing promotion, rebuild the buffer, then assign the alert partitions."""
        # A stop request ends a wait between registry retries at once (then the service exits).
        self.backoff = dataclasses.replace(self.backoff, sleep=stop.wait)
        announced = read_model_updates(self.settings.kafka, self.topics.models_updates)
        self.announce_missing_promotion(announced)
        self.resume_challenger(announced)
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
