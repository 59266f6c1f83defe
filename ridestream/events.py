"""The event contracts: one pydantic model per fact, named in the past tense.

JSON on the wire (`encode` / `decode`), keyed by the event's stable id (`Event.key`).
Ride events carry TLC timestamps as TLC records them: naive local New York time. Floats are
finite (NaN and infinity are refused), zone ids are TLC LocationIDs 1-265, and every model
refuses unknown fields, so a malformed event fails here, at the edge, and goes to a dead letter.
"""

from __future__ import annotations

from collections.abc import Mapping
from datetime import UTC, datetime
from typing import Annotated, Any, ClassVar, Literal, TypeVar

from pydantic import (
    AfterValidator,
    BaseModel,
    ConfigDict,
    Discriminator,
    Field,
    Tag,
    TypeAdapter,
    model_validator,
)

SCHEMA_VERSION: Literal[1] = 1

# TLC LocationIDs in taxi_zone_lookup.csv: 1..263 are zones, 264 "Unknown", 265 "Outside of NYC".
MIN_ZONE_ID, MAX_ZONE_ID = 1, 265
# TLC recording started in 2009; anything outside these bounds is a broken clock, not a ride.
EARLIEST_EVENT_TIME = datetime(2009, 1, 1)
LATEST_EVENT_TIME = datetime(2100, 1, 1)
# Longest plausible trip: the real files hold odometer garbage of 244,152 miles.
MAX_TRIP_DISTANCE_MI = 1_000.0
MAX_DURATION_MIN = 7 * 24 * 60.0
MAX_ID_LENGTH = 128
# TLC VendorID and passenger_count: small integers; beyond these a value is garbage.
MAX_VENDOR_ID = 100
MAX_PASSENGER_COUNT = 20


def _tlc_time(value: datetime) -> datetime:
    if value.tzinfo is not None:
        raise ValueError("must be a naive local TLC timestamp (no time zone)")
    if not EARLIEST_EVENT_TIME <= value < LATEST_EVENT_TIME:
        raise ValueError(f"is outside {EARLIEST_EVENT_TIME:%Y-%m-%d}..{LATEST_EVENT_TIME:%Y-%m-%d}")
    return value


def _wall_time(value: datetime) -> datetime:
    if value.tzinfo is None:
        raise ValueError("must carry a time zone (wall-clock times are UTC)")
    return value


TlcTime = Annotated[datetime, AfterValidator(_tlc_time)]
WallTime = Annotated[datetime, AfterValidator(_wall_time)]
ZoneId = Annotated[int, Field(ge=MIN_ZONE_ID, le=MAX_ZONE_ID)]
Id = Annotated[str, Field(min_length=1, max_length=MAX_ID_LENGTH)]


def utc_now() -> datetime:
    """The wall clock, in UTC (only for produced-at and registry times, never for windows)."""
    return datetime.now(UTC)


class Event(BaseModel):
    """Base of every event: a schema version, a stable id (the key) and an event time."""

    model_config = ConfigDict(frozen=True, extra="forbid", allow_inf_nan=False)

    schema_version: Literal[1] = SCHEMA_VERSION
    event_time: datetime

    key_field: ClassVar[str]

    @property
    def key(self) -> str:
        """The stable id, also the Kafka message key."""
        return str(getattr(self, self.key_field))


class RideRequested(Event):
    """A ride started: what is known at pickup. `event_time` is the pickup time."""

    key_field: ClassVar[str] = "ride_id"

    ride_id: Id
    event_time: TlcTime
    pu_location_id: ZoneId
    do_location_id: ZoneId
    trip_distance: float = Field(ge=0, le=MAX_TRIP_DISTANCE_MI)
    vendor_id: int | None = Field(default=None, ge=0, le=MAX_VENDOR_ID)
    passenger_count: int | None = Field(default=None, ge=0, le=MAX_PASSENGER_COUNT)


