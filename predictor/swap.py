"""Hot-swap: the model holder the hot path reads, and the watcher that fills its pending slot.

The poll loop never loads a model. `ModelWatcher` runs in a background thread: it reads
`models.updates` (its own consumer, no group, all partitions, from the end; a `ModelRejected`
there is a legitimate update that changes nothing) and, for every `ModelPromoted`, loads the
promoted version from the registry and leaves it in `ModelHolder`'s pending slot;
every `periodic_check_s` it also asks the registry which version is champion, in case an
update was missed. The handler calls `ModelHolder.current()` once at the start of each batch,
which swaps a pending model in: a whole batch is predicted by one model, no ride is dropped
or predicted twice because of a swap, and every prediction names the version that made it.

The challenger under live evaluation has a slot of its own, filled the same way: on a
`ChallengerStarted` of our model the watcher loads the challenger and offers it; on the
`ModelPromoted` or `ModelRejected` of that version it offers "none"; the periodic check also
reads the `challenger` alias (and its version tags: gate mode and canary fraction), so a
predictor started mid-evaluation shadows from the registry, and one that missed the decision
stops shadowing when the alias is cleared.
"""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Callable
from typing import Any

from kafka.errors import KafkaError
from pydantic import ValidationError

from predictor.predict import ServingModel
from predictor.shadow import ShadowModel
from ridestream.events import (
    AnyModelUpdate,
    ChallengerStarted,
    ModelPromoted,
    decode_model_update,
)
from ridestream.registry import TAG_CANARY_FRACTION, TAG_GATE, ModelInfo

log = logging.getLogger(__name__)

LoadModel = Callable[[str], Any]
ChampionVersion = Callable[[], "str | None"]
ChallengerInfo = Callable[[], "ModelInfo | None"]
_UNCHANGED = object()


class ModelHolder:
    """The serving model and a pending one, swapped in between two batches."""

    def __init__(self, serving: ServingModel) -> None:
        self._serving = serving
        self._pending: ServingModel | None = None
        self._shadow: ShadowModel | None = None
        self._pending_shadow: object = _UNCHANGED
        self._lock = threading.Lock()
        self.swaps = 0

    def current(self) -> ServingModel:
        """The model for the next batch: the pending one, if one arrived since the last batch."""
        with self._lock:
            pending, self._pending = self._pending, None
        if pending is not None and pending.version != self._serving.version:
            log.info(
                "swapped model %s version %s -> %s",
                pending.name,
                self._serving.version,
                pending.version,
            )
            self._serving = pending
            self.swaps += 1
        return self._serving

    def current_shadow(self) -> ShadowModel | None:
        """The challenger for the next batch (None: no live evaluation); call it right after
        `current`, once per batch."""
        with self._lock:
            pending, self._pending_shadow = self._pending_shadow, _UNCHANGED
        if pending is not _UNCHANGED:
            assert pending is None or isinstance(pending, ShadowModel)
            log.info(
                "shadowing %s",
                "stopped" if pending is None else f"{pending.gate} version {pending.version}",
            )
            self._shadow = pending
        return self._shadow

    def offer_shadow(self, shadow: ShadowModel | None) -> None:
        """Leave the challenger (or None: stop shadowing) for the next batch."""
        with self._lock:
            self._pending_shadow = shadow

    def wanted_shadow_version(self) -> str | None:
        """The challenger version that shadows or is about to (None: none)."""
        with self._lock:
            pending = self._pending_shadow
        shadow = self._shadow if pending is _UNCHANGED else pending
        return shadow.version if isinstance(shadow, ShadowModel) else None

    @property
    def serving(self) -> ServingModel:
        """The model that predicted the last batch (no swap)."""
        return self._serving

    def offer(self, model: ServingModel) -> None:
        """Leave `model` for the next batch (a later offer replaces an earlier one)."""
        with self._lock:
            self._pending = model

    def wanted_version(self) -> str:
        """The version that serves or is about to (the pending one wins)."""
        with self._lock:
            pending = self._pending
        return (pending or self._serving).version


