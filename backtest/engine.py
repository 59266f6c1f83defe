"""The backtest walk: the months in event time, window by window, one policy at a time.

Per window (a slice of pickup time, `monitor.windows`): the rides picked up in it are predicted
by the model in service (`predictor.predict.predict_rides`, the predictor's batch call); their
predictions and completions go into the monitor's join (`monitor.join.WindowedJoin`), the window
is closed at its end and assessed by the monitor (`MonitorPipeline.assess`: drift against the
champion's reference, RMSE/MAE, alert rules with debounce and cooldown); the retrainer's buffer
(`retrainer.buffer.RideBuffer`) takes the completions dropped off before the window's end. Then
the policy says whether to retrain; a gated retraining is the retrainer's own steps
(`retrainer.retrain.training_split`, `ridestream.model.fit` / `evaluate`,
`retrainer.decision.decide`), and a new champion serves from the end of the window on (zero
retraining latency) with its reference in the monitor (`ridestream.training.reference_frame`).
Under the live gate (`Policy.live_gate`) a challenger that passes the offline check serves
nothing yet: it is the retrainer's own `retrainer.live.LiveEvaluation`, fed at the end of every
slice with the rides dropped off in it and looking at the slice's end (every drop-off before it
is in, as at the retrainer's watermark): the same rides, blocks and looks. A promoted
challenger serves from the end of the slice whose look promoted it.

Models stay in memory (no MLflow). Closing each window at its end instead of by watermark is
what zero latency means: in the Kafka loop a window closes `lateness` later and training takes
its time, so the rides in between are still served by the old model. The windows and their
alerts are the same up to the first swap (tests/integration/loop/test_backtest_agreement.py).
"""

from __future__ import annotations

import sys
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from itertools import pairwise
from typing import Any

import numpy as np
import pandas as pd

from backtest.policies import Policy
from monitor.drift import Reference, prepare_reference, reference_rmse
from monitor.join import ClosedWindow
from monitor.pipeline import MonitorConfig, MonitorPipeline
from predictor.predict import ServingModel, predict_rides
from retrainer.buffer import RideBuffer
from retrainer.decision import Decision, decide
from retrainer.live import LiveEvaluation
from retrainer.retrain import evaluation_start, pickup_range, training_split
from retrainer.settings import RetrainerOptions
from ridestream.events import (
    ChallengerStarted,
    DriftDetected,
    DriftWindowClosed,
    RideCompleted,
    RideRequested,
)
from ridestream.features import (
    DROPOFF_TIME,
    PICKUP_TIME,
    PREDICTION,
    RIDE_ID,
    TARGET,
    build_features,
)
from ridestream.model import evaluate, fit, labelled, predict_features
from ridestream.scorecard import (
    RetrainingOutcome,
    ServedError,
    alert_precision,
    is_harmful,
    is_scored_window,
    window_served_error,
)
from ridestream.topics import Topics
from ridestream.training import reference_frame

# The join's partitions: one per ride topic, as if each topic had one partition.
_PREDICTIONS = ("rides.predictions", 0)
_COMPLETIONS = ("rides.completed", 0)

Progress = Callable[[str], None]


@dataclass(frozen=True)
class Model:
    """A fitted model, its version, and the monitor's reference for it."""

    version: str
    model: Any
    reference: Reference


@dataclass(frozen=True)
class BacktestConfig:
    """The monitor's and the retrainer's knobs, and the name models serve under."""

    monitor: MonitorConfig
    retrainer: RetrainerOptions = field(default_factory=RetrainerOptions)
    model_name: str = "ride-duration"


def prepare_model(
    version: str, model: Any, val_rides: pd.DataFrame, val_rmse: float | None
) -> Model:
    """A model with the reference `ridestream train` / the retrainer store for it: a sample of
    its validation rides (`reference_frame`), and its validation RMSE (None: the RMSE on that
    sample, as the monitor falls back to when a version has no `val_rmse`)."""
    frame = reference_frame(model, val_rides)
    rmse = reference_rmse(frame) if val_rmse is None else val_rmse
    return Model(version, model, prepare_reference(frame, version, rmse))


def train_first_champion(
    train_rides: pd.DataFrame, val_rides: pd.DataFrame, kind: str
) -> tuple[Model, float]:
    """Version 1, fitted as `ridestream train` fits it; returns it with its training seconds."""
    started = time.perf_counter()
    model = fit(kind, train_rides)
    seconds = time.perf_counter() - started
    return prepare_model("1", model, val_rides, evaluate(model, val_rides)["rmse"]), seconds