class RideCompleted(Event):
    """A ride ended: the ground truth. `event_time` is the drop-off time."""

    key_field: ClassVar[str] = "ride_id"

    ride_id: Id
    event_time: TlcTime
    pickup_time: TlcTime
    duration_min: float = Field(ge=0, le=MAX_DURATION_MIN)
    pu_location_id: ZoneId
    do_location_id: ZoneId
    trip_distance: float = Field(ge=0, le=MAX_TRIP_DISTANCE_MI)
    vendor_id: int | None = Field(default=None, ge=0, le=MAX_VENDOR_ID)
    passenger_count: int | None = Field(default=None, ge=0, le=MAX_PASSENGER_COUNT)

    @model_validator(mode="after")
    def _dropoff_not_before_pickup(self) -> RideCompleted:
        if self.event_time < self.pickup_time:
            raise ValueError("drop-off (event_time) is before pickup_time")
        return self


FeatureValue = str | int | float


class DurationPredicted(Event):
    """A model predicted a ride's duration. `event_time` is the ride's pickup time."""

    key_field: ClassVar[str] = "ride_id"

    ride_id: Id
    event_time: TlcTime
    predicted_duration_min: float
    model_name: Id
    model_version: Id
    features: dict[str, FeatureValue]
    produced_at: WallTime
    # None: the champion's prediction, served (every record before the live gate). "canary": the
    # challenger's, served on rides.predictions for the canary's rides. "shadow": the model's
    # prediction that is NOT served (on rides.shadow only).
    role: Literal["shadow", "canary"] | None = None


class ColumnDrift(BaseModel):
    """One column's drift test in a window: Evidently's method, score, threshold and verdict."""

    model_config = ConfigDict(frozen=True, extra="forbid", allow_inf_nan=False)

    column: str
    column_type: Literal["numerical", "categorical"]
    method: str
    score: float
    threshold: float
    drifted: bool


class WindowQuality(BaseModel):
    """Prediction quality on the labelled rides of a window (1-60 min rule, as in training)."""

    model_config = ConfigDict(frozen=True, extra="forbid", allow_inf_nan=False)

    count: int = Field(ge=0)
    rmse: float | None
    mae: float | None
    mean_error: float | None
    # The quality test against the champion's reference (monitor.quality); None without one.
    expected_rmse: float | None = None
    z: float | None = None
    p_value: float | None = Field(default=None, ge=0, le=1)
    design_effect: float | None = None
    blocks: int | None = Field(default=None, ge=0)  # hourly blocks the variance comes from


class DriftWindowClosed(Event):
    """An event-time window closed; its drift and quality numbers. `event_time` is its end."""

    key_field: ClassVar[str] = "window_id"

    window_id: Id
    window_start: datetime
    event_time: datetime
    reference_version: str | None
    model_versions: list[str]
    rides: int = Field(ge=0)
    labelled: int = Field(ge=0)
    late: int = Field(ge=0)
    expired: int = Field(ge=0)
    columns: list[ColumnDrift]
    drifted_share: float | None
    prediction_drift: ColumnDrift | None
    quality: WindowQuality


class RuleFired(BaseModel):
    """One alert rule that fired, with the number that broke it."""

    model_config = ConfigDict(frozen=True, extra="forbid", allow_inf_nan=False)

    rule: Literal["data_drift_share", "prediction_drift", "quality"]
    value: float
    threshold: float
    detail: str = ""


class DriftDetected(Event):
    """The monitor's rules fired on a closed window. `event_time` is the window's end."""

    key_field: ClassVar[str] = "alert_id"

    alert_id: Id
    event_time: datetime
    window_id: Id
    window_start: datetime
    model_version: str | None
    rules: list[RuleFired] = Field(min_length=1)


GateMode = Literal["offline", "shadow", "canary"]


class LiveEvidence(BaseModel):
    """What the live gate saw when it decided (`retrainer.gate.GateEvidence`): the labelled rides
    picked up after the challenger's cut-off, both models' RMSE on them, and the test."""

    model_config = ConfigDict(frozen=True, extra="forbid", allow_inf_nan=False)

    rides: int = Field(ge=0)
    blocks: int = Field(ge=0)
    # Event time (TLC local) of the first counted block's start and the last one's end.
    first_pickup: datetime
    last_pickup: datetime
    champion_rmse: float
    challenger_rmse: float
    margin: float
    alpha: float
    # theta = E[(1 - margin)^2 c - h] in min^2 a ride, its always-valid confidence interval, the
    # z statistic (None: no between-block variance) and the always-valid p of theta <= 0.
    theta: float
    ci_low: float
    ci_high: float
    z: float | None
    p_value: float = Field(ge=0, le=1)


