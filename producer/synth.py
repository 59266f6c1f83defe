"""Synthetic green-taxi trips fitted on a real month, with drift knobs.

`fit` keeps the plausible rides of a real month, grouped by hour of day, and the month's
arrival rate by hour of the week. `generate` then walks event time hour by hour from a start
date: each hour gets a Poisson number of pickups at the real rate for that hour of the week,
and each pickup copies a real ride of the same hour of day (zone pair, distance, duration,
vendor, passengers), with a little multiplicative noise on distance and duration so rides are
not exact copies. It yields pyarrow tables of at most `chunk_rides` rows in pickup order, so
10M rides are written with bounded memory.

Drift knobs: `slowdown` multiplies every duration (traffic got worse: the label drifts, the
features do not); `zone_shift` F draws a share F of the rides with weights inverse to their
pickup zone's popularity (rare zones become common: the zone mix drifts).

Pure: no files, no environment. Deterministic for a given seed.
"""

from __future__ import annotations

from collections.abc import Iterable, Iterator
from dataclasses import dataclass
from datetime import datetime

import numpy as np
import pyarrow as pa

from ridestream.trips import TripBatch

HOURS_PER_WEEK = 7 * 24
US_PER_S = 1_000_000
# What a plausible ride is, for fitting: a real drop-off after pickup within 3 hours, a real
# zone, a distance an odometer can show. (Replay keeps every row; this is only what we copy.)
MAX_FIT_DURATION_S = 3 * 3600
MAX_FIT_DISTANCE_MI = 100.0
# Noise on copied distances and durations: lognormal with sigma 5% (rides stay realistic).
NOISE_SIGMA = 0.05
DEFAULT_CHUNK_RIDES = 500_000

# The green schema's columns that the loader and the replay read, in TLC order.
GREEN_SCHEMA = pa.schema(
    [
        ("VendorID", pa.int64()),
        ("lpep_pickup_datetime", pa.timestamp("us")),
        ("lpep_dropoff_datetime", pa.timestamp("us")),
        ("store_and_fwd_flag", pa.string()),
        ("RatecodeID", pa.float64()),
        ("PULocationID", pa.int64()),
        ("DOLocationID", pa.int64()),
        ("passenger_count", pa.float64()),
        ("trip_distance", pa.float64()),
        ("trip_type", pa.float64()),
    ]
)


@dataclass(frozen=True)
class SynthModel:
    """What `generate` samples from: real rides by hour of day and arrivals by hour of week."""

    source: str
    hour: np.ndarray  # hour of day of every kept real ride
    pu_location_id: np.ndarray
    do_location_id: np.ndarray
    trip_distance: np.ndarray
    duration_s: np.ndarray
    vendor_id: np.ndarray  # float, NaN = missing
    passenger_count: np.ndarray
    rides_per_hour_of_week: np.ndarray  # (168,) mean arrivals, Monday 00:00 first
    first_pickup: datetime

    @property
    def rides(self) -> int:
        return len(self.hour)


@dataclass(frozen=True)
class SynthOptions:
    """How to generate: how many rides from when, how fast they arrive, what drifts."""

    rides: int
    start: datetime
    seed: int = 0
    slowdown: float = 1.0
    zone_shift: float = 0.0
    rate: float = 1.0  # multiplies the real arrival rate
    chunk_rides: int = DEFAULT_CHUNK_RIDES


def fit(batches: Iterable[TripBatch]) -> SynthModel:
    """Fit a SynthModel on the batches of a real month (only plausible rides are kept)."""
    parts: dict[str, list[np.ndarray]] = {k: [] for k in ("p", "d", "pu", "do", "km", "v", "n")}
    source = ""
    for batch in batches:
        source = source or batch.source
        parts["p"].append(batch.pickup)
        parts["d"].append(batch.dropoff)
        parts["pu"].append(batch.pu_location_id)
        parts["do"].append(batch.do_location_id)
        parts["km"].append(batch.trip_distance)
        parts["v"].append(batch.vendor_id)
        parts["n"].append(batch.passenger_count)
    if not parts["p"]:
        raise ValueError("nothing to fit: the file has no rows")
    pickup, dropoff = np.concatenate(parts["p"]), np.concatenate(parts["d"])
    pu, do = np.concatenate(parts["pu"]), np.concatenate(parts["do"])
    distance = np.concatenate(parts["km"])
    duration_s = (dropoff - pickup).astype("timedelta64[us]").astype(np.int64) / US_PER_S
    with np.errstate(invalid="ignore"):
        keep = (
            ~np.isnat(pickup)
            & ~np.isnat(dropoff)
            & (duration_s > 0)
            & (duration_s <= MAX_FIT_DURATION_S)
            & (pu >= 1) & (pu <= 265) & (do >= 1) & (do <= 265)
            & (distance >= 0) & (distance <= MAX_FIT_DISTANCE_MI)
        )  # fmt: skip
    # The month's own rides set the arrival rate (stray 2009 rows would stretch the span).
    kept_pickup = pickup[keep]
    median_us = int(np.median(kept_pickup.astype(np.int64)))
    month = np.datetime64(median_us, "us").astype("datetime64[M]")
    in_month = (kept_pickup >= month) & (kept_pickup < month + 1)
    hour_of_week = _hour_of_week(kept_pickup[in_month])
    counts = np.bincount(hour_of_week, minlength=HOURS_PER_WEEK).astype(np.float64)
    occurrences = np.bincount(
        _hour_of_week(np.arange(month, month + 1, dtype="datetime64[h]").astype("datetime64[us]")),
        minlength=HOURS_PER_WEEK,
    )
    return SynthModel(
        source=source,
        hour=_hour_of_day(kept_pickup),
        pu_location_id=pu[keep].astype(np.int64),
        do_location_id=do[keep].astype(np.int64),
        trip_distance=distance[keep],
        duration_s=duration_s[keep],
        vendor_id=np.concatenate(parts["v"])[keep],
        passenger_count=np.concatenate(parts["n"])[keep],
        rides_per_hour_of_week=counts / np.maximum(occurrences, 1),
        first_pickup=month.astype("datetime64[us]").astype(datetime),
    )