@dataclass(frozen=True)
class GatedRetraining:
    """What the retrainer's training job makes of a buffer snapshot (without the registry)."""

    model: Any
    holdout: pd.DataFrame
    decision: Decision
    data_range: str
    rows: int
    evaluation_start: datetime


def gated_retraining(
    snapshot: pd.DataFrame, champion: Any, options: RetrainerOptions
) -> GatedRetraining | str:
    """The steps of `retrainer.retrain.retrain` on a buffer snapshot: split, score the champion
    on the held-out rides, fit the challenger on the rest, score it, decide. A string: why
    it was skipped (too few labelled rides)."""
    prepared = training_split(snapshot, options)
    if isinstance(prepared, str):
        return prepared
    rides, train, holdout = prepared
    champion_rmse = evaluate(champion, holdout)["rmse"]
    challenger = fit(options.model_kind, train)
    challenger_rmse = evaluate(challenger, holdout)["rmse"]
    decision = decide(challenger_rmse, champion_rmse, options.margin)
    return GatedRetraining(
        challenger, holdout, decision, pickup_range(rides), len(rides), evaluation_start(rides)
    )


@dataclass
class Candidate:
    """A challenger under live evaluation (the retrainer's own gate state) and what the
    retraining that made it will report once the gate decides."""

    evaluation: LiveEvaluation
    model: Any
    holdout: pd.DataFrame
    offline: Decision
    at: datetime
    alert_ids: tuple[str, ...]
    data_range: str
    rows: int
    seconds: float

    @property
    def version(self) -> str:
        return self.evaluation.version


@dataclass(frozen=True)
class Retraining:
    """One retraining of a policy: when, why, on what, and what came of it."""

    at: datetime
    status: str  # promoted, rejected, skipped, or undecided (the replay ended first)
    reason: str
    alert_ids: tuple[str, ...]
    version: str | None
    data_range: str
    rows: int
    seconds: float


@dataclass
class Swap:
    """A new model in service, and how it did against the one it replaced on its own rides."""

    at: datetime
    version: str
    replaced: str
    served: ServedError = field(default_factory=ServedError)
    replaced_served: ServedError = field(default_factory=ServedError)

    @property
    def harmful(self) -> bool:
        """See `ridestream.scorecard.is_harmful`."""
        return is_harmful(self.served.rmse, self.replaced_served.rmse)


@dataclass
class PolicyResult:
    """Everything one policy did over the replay, and its scorecard."""

    policy: Policy
    windows: list[DriftWindowClosed] = field(default_factory=list)
    served_versions: list[str] = field(default_factory=list)  # per window
    alerts: list[DriftDetected] = field(default_factory=list)
    retrainings: list[Retraining] = field(default_factory=list)
    swaps: list[Swap] = field(default_factory=list)
    served: ServedError = field(default_factory=ServedError)
    seconds: float = 0.0

    def count(self, status: str) -> int:
        """Retrainings with this status."""
        return sum(r.status == status for r in self.retrainings)

    @property
    def retrains(self) -> int:
        """Models trained (skipped retrainings trained none)."""
        return sum(r.status != "skipped" for r in self.retrainings)

    @property
    def harmful(self) -> int:
        """Promotions that served worse than the model they replaced (scorecard rule)."""
        return sum(s.harmful for s in self.swaps)

    @property
    def alert_precision(self) -> float | None:
        """None for a policy that does not retrain on alerts."""
        if not self.policy.on_alerts:
            return None
        harmful = {s.version for s in self.swaps if s.harmful}
        outcomes = [
            RetrainingOutcome(len(r.alert_ids), r.status == "promoted", r.version in harmful)
            for r in self.retrainings
            if r.alert_ids
        ]
        return alert_precision(len(self.alerts), outcomes)


class _Feed:
    """Completed rides in drop-off order, handed to the buffers up to a cut-off."""

    def __init__(self, rides: pd.DataFrame) -> None:
        order = np.argsort(rides[DROPOFF_TIME].to_numpy(), kind="stable")
        self.rides = rides.iloc[order].reset_index(drop=True)
        self.dropoff = self.rides[DROPOFF_TIME].to_numpy()
        self.position = 0

    def until(self, cutoff: datetime) -> pd.DataFrame:
        """The rides dropped off before `cutoff` not handed out yet."""
        end = int(np.searchsorted(self.dropoff, np.datetime64(cutoff), side="left"))
        chunk = self.rides.iloc[self.position : end]
        self.position = max(self.position, end)
        return chunk


