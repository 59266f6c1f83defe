"""The replay run: the input files, the topics, a producer and its sink, `producer.replay.replay`,
the final flush, progress lines and the summary."""

from __future__ import annotations

import logging
import sys
import threading
import time
from collections.abc import Callable, Iterator, Sequence
from pathlib import Path

from producer.heap import heap_trimmer
from producer.replay import Pacer, ReplayOptions, ReplayStats, format_event_time, replay
from producer.settings import ProducerSettings
from producer.sink import KafkaSink
from ridestream.runner import UsageError
from ridestream.stream.admin import create_topics
from ridestream.stream.clients import build_producer
from ridestream.trips import (
    NotATripFileError,
    TripBatch,
    iter_trip_batches,
    month_path,
    trip_file_color,
)

log = logging.getLogger("producer")


def input_files(
    files: Sequence[Path] | None, months: Sequence[str] | None, color: str, data_dir: Path
) -> list[Path]:
    """The files to replay (`files`, or the `color` files of `months` in `data_dir`), each
    checked to be a trip file; raises UsageError otherwise."""
    if files:
        paths = list(files)
    elif months:
        paths = [month_path(data_dir, month, color) for month in sorted(months)]
        for month, path in zip(sorted(months), paths, strict=True):
            if not path.exists():
                raise UsageError(
                    f"no {color} file for {month} in {data_dir} "
                    f"(try `ridestream data fetch --color {color} --months {month}`)"
                )
    else:
        raise UsageError("nothing to replay: give --months or --files")
    for path in paths:
        try:
            trip_file_color(path)
        except NotATripFileError as error:
            raise UsageError(str(error)) from None
    return paths


def _batches(paths: Sequence[Path]) -> Iterator[TripBatch]:
    for path in paths:
        log.info("replaying %s", path)
        yield from iter_trip_batches(path)


def run(
    settings: ProducerSettings,
    paths: Sequence[Path],
    options: ReplayOptions,
    *,
    stop: threading.Event | None = None,
    progress: bool = True,
    on_progress: Callable[[ReplayStats, Pacer], None] | None = None,
) -> tuple[ReplayStats, KafkaSink]:
    """Create the topics, replay `paths` with a fresh producer, flush and close it.

    Progress goes to stderr when `progress`, or to `on_progress` when given (benchmarks).
    """
    topics = settings.topics
    names = (topics.rides_requested, topics.rides_completed)
    knobs = settings.producer
    # The producer first: it fails fast (RIDESTREAM_KAFKA__BOOTSTRAP_TIMEOUT_MS) when no broker
    # answers.
    producer = build_producer(
        settings.kafka,
        linger_ms=knobs.linger_ms,
        batch_size=knobs.batch_size,
        compression_type=knobs.compression_type,
    )
    try:
        create_topics(settings.kafka, names, partitions=settings.broker.partitions)
        sink = KafkaSink(
            producer, names, knobs.max_pending_events, direct_append=knobs.direct_append
        )
        report = on_progress or (_print_progress if progress else None)
        trim_heap = heap_trimmer()

        def tick(stats: ReplayStats, pacer: Pacer) -> None:
            trim_heap()
            if report is not None:
                report(stats, pacer)

        stats = replay(_batches(paths), sink, options, stop=stop, on_progress=tick)
        producer.flush()
        sink.wait_for_room()
        # Wall time and rate include the final flush: events count once the broker has them.
        stats.wall_s = max(stats.wall_s, _since(stats))
        if progress and sys.stderr.isatty():
            sys.stderr.write("\n")
        return stats, sink
    finally:
        producer.close()


def _since(stats: ReplayStats) -> float:
    return time.monotonic() - stats.started_s


def _print_progress(stats: ReplayStats, pacer: Pacer) -> None:
    position = format_event_time(stats.last_event_us)
    line = (
        f"replay: {stats.requested:,} rides, {stats.events_sent:,} events, "
        f"{stats.events_per_s:,.0f} events/s, event time {position}"
    )
    if sys.stderr.isatty():
        sys.stderr.write("\r" + line.ljust(100))
    else:
        sys.stderr.write(line + "\n")
    sys.stderr.flush()


def summary(stats: ReplayStats, topics: tuple[str, str], paths: Sequence[Path]) -> str:
    """The end-of-replay summary (what the command prints)."""
    skipped = sum(stats.skipped.values())
    reasons = ", ".join(f"{reason} {count:,}" for reason, count in stats.skipped.most_common())
    lines = [
        f"replayed {len(paths)} file(s){' (stopped early)' if stats.stopped else ''}",
        f"  rows read      {stats.rows_read:,}",
        f"  rides          {stats.rides:,}",
        f"  events sent    {stats.events_sent:,} ({topics[0]} {stats.requested:,}, "
        f"{topics[1]} {stats.completed:,})",
        f"  skipped        {skipped:,}" + (f" ({reasons})" if reasons else ""),
        f"  outside range  {stats.outside_range:,}",
        f"  late rides     {stats.late_rides:,}",
        f"  event time     {format_event_time(stats.first_event_us)} .. "
        f"{format_event_time(stats.last_event_us)}",
        f"  wall time      {stats.wall_s:.2f} s",
        f"  rate           {stats.events_per_s:,.0f} events/s",
    ]
    return "\n".join(lines)