def _hour_of_day(times: np.ndarray) -> np.ndarray:
    return (times.astype("datetime64[h]").astype(np.int64) % 24).astype(np.int64)


def _hour_of_week(times: np.ndarray) -> np.ndarray:
    # 1970-01-01 was a Thursday: shift by 3 days so Monday 00:00 is hour 0.
    hours = times.astype("datetime64[h]").astype(np.int64)
    return ((hours + 3 * 24) % HOURS_PER_WEEK).astype(np.int64)


def _sampling_pools(model: SynthModel) -> list[tuple[np.ndarray, np.ndarray]]:
    """Per hour of day: the real rides' indexes and the zone-shifted sampling probabilities."""
    popularity = np.bincount(model.pu_location_id, minlength=266).astype(np.float64)
    pools = []
    for hour in range(24):
        index = np.flatnonzero(model.hour == hour)
        if len(index) == 0:  # an hour with no rides at all: borrow the whole month
            index = np.arange(model.rides)
        weights = 1.0 / popularity[model.pu_location_id[index]]
        pools.append((index, weights / weights.sum()))
    return pools


def generate(model: SynthModel, options: SynthOptions) -> Iterator[pa.Table]:
    """Yield tables (GREEN_SCHEMA) of synthetic rides in pickup order, `chunk_rides` at most."""
    if options.rides <= 0:
        return
    rng = np.random.default_rng(options.seed)
    pools = _sampling_pools(model)
    rate = model.rides_per_hour_of_week * options.rate
    if rate.sum() <= 0:
        raise ValueError("the fitted month has no rides to take an arrival rate from")
    hour = np.datetime64(options.start, "h")
    left = options.rides
    while left > 0:
        # A block of hours whose expected arrivals roughly fill a chunk.
        per_hour = max(rate.mean(), 1e-9)
        block_h = int(min(max(options.chunk_rides / per_hour, 1), 24 * 366))
        hours = hour + np.arange(block_h).astype("timedelta64[h]")
        arrivals = rng.poisson(rate[_hour_of_week(hours.astype("datetime64[us]"))])
        total = np.cumsum(arrivals)
        if total[-1] >= left:  # the last block: cut at exactly `left` rides
            last = int(np.searchsorted(total, left))
            arrivals = arrivals[: last + 1].copy()
            arrivals[-1] -= int(total[last] - left)
            hours = hours[: last + 1]
        hour = hours[-1] + np.timedelta64(1, "h")
        pickup_hours = np.repeat(hours, arrivals)
        for start in range(0, len(pickup_hours), options.chunk_rides):
            part = pickup_hours[start : start + options.chunk_rides]
            yield _rides_table(model, options, rng, pools, part)
        left -= int(arrivals.sum())


def _rides_table(
    model: SynthModel,
    options: SynthOptions,
    rng: np.random.Generator,
    pools: list[tuple[np.ndarray, np.ndarray]],
    pickup_hours: np.ndarray,
) -> pa.Table:
    n = len(pickup_hours)
    seconds = rng.integers(0, 3_600, n)
    pickup = pickup_hours.astype("datetime64[us]") + (seconds * US_PER_S).astype("timedelta64[us]")
    order = np.argsort(pickup, kind="stable")
    pickup = pickup[order]
    hour_of_day = _hour_of_day(pickup)
    shifted = rng.random(n) < options.zone_shift
    rows = np.empty(n, dtype=np.int64)
    for hour in range(24):
        (index, shifted_p) = pools[hour]
        plain = (hour_of_day == hour) & ~shifted
        rows[plain] = index[rng.integers(0, len(index), int(plain.sum()))]
        drift = (hour_of_day == hour) & shifted
        if drift.any():
            rows[drift] = rng.choice(index, size=int(drift.sum()), p=shifted_p)
    noise = rng.lognormal(0.0, NOISE_SIGMA, (2, n))
    distance = np.round(model.trip_distance[rows] * noise[0], 2)
    duration_s = np.maximum(np.round(model.duration_s[rows] * noise[1] * options.slowdown), 1)
    dropoff = pickup + (duration_s.astype(np.int64) * US_PER_S).astype("timedelta64[us]")
    vendor = model.vendor_id[rows]
    return pa.Table.from_arrays(
        [
            pa.array(vendor, mask=np.isnan(vendor)).cast(pa.int64()),
            pa.array(pickup),
            pa.array(dropoff),
            pa.array(np.full(n, "N")),
            pa.array(np.ones(n)),
            pa.array(model.pu_location_id[rows]),
            pa.array(model.do_location_id[rows]),
            pa.array(model.passenger_count[rows], from_pandas=True),
            pa.array(distance),
            pa.array(np.ones(n)),
        ],
        schema=GREEN_SCHEMA,
    )