def _datetimes(values: pd.Series) -> list[datetime]:
    # Naive datetimes (TLC local time), as the events carry them; numpy converts in C.
    return values.to_numpy(dtype="datetime64[us]").tolist()


def _requested(rides: pd.DataFrame) -> list[RideRequested]:
    # model_construct: the rows passed the producer's filter, which is the models' own rules.
    return [
        RideRequested.model_construct(
            ride_id=ride,
            event_time=pickup,
            pu_location_id=pu,
            do_location_id=do,
            trip_distance=distance,
            vendor_id=None,
            passenger_count=None,
        )
        for ride, pickup, pu, do, distance in zip(
            rides[RIDE_ID].tolist(),
            _datetimes(rides[PICKUP_TIME]),
            rides["PULocationID"].tolist(),
            rides["DOLocationID"].tolist(),
            rides["trip_distance"].tolist(),
            strict=True,
        )
    ]


def _completed(rides: pd.DataFrame) -> list[RideCompleted]:
    return [
        RideCompleted.model_construct(
            ride_id=ride,
            event_time=dropoff,
            pickup_time=pickup,
            duration_min=duration,
            pu_location_id=pu,
            do_location_id=do,
            trip_distance=distance,
            vendor_id=None,
            passenger_count=None,
        )
        for ride, pickup, dropoff, duration, pu, do, distance in zip(
            rides[RIDE_ID].tolist(),
            _datetimes(rides[PICKUP_TIME]),
            _datetimes(rides[DROPOFF_TIME]),
            rides[TARGET].tolist(),
            rides["PULocationID"].tolist(),
            rides["DOLocationID"].tolist(),
            rides["trip_distance"].tolist(),
            strict=True,
        )
    ]