class ModelWatcher:
    """Reads `models.updates` and polls the champion alias; loads new versions off the hot path.

    `consumer` must already be assigned to all partitions of the updates topic and positioned
    (at the end at startup). `load(version)` loads a fitted pipeline from the registry;
    `champion_version()` returns the version under the champion alias (or None).
    """

    def __init__(
        self,
        *,
        holder: ModelHolder,
        consumer: Any,
        model_name: str,
        load: LoadModel,
        champion_version: ChampionVersion,
        challenger_info: ChallengerInfo | None = None,
        periodic_check_s: float = 30.0,
        poll_timeout_ms: int = 500,
    ) -> None:
        self.holder = holder
        self.challenger_info = challenger_info
        self.consumer = consumer
        self.model_name = model_name
        self.load = load
        self.champion_version = champion_version
        self.periodic_check_s = periodic_check_s
        self.poll_timeout_ms = poll_timeout_ms
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None
        self.failures = 0

    def start(self) -> ModelWatcher:
        """Start the watcher thread (a daemon: it never blocks the process from exiting)."""
        self._thread = threading.Thread(target=self.run, name="model-watcher", daemon=True)
        self._thread.start()
        return self

    def stop(self, timeout_s: float = 5.0) -> None:
        """Ask the thread to stop and wait for it."""
        self._stop.set()
        if self._thread is not None:
            self._thread.join(timeout_s)

    def run(self) -> None:
        """Poll updates until stopped; check the alias every `periodic_check_s`."""
        next_check = time.monotonic() + self.periodic_check_s
        while not self._stop.is_set():
            try:
                updates = self.poll_updates()
            except KafkaError as error:  # the broker comes back; the alias check covers the gap
                log.warning("reading model updates failed: %s", error)
                self._stop.wait(1.0)
                updates = []
            for update in updates:
                self.apply(update)
            if time.monotonic() >= next_check:
                next_check = time.monotonic() + self.periodic_check_s
                self.check_alias()

    def apply(self, update: AnyModelUpdate) -> None:
        """Act on one update of our model: swap the champion, start or stop shadowing."""
        if isinstance(update, ChallengerStarted):
            self.shadow(update.version, update.gate, update.canary_fraction, "ChallengerStarted")
            return
        if update.version == self.holder.wanted_shadow_version():
            self.holder.offer_shadow(None)  # decided: promoted or rejected
        if isinstance(update, ModelPromoted):
            self.switch_to(update.version, f"ModelPromoted {update.promotion_id}")

    def poll_updates(self) -> list[AnyModelUpdate]:
        """The updates of our model since the last poll (other models' change nothing); an
        undecodable value is logged and skipped."""
        polled = self.consumer.poll(timeout_ms=self.poll_timeout_ms)
        events = []
        for records in polled.values():
            for record in records:
                try:
                    event = decode_model_update(record.value or b"")
                except ValidationError as error:
                    # Not ours to dead-letter (the predictor does not own this topic): skip.
                    log.warning(
                        "skipping bad update %s[%d]@%d: %s",
                        record.topic,
                        record.partition,
                        record.offset,
                        error.title,
                    )
                    continue
                if event.model_name == self.model_name:
                    events.append(event)
        return events

    def check_alias(self) -> None:
        """Load the champion if it is not the version we serve (a missed update)."""
        try:
            version = self.champion_version()
        except Exception as error:  # registry unreachable: keep serving, try again later
            self.failures += 1
            log.warning("champion check failed (keeping the current model): %s", error)
            return
        if version is not None and version != self.holder.wanted_version():
            self.switch_to(version, "champion alias check")
        self.check_challenger_alias()

    def check_challenger_alias(self) -> None:
        """Shadow the version under the `challenger` alias, or stop when it is cleared."""
        if self.challenger_info is None:
            return
        try:
            info = self.challenger_info()
        except Exception as error:  # registry unreachable: keep as is, try again later
            self.failures += 1
            log.warning("challenger check failed (keeping the current shadow): %s", error)
            return
        gate = info.tags.get(TAG_GATE) if info is not None else None
        if info is None or gate not in ("shadow", "canary"):
            if self.holder.wanted_shadow_version() is not None:
                self.holder.offer_shadow(None)
            return
        fraction = float(info.tags.get(TAG_CANARY_FRACTION, "0"))
        self.shadow(info.version, gate, fraction, "challenger alias check")

    def shadow(self, version: str, gate: str, fraction: float, why: str) -> bool:
        """Load challenger `version` and offer it as the shadow; False when loading failed."""
        if version == self.holder.wanted_shadow_version():
            return False
        try:
            model = self.load(version)
        except Exception as error:  # a broken challenger must not stop the serving champion
            self.failures += 1
            log.error("could not load challenger %s (%s): %s", version, why, error)
            return False
        serving = ServingModel(self.model_name, version, model)
        self.holder.offer_shadow(ShadowModel(serving, gate, fraction))  # type: ignore[arg-type]
        log.info("loaded challenger %s version %s (%s, %s)", self.model_name, version, gate, why)
        return True

    def switch_to(self, version: str, why: str) -> bool:
        """Load `version` and offer it to the holder; False when loading failed."""
        if version == self.holder.wanted_version():
            return False
        started = time.perf_counter()
        try:
            model = self.load(version)
        except Exception as error:  # a broken version must not stop the serving one
            self.failures += 1
            log.error("could not load %s version %s (%s): %s", self.model_name, version, why, error)
            return False
        self.holder.offer(ServingModel(self.model_name, version, model))
        log.info(
            "loaded %s version %s in %.2f s (%s); swapping at the next batch",
            self.model_name,
            version,
            time.perf_counter() - started,
            why,
        )
        return True