class ChallengerStarted(Event):
    """A challenger passed the offline check and is now under live evaluation (the `challenger`
    alias). `event_time` is the wall-clock time; `evaluation_start` (event time) is the newest
    drop-off in its training data: only rides picked up from then on count for the gate."""

    key_field: ClassVar[str] = "challenge_id"

    challenge_id: Id
    event_time: WallTime
    model_name: Id
    version: Id
    champion_version: str | None
    gate: Literal["shadow", "canary"]
    canary_fraction: float = Field(ge=0, le=1)
    evaluation_start: datetime
    trigger_alert_ids: list[str] = Field(default_factory=list)
    metrics: dict[str, float] = Field(default_factory=dict)


class ModelPromoted(Event):
    """A model version became champion. `event_time` is the wall-clock time of the move."""

    key_field: ClassVar[str] = "promotion_id"

    promotion_id: Id
    event_time: WallTime
    model_name: Id
    version: Id
    previous_version: str | None
    reason: Literal["initial", "drift", "manual", "rollback"]
    trigger_alert_id: str | None = None
    metrics: dict[str, float] = Field(default_factory=dict)
    # The live gate's evidence (None: promoted offline, by hand, or before the live gate).
    gate: LiveEvidence | None = None


class ModelRejected(Event):
    """A challenger was trained but not better than the champion; the champion stays."""

    key_field: ClassVar[str] = "rejection_id"

    rejection_id: Id
    event_time: WallTime
    model_name: Id
    version: Id
    champion_version: str | None
    trigger_alert_id: str | None = None
    metrics: dict[str, float] = Field(default_factory=dict)
    # Why (None: the offline check, as before the live gate): "offline", or the live gate's
    # "futility", "budget", "superseded" (a newer challenger replaced it), "stale" (the
    # champion it was compared with is no longer champion).
    reason: Literal["offline", "futility", "budget", "superseded", "stale"] | None = None
    gate: LiveEvidence | None = None


def _model_update_kind(value: Any) -> str | None:
    """Which update a `models.updates` value is, by the id field only that kind has (records
    written before the union carry no type field, so the ids tell them apart)."""
    if isinstance(value, Mapping):
        if "promotion_id" in value:
            return "promoted"
        if "rejection_id" in value:
            return "rejected"
        if "challenge_id" in value:
            return "challenger"
        return None
    if isinstance(value, ModelPromoted):
        return "promoted"
    if isinstance(value, ModelRejected):
        return "rejected"
    if isinstance(value, ChallengerStarted):
        return "challenger"
    return None


# Everything on `models.updates`: a promotion, a rejection or a challenger under live
# evaluation, each a legitimate update.
ModelUpdate = Annotated[
    Annotated[ModelPromoted, Tag("promoted")]
    | Annotated[ModelRejected, Tag("rejected")]
    | Annotated[ChallengerStarted, Tag("challenger")],
    Discriminator(
        _model_update_kind,
        custom_error_type="model_update_kind",
        custom_error_message="neither a promotion (promotion_id), a rejection (rejection_id) "
        "nor a challenger (challenge_id)",
    ),
]
AnyModelUpdate = ModelPromoted | ModelRejected | ChallengerStarted
# The decoder of `models.updates` for every service (`MODEL_UPDATES.validate_json(value)`).
MODEL_UPDATES: TypeAdapter[AnyModelUpdate] = TypeAdapter(ModelUpdate)


def decode_model_update(value: bytes) -> AnyModelUpdate:
    """Parse and validate a `models.updates` value; raises pydantic.ValidationError."""
    return MODEL_UPDATES.validate_json(value, strict=True)


E = TypeVar("E", bound=Event)


def encode(event: Event) -> bytes:
    """Serialise an event to the JSON bytes of a Kafka message value."""
    return event.model_dump_json().encode()


def decode(event_type: type[E], value: bytes) -> E:
    """Parse and validate a Kafka message value; raises pydantic.ValidationError on bad input."""
    return event_type.model_validate_json(value)