class PolicyRun:
    """One policy's walk: the monitor, the buffer and the model in service."""

    def __init__(
        self,
        policy: Policy,
        champion: Model,
        config: BacktestConfig,
        shared_fits: dict[tuple[datetime, timedelta], tuple[Any, pd.DataFrame]] | None = None,
    ) -> None:
        self.policy = policy
        self.shared_fits = {} if shared_fits is None else shared_fits
        self.config = config
        self.serving = champion
        # Only the model in service and the one it replaced are kept (a daily schedule trains
        # hundreds); the monitor asks for the reference of a new champion once it serves.
        self.monitor = MonitorPipeline(
            config.monitor, Topics(), lambda version: self.serving.reference
        )
        self.versions = int(champion.version)
        options = config.retrainer
        days = options.buffer_days if policy.buffer_days is None else policy.buffer_days
        self.buffer = RideBuffer(timedelta(days=days), options.buffer_rows)
        self.result = PolicyResult(policy)
        self.previous_end: datetime | None = None
        self.offset = 0
        self._replaced: Model | None = None  # the model the one in service replaced
        self.candidate: Candidate | None = None  # under the live gate

    def step(self, batch: SliceBatch) -> None:
        """Serve the rides picked up in one slice, close what ends with it, act."""
        serving = ServingModel(self.config.model_name, self.serving.version, self.serving.model)
        join = self.monitor.join
        for event in predict_rides(batch.requested, serving, batch.produced_at):
            join.add(_PREDICTIONS, self.offset, event)
            self.offset += 1
        for done in batch.completed:
            join.add(_COMPLETIONS, self.offset, done)
            self.offset += 1
        self.buffer.append(batch.dropped_off)
        self._close(join.close(batch.end), batch.rides)
        if self.candidate is not None:
            self._judge_candidate(self.candidate, batch.dropped_off, batch.end)

    def finish(self) -> None:
        """At the end of the replay, close what the monitor closes when its partitions go idle:
        the windows that end by the newest event time less the lateness."""
        join = self.monitor.join
        self._close(join.close(join.watermark(idle=list(join.partition_max))), None)
        if self.candidate is not None:
            self._decided(self.candidate, "undecided", "the replay ended before the gate decided")

    def _judge_candidate(
        self, candidate: Candidate, dropped_off: pd.DataFrame, watermark: datetime
    ) -> None:
        """Count the rides dropped off since the last look; let the gate look up to `watermark`."""
        candidate.evaluation.add(dropped_off)
        decided = candidate.evaluation.look(watermark)
        if decided is None:
            return
        if decided.decision.verdict == "promote":
            self._decided(candidate, "promoted", decided.decision.reason)
            new = prepare_model(
                candidate.version,
                candidate.model,
                candidate.holdout,
                candidate.offline.challenger_rmse,
            )
            self._swap(watermark, new)
        else:
            self._decided(candidate, "rejected", decided.decision.reason)

    def _decided(self, candidate: Candidate, status: str, reason: str) -> None:
        self.candidate = None
        self.result.retrainings.append(
            Retraining(
                candidate.at,
                status,
                reason,
                candidate.alert_ids,
                candidate.version,
                candidate.data_range,
                candidate.rows,
                candidate.seconds,
            )
        )

    def _swap(self, at: datetime, new: Model) -> None:
        self.result.swaps.append(Swap(at, new.version, self.serving.version))
        self._replaced, self.serving = self.serving, new
        self.monitor.use_reference(new.version)

    def _close(self, windows: Sequence[ClosedWindow], slice_rides: pd.DataFrame | None) -> None:
        for window in windows:
            assessed = self.monitor.assess(window)
            event = assessed.window
            self.result.windows.append(event)
            self.result.served_versions.append(self.serving.version)
            alerts = [assessed.alert] if assessed.alert is not None else []
            self.result.alerts.extend(alerts)
            self._score(window, assessed.frame, slice_rides)
            # Before the first window: its start (a schedule counts the boundaries since).
            previous_end = window.start if self.previous_end is None else self.previous_end
            if self.policy.wants_retraining(window.end, previous_end, alerts):
                self._retrain(window.end, alerts)
            self.previous_end = window.end

    def _score(
        self, window: ClosedWindow, frame: pd.DataFrame, slice_rides: pd.DataFrame | None
    ) -> None:
        rides = len(frame)
        served = window_served_error(rides, frame[PREDICTION].to_numpy(), frame[TARGET].to_numpy())
        self.result.served = self.result.served + served
        if not self.result.swaps or not is_scored_window(rides) or slice_rides is None:
            return
        swap = self.result.swaps[-1]
        swap.served = swap.served + served
        assert self._replaced is not None
        # The replaced model on the same rides, in the window's order (pickup time, ride id).
        ids = [item.ride.ride_id for item in window.items if item.is_ride and item.ride]
        same = slice_rides.set_index(RIDE_ID).loc[ids]
        replaced = predict_features(self._replaced.model, build_features(same))
        swap.replaced_served = swap.replaced_served + window_served_error(
            rides, replaced, frame[TARGET].to_numpy()
        )

    def _scheduled_model(self, version: str, at: datetime, rides: pd.DataFrame) -> Model:
        # Two schedules with the same buffer train on the same rides at a shared boundary (a
        # Monday for weekly and daily): the fit is deterministic, so it is done once.
        key = (at, self.buffer.max_age)
        fitted = self.shared_fits.get(key)
        if fitted is None:
            model = fit(self.config.retrainer.model_kind, rides)
            frame = reference_frame(model, rides)
            fitted = self.shared_fits[key] = (model, frame)
        model, frame = fitted
        return Model(version, model, prepare_reference(frame, version, reference_rmse(frame)))

    def _retrain(self, at: datetime, alerts: list[DriftDetected]) -> None:
        options = self.config.retrainer
        started = time.perf_counter()
        snapshot = self.buffer.snapshot()
        alert_ids = tuple(a.alert_id for a in alerts)
        self.versions += 1
        version = str(self.versions)
        if self.policy.gated:
            outcome = gated_retraining(snapshot, self.serving.model, options)
            if isinstance(outcome, str):
                self.result.retrainings.append(
                    Retraining(
                        at,
                        "skipped",
                        outcome,
                        alert_ids,
                        None,
                        "",
                        len(labelled(snapshot)),
                        time.perf_counter() - started,
                    )
                )
                return
            if outcome.decision.promote and self.policy.live_gate:
                if self.candidate is not None:
                    self._decided(self.candidate, "rejected", f"superseded by version {version}")
                started_event = ChallengerStarted(
                    challenge_id=f"{self.config.model_name}:{version}",
                    event_time=datetime.now(UTC),
                    model_name=self.config.model_name,
                    version=version,
                    champion_version=self.serving.version,
                    gate="shadow",
                    canary_fraction=0.0,
                    evaluation_start=outcome.evaluation_start,
                    trigger_alert_ids=list(alert_ids),
                )
                evaluation = LiveEvaluation(
                    started_event, self.serving.model, outcome.model, options.gate_options
                )
                # The rides the buffer holds past the cut-off count at once, as in the retrainer.
                evaluation.add(snapshot)
                self.candidate = Candidate(
                    evaluation,
                    outcome.model,
                    outcome.holdout,
                    outcome.decision,
                    at,
                    alert_ids,
                    outcome.data_range,
                    outcome.rows,
                    time.perf_counter() - started,
                )
                return
            status = "promoted" if outcome.decision.promote else "rejected"
            # The retrainer registers the challenger with its held-out RMSE as `val_rmse`.
            new = (
                prepare_model(
                    version, outcome.model, outcome.holdout, outcome.decision.challenger_rmse
                )
                if outcome.decision.promote
                else None
            )
            reason, data_range, rows = outcome.decision.reason, outcome.data_range, outcome.rows
        else:
            rides = labelled(snapshot)
            if rides.empty:
                self.result.retrainings.append(
                    Retraining(
                        at,
                        "skipped",
                        "no labelled rides",
                        alert_ids,
                        None,
                        "",
                        0,
                        time.perf_counter() - started,
                    )
                )
                return
            new = self._scheduled_model(version, at, rides)
            status, reason = "promoted", "scheduled, no gate"
            data_range, rows = pickup_range(rides), len(rides)
        self.result.retrainings.append(
            Retraining(
                at,
                status,
                reason,
                alert_ids,
                version,
                data_range,
                rows,
                time.perf_counter() - started,
            )
        )
        if new is not None:
            self._swap(at, new)


