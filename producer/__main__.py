"""`ridestream replay` (also `python -m producer`): replay TLC trip files into Kafka.

Wiring only: parse arguments, read settings once, open the files, create the topics, build the
producer, run `producer.replay.replay`, flush, print the summary. SIGTERM/SIGINT stop the
replay after the slice in hand; what was sent is flushed. A failed send makes the exit code 1.
"""

from __future__ import annotations

import argparse
import contextlib
import ctypes
import logging
import re
import sys
import threading
import time
from collections import deque
from collections.abc import Callable, Iterator, Sequence
from datetime import datetime
from pathlib import Path
from typing import Any

import pyarrow as pa
from kafka import KafkaProducer, TopicPartition
from kafka.errors import KafkaError

from producer.replay import (
    Encoded,
    Pacer,
    ReplayOptions,
    ReplayStats,
    format_event_time,
    replay,
)
from producer.settings import ProducerSettings
from ridestream.cli import CommandParser, add_kafka_options, with_kafka_options
from ridestream.stream.admin import create_topics
from ridestream.stream.clients import build_producer
from ridestream.stream.fastpath import append_records, appends_directly, partitions_for_keys
from ridestream.stream.redaction import redact_client_secrets
from ridestream.stream.signals import stop_on_signals
from ridestream.trips import (
    NotATripFileError,
    TripBatch,
    iter_trip_batches,
    month_path,
    trip_file_color,
)

log = logging.getLogger("producer")

MONTH = re.compile(r"^\d{4}-(0[1-9]|1[0-2])$")


class UsageError(ValueError):
    """A bad command line or a missing/unusable input file (reported in one line, exit 2)."""


class DeliveryFailedError(RuntimeError):
    """Events could not be delivered: the replay stops and exits non-zero."""


class KafkaSink:
    """Sends encoded events to Kafka without per-message bookkeeping (but an errback on each).

    Partitions are computed for a whole slice at once (`partitions_for_keys`),
    exactly as the default partitioner would. With `direct_append` the records go straight into
    the producer's record accumulator (`ridestream.stream.fastpath`, ~1.5x `send`; see
    bench/); it falls back to `send` on a producer without kafka-python's internals or with a
    partitioner of its own. Failed sends are counted; the next call then raises
    DeliveryFailedError. `wait_for_room` bounds the unacknowledged events.
    """

    def __init__(
        self,
        producer: KafkaProducer,
        topics: tuple[str, str],
        max_pending_events: int,
        *,
        direct_append: bool = True,
    ) -> None:
        self.producer = producer
        self.topics = topics
        partitions = [producer.partitions_for(topic) for topic in topics]
        self.partition_counts = tuple(len(p) for p in partitions)
        self._tps = [
            [TopicPartition(topic, p) for p in range(count)]
            for topic, count in zip(topics, self.partition_counts, strict=True)
        ]
        self.direct_append = direct_append and appends_directly(producer)
        self.failed = 0
        self.first_error: BaseException | None = None
        self.max_pending_events = max_pending_events
        self._in_flight: deque[tuple[int, Any]] = deque()  # (events, last future of a slice)
        self._pending = 0

    def _on_error(self, error: BaseException) -> None:
        self.failed += 1
        if self.first_error is None:
            self.first_error = error

    def __call__(self, encoded: Encoded, start: int, stop: int) -> None:
        if self.failed:
            raise DeliveryFailedError(f"{self.failed:,} events failed to send: {self.first_error}")
        keys = encoded.keys[start:stop]
        kinds = encoded.kinds[start:stop]
        values = encoded.values[start:stop]
        counts = self.partition_counts
        if counts[0] == counts[1]:
            same = partitions_for_keys(keys, counts[0]).tolist()
            parts = [same, same]
        else:
            parts = [partitions_for_keys(keys, n).tolist() for n in counts]
        on_error = self._on_error
        future: Any = None
        if self.direct_append:
            tps = self._tps
            targets = [tps[kind][parts[kind][i]] for i, kind in enumerate(kinds)]
            for future in append_records(self.producer, targets, keys, values):
                future.add_errback(on_error)
        else:
            send = self.producer.send
            topics = self.topics
            for i, (kind, key, value) in enumerate(zip(kinds, keys, values, strict=True)):
                future = send(topics[kind], value=value, key=key, partition=parts[kind][i])
                future.add_errback(on_error)
        self._in_flight.append((stop - start, future))
        self._pending += stop - start
        self.wait_for_room()

    def wait_for_room(self) -> None:
        """Block while more than `max_pending_events` events may be unacknowledged."""
        while self._in_flight and (
            self._pending > self.max_pending_events or self._in_flight[0][1].is_done
        ):
            count, future = self._in_flight[0]
            if not future.is_done:
                # A failure is counted by the errback; here we only wait.
                with contextlib.suppress(KafkaError):
                    future.get(timeout=self.producer.config["delivery_timeout_ms"] / 1000)
            self._in_flight.popleft()
            self._pending -= count


