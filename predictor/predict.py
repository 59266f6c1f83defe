"""Pure prediction: a batch of `RideRequested` and a model in, one `DurationPredicted` per ride out.

The features come from the shared `ridestream.features.build_features` (the same function
training used), the whole batch is predicted in one call, and every prediction carries the
feature values it was made from and the model name and version that made it.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from pydantic_core import to_json

from ridestream.events import SCHEMA_VERSION, DurationPredicted, RideRequested, utc_now
from ridestream.features import FEATURES, build_features, rides_frame
from ridestream.model import predict_features
from ridestream.stream.messages import Outgoing, Received


@dataclass(frozen=True)
class ServingModel:
    """A fitted pipeline and the registry name and version it was loaded from."""

    name: str
    version: str
    model: Any


def prediction_payloads(
    rides: Sequence[RideRequested],
    serving: ServingModel,
    produced_at: datetime | None = None,
) -> list[dict[str, Any]]:
    """The fields of one `DurationPredicted` per ride, in input order, in one model call."""
    if not rides:
        return []
    produced_at = produced_at or utc_now()
    columns = list(FEATURES)
    features = build_features(rides_frame(rides))
    minutes = predict_features(serving.model, features).tolist()
    # Rows from column lists (native str/int/float): per-row frame access costs ~50x more,
    # and this is ~2x faster than to_dict("records").
    rows = [
        dict(zip(columns, values, strict=True))
        for values in zip(*(features[c].tolist() for c in columns), strict=True)
    ]
    return [
        {
            "schema_version": SCHEMA_VERSION,
            "event_time": ride.event_time,
            "ride_id": ride.ride_id,
            "predicted_duration_min": predicted,
            "model_name": serving.name,
            "model_version": serving.version,
            "features": row,
            "produced_at": produced_at,
        }
        for ride, predicted, row in zip(rides, minutes, rows, strict=True)
    ]


def predict_rides(
    rides: Sequence[RideRequested],
    serving: ServingModel,
    produced_at: datetime | None = None,
) -> list[DurationPredicted]:
    """One prediction per ride, in input order, all made by `serving` in one batch."""
    # model_construct: the values come from validated events and our own model.
    return [
        DurationPredicted.model_construct(**payload)
        for payload in prediction_payloads(rides, serving, produced_at)
    ]


def encode_predictions(
    rides: Sequence[RideRequested],
    serving: ServingModel,
    produced_at: datetime | None = None,
) -> list[bytes]:
    """The JSON values of `predict_rides`, byte for byte, without building pydantic models
    (pydantic's own serializer on plain dicts: ~1 us a ride instead of ~10)."""
    return [to_json(payload) for payload in prediction_payloads(rides, serving, produced_at)]


def batch_handler(
    current_model: Callable[[], ServingModel], output_topic: str
) -> Callable[[list[Received]], list[Outgoing]]:
    """The StreamLoop handler: take the model for this batch once, predict every ride with it."""

    def handle(batch: list[Received]) -> list[Outgoing]:
        # Asked once per batch: a swap happens between two batches, never inside one.
        serving = current_model()
        rides = [received.event for received in batch if isinstance(received.event, RideRequested)]
        values = encode_predictions(rides, serving)
        return [
            Outgoing(output_topic, ride.ride_id.encode(), value)
            for ride, value in zip(rides, values, strict=True)
        ]

    return handle
