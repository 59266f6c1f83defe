"""The producer's settings: the shared ones plus a `producer` section (`RIDESTREAM_PRODUCER__*`)."""

from __future__ import annotations

from typing import Literal

from pydantic import BaseModel, Field

from producer.replay import DEFAULT_MAX_GAP_S, DEFAULT_REORDER_EVENTS
from ridestream.settings import Settings


class ProducerOptions(BaseModel):
    """Knobs of the replay and of its Kafka producer."""

    # Seconds between two progress lines on stderr.
    progress_interval_s: float = Field(default=1.0, gt=0)
    # Events the reorder buffer holds (see producer.replay.EventTimeMerger): ~80 bytes each.
    reorder_events: int = Field(default=DEFAULT_REORDER_EVENTS, gt=0)
    # Paced replays jump over event-time gaps longer than this instead of sleeping through them.
    max_gap_s: float = Field(default=DEFAULT_MAX_GAP_S, gt=0)
    # Producer batching: a ride event is ~250 bytes, so 256 KiB holds ~1k events per partition.
    linger_ms: int = Field(default=5, ge=0)
    batch_size: int = Field(default=262_144, gt=0)
    compression_type: Literal["gzip", "snappy", "lz4", "zstd"] | None = None
    # Append records straight to kafka-python's accumulator (~1.5x send(); see KafkaSink).
    direct_append: bool = True
    # kafka-python 3 has no buffer.memory: the replay waits when this many events are unacked,
    # so the producer's buffers stay bounded (~1 kB an event with its future: 20k is ~20 MB).
    max_pending_events: int = Field(default=20_000, gt=0)


class ProducerSettings(Settings):
    """Settings of `ridestream replay` (and `data`, `synth`, which only use `data_dir`)."""

    producer: ProducerOptions = ProducerOptions()