@dataclass(frozen=True)
class SliceBatch:
    """One slice of pickup time: its rides and their events (the same for every policy), and
    the rides dropped off before its end that the buffers have not seen yet."""

    end: datetime
    rides: pd.DataFrame
    requested: list[RideRequested]
    completed: list[RideCompleted]
    dropped_off: pd.DataFrame
    produced_at: datetime


def run_backtest(
    policies: Sequence[Policy],
    rides: pd.DataFrame,
    champion: Model,
    config: BacktestConfig,
    progress: Progress | None = None,
) -> tuple[list[PolicyResult], float]:
    """Walk `rides` (pickup order) window by window under every policy in step, so the ride
    events of a slice are built once for all; returns each policy's result (its `seconds`:
    its own share of the walk) and the seconds spent on the shared events."""
    shared_fits: dict[tuple[datetime, timedelta], tuple[Any, pd.DataFrame]] = {}
    runs = [PolicyRun(policy, champion, config, shared_fits) for policy in policies]
    feed = _Feed(rides)
    slice_len = config.monitor.spec.slice_len
    starts = _slice_starts(rides, slice_len)
    cuts = [0, *(np.flatnonzero(np.diff(starts)) + 1).tolist(), len(rides)]
    total = len(cuts) - 1
    shared_s = 0.0
    shown = time.monotonic()
    for index, (low, high) in enumerate(pairwise(cuts)):
        clock = time.perf_counter()
        slice_start = pd.Timestamp(starts[low]).to_pydatetime()
        slice_rides = rides.iloc[low:high]
        batch = SliceBatch(
            slice_start + slice_len,
            slice_rides,
            _requested(slice_rides),
            _completed(slice_rides),
            feed.until(slice_start + slice_len),
            datetime.now(UTC),
        )
        shared_s += time.perf_counter() - clock
        for run in runs:
            clock = time.perf_counter()
            run.step(batch)
            run.result.seconds += time.perf_counter() - clock
        shared_fits.clear()  # shared within one slice only
        if progress is not None and time.monotonic() - shown >= 5:
            shown = time.monotonic()
            progress(
                f"  {slice_start:%Y-%m-%d %H:%M} ({index + 1}/{total} windows): "
                + ", ".join(
                    f"{run.policy.name} {run.result.retrains} retrains {run.result.seconds:.0f} s"
                    for run in runs
                )
            )
    for run in runs:
        clock = time.perf_counter()
        run.finish()
        run.result.seconds += time.perf_counter() - clock
    return [run.result for run in runs], shared_s


def _slice_starts(rides: pd.DataFrame, slice_len: timedelta) -> np.ndarray:
    # The monitor's slice of every pickup (WindowSpec.slice_start), vectorised.
    pickup = rides[PICKUP_TIME].to_numpy(dtype="datetime64[us]")
    epoch = np.datetime64("1970-01-01T00:00:00", "us")
    step = np.timedelta64(slice_len)
    return epoch + ((pickup - epoch) // step) * step


def print_progress(line: str) -> None:
    """Progress lines go to stderr (the table goes to stdout)."""
    print(line, file=sys.stderr, flush=True)