def _speed(text: str) -> float | None:
    if text == "max":
        return None
    try:
        value = float(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected a number or 'max', got {text!r}") from None
    if value <= 0:
        raise argparse.ArgumentTypeError("must be positive")
    return value


def _month(text: str) -> str:
    if not MONTH.match(text):
        raise argparse.ArgumentTypeError(f"expected YYYY-MM, got {text!r}")
    return text


def _time(text: str) -> datetime:
    try:
        return datetime.fromisoformat(text)
    except ValueError:
        raise argparse.ArgumentTypeError(
            f"expected an ISO date or datetime, got {text!r}"
        ) from None


def _positive_int(text: str) -> int:
    try:
        value = int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected an integer, got {text!r}") from None
    if value <= 0:
        raise argparse.ArgumentTypeError("must be positive")
    return value


def build_parser() -> argparse.ArgumentParser:
    """The `ridestream replay` command line."""
    parser = CommandParser(
        prog="ridestream replay",
        description=(
            "Replay NYC TLC trip files into Kafka: each trip becomes RideRequested at pickup "
            "(topic rides.requested) and RideCompleted at drop-off (rides.completed), merged in "
            "event-time order, keyed by the ride id (<file>:<row>)."
        ),
        epilog="Kafka and other settings come from RIDESTREAM_* variables (see .env.example).",
    )
    inputs = parser.add_mutually_exclusive_group()
    inputs.add_argument(
        "--months",
        nargs="+",
        type=_month,
        metavar="YYYY-MM",
        help="monthly files in the data dir (RIDESTREAM_DATA_DIR, default ./data)",
    )
    inputs.add_argument(
        "--files",
        nargs="+",
        type=Path,
        metavar="PATH",
        help="trip files (parquet or CSV, green or yellow), replayed as one stream",
    )
    parser.add_argument(
        "--color",
        choices=("green", "yellow"),
        default="green",
        help="TLC colour of --months files (default: green)",
    )
    parser.add_argument("--data-dir", type=Path, help="overrides RIDESTREAM_DATA_DIR")
    parser.add_argument(
        "--speed",
        type=_speed,
        default=None,
        metavar="FACTOR",
        help="event time runs FACTOR times faster than real time; 'max' = as fast as "
        "possible (default: max)",
    )
    parser.add_argument(
        "--limit",
        type=_positive_int,
        metavar="N",
        help="stop after N rides read from the files (skipped rows included)",
    )
    parser.add_argument(
        "--start",
        type=_time,
        metavar="TIME",
        help="only rides picked up at or after TIME (ISO, TLC local time)",
    )
    parser.add_argument(
        "--end", type=_time, metavar="TIME", help="only rides picked up before TIME"
    )
    add_kafka_options(parser)
    parser.add_argument("--no-progress", action="store_true", help="no progress lines on stderr")
    return parser


def input_files(args: argparse.Namespace, data_dir: Path) -> list[Path]:
    """The files to replay, each checked to be a trip file; raises UsageError otherwise."""
    if args.files:
        paths = list(args.files)
    elif args.months:
        paths = [month_path(data_dir, month, args.color) for month in sorted(args.months)]
        for month, path in zip(sorted(args.months), paths, strict=True):
            if not path.exists():
                raise UsageError(
                    f"no {args.color} file for {month} in {data_dir} "
                    f"(try `ridestream data fetch --color {args.color} --months {month}`)"
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
        trim_heap = _heap_trimmer()

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


def _heap_trimmer() -> Callable[[], None]:
    """Give freed memory back to the OS (called every progress tick).

    kafka-python's batch buffers are allocated on one thread and freed on another; glibc keeps
    the freed pages, and a long replay's RSS creeps up (+150 MB over 20M events, measured).
    `malloc_trim` gives them back (~65 MB each time); pyarrow's pool keeps freed batches too.
    """
    pool = pa.default_memory_pool()
    try:
        trim = ctypes.CDLL("libc.so.6").malloc_trim
    except (OSError, AttributeError):  # not glibc
        trim = None

    def release() -> None:
        pool.release_unused()
        if trim is not None:
            trim(0)

    return release


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


def kafka_reason(error: BaseException | None) -> str:
    """`Type: message` of a Kafka error, once (kafka-python's str() repeats the type)."""
    name = type(error).__name__
    text = str(error.args[0]) if error is not None and error.args else ""
    return text if text.startswith(name) else f"{name}: {text}".rstrip(": ")


def main(argv: Sequence[str] | None = None) -> int:
    """Run `ridestream replay ARGS`; returns the exit code."""
    args = build_parser().parse_args(list(sys.argv[1:] if argv is None else argv))
    settings = ProducerSettings()
    logging.basicConfig(level=settings.log_level, format="%(levelname)s %(name)s: %(message)s")
    redact_client_secrets()
    # kafka-python logs every connection attempt; the replay reports failures itself, in one
    # line (RIDESTREAM_LOG_LEVEL=DEBUG shows the client's own story).
    if settings.log_level != "DEBUG":
        logging.getLogger("kafka").setLevel(logging.CRITICAL)
    settings = with_kafka_options(settings, args)
    if args.data_dir is not None:
        settings = settings.model_copy(update={"data_dir": args.data_dir})
    try:
        if args.start and args.end and args.end <= args.start:
            raise UsageError("--end must be after --start")
        paths = input_files(args, settings.data_dir)
    except UsageError as error:
        print(f"ridestream replay: {error}", file=sys.stderr)
        return 2
    options = ReplayOptions(
        speed=args.speed,
        limit_rides=args.limit,
        start=args.start,
        end=args.end,
        reorder_events=settings.producer.reorder_events,
        max_gap_s=settings.producer.max_gap_s,
        progress_interval_s=settings.producer.progress_interval_s,
    )
    stop = threading.Event()
    stop_on_signals(stop)
    try:
        stats, sink = run(settings, paths, options, stop=stop, progress=not args.no_progress)
    except DeliveryFailedError as error:
        print(f"ridestream replay: {error}", file=sys.stderr)
        return 1
    except KafkaError as error:
        where = f"Kafka at {settings.kafka.bootstrap_servers}"
        print(f"ridestream replay: {where}: {kafka_reason(error)}", file=sys.stderr)
        return 1
    topics = (settings.topics.rides_requested, settings.topics.rides_completed)
    print(summary(stats, topics, paths))
    if sink.failed:
        print(
            f"ridestream replay: {sink.failed:,} events failed to send "
            f"(first: {kafka_reason(sink.first_error)})",
            file=sys.stderr,
        )
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
