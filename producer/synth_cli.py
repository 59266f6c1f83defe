"""`ridestream synth`: write N synthetic green-schema trips fitted on a real month (parquet).

The output is written chunk by chunk (one parquet row group per chunk), so memory stays
bounded for any N, and it reads back with the same loader as the TLC files.
"""

from __future__ import annotations

import argparse
import re
import sys
import time
from collections.abc import Sequence
from datetime import datetime
from pathlib import Path
from typing import Any

import pyarrow.parquet as pq

from producer.settings import ProducerSettings
from producer.synth import GREEN_SCHEMA, SynthOptions, fit, generate
from ridestream.cli import CommandParser
from ridestream.trips import NotATripFileError, iter_trip_batches, month_path

MONTH = re.compile(r"^\d{4}-(0[1-9]|1[0-2])$")
ROW_GROUP_ROWS = 65_536


def _positive(kind: type) -> Any:
    def parse(text: str) -> Any:
        try:
            value = kind(text)
        except ValueError:
            raise argparse.ArgumentTypeError(f"expected a number, got {text!r}") from None
        if value <= 0:
            raise argparse.ArgumentTypeError("must be positive")
        return value

    return parse


def _share(text: str) -> float:
    try:
        value = float(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected a number, got {text!r}") from None
    if not 0.0 <= value <= 1.0:
        raise argparse.ArgumentTypeError("must be between 0 and 1")
    return value


def _date(text: str) -> datetime:
    try:
        return datetime.fromisoformat(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected an ISO date, got {text!r}") from None


def build_parser() -> argparse.ArgumentParser:
    """The `ridestream synth` command line."""
    parser = CommandParser(
        prog="ridestream synth",
        description=(
            "Write N realistic green-schema trips: zone pairs, distances and durations are "
            "sampled from a real month by hour of day, arrivals follow its hourly rate. "
            "Drift on purpose with --slowdown and --zone-shift."
        ),
        epilog="Example: ridestream synth --fit 2021-01 --rides 1000000 --out data/synth.parquet",
    )
    parser.add_argument(
        "--fit",
        required=True,
        metavar="YYYY-MM|PATH",
        help="the real month to fit on (green file in the data dir) or a trip file",
    )
    parser.add_argument(
        "--rides",
        type=_positive(int),
        required=True,
        metavar="N",
        help="how many rides to write (written in chunks: any N fits in memory)",
    )
    parser.add_argument(
        "--out",
        type=Path,
        required=True,
        metavar="FILE.parquet",
        help="output parquet file; its name (without .parquet) prefixes ride ids",
    )
    parser.add_argument(
        "--start",
        type=_date,
        metavar="DATE",
        help="event time of the first synthetic hour (default: the fitted month)",
    )
    parser.add_argument(
        "--seed",
        type=int,
        default=0,
        help="random seed: the same seed gives the same rides (default: 0)",
    )
    parser.add_argument(
        "--slowdown",
        type=_positive(float),
        default=1.0,
        metavar="FACTOR",
        help="multiply every duration (1.3 = trips take 30%% longer)",
    )
    parser.add_argument(
        "--zone-shift",
        type=_share,
        default=0.0,
        metavar="F",
        help="share of rides drawn favouring rare pickup zones (0..1)",
    )
    parser.add_argument(
        "--rate",
        type=_positive(float),
        default=1.0,
        metavar="FACTOR",
        help="multiply the real arrival rate (2 = twice the rides per hour)",
    )
    parser.add_argument(
        "--color",
        choices=("green", "yellow"),
        default="green",
        help="colour of the --fit month file (the output is green schema)",
    )
    parser.add_argument("--data-dir", type=Path, help="overrides RIDESTREAM_DATA_DIR")
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    """Run `ridestream synth ARGS`; returns the exit code."""
    args = build_parser().parse_args(list(sys.argv[1:] if argv is None else argv))
    data_dir = args.data_dir or ProducerSettings().data_dir
    fit_path = (
        month_path(data_dir, args.fit, args.color) if MONTH.match(args.fit) else Path(args.fit)
    )
    if args.out.suffix != ".parquet":
        print("ridestream synth: --out must be a .parquet file", file=sys.stderr)
        return 2
    try:
        model = fit(iter_trip_batches(fit_path))
    except (NotATripFileError, ValueError) as error:
        print(f"ridestream synth: cannot fit on {fit_path}: {error}", file=sys.stderr)
        return 2
    options = SynthOptions(
        rides=args.rides,
        start=args.start or model.first_pickup,
        seed=args.seed,
        slowdown=args.slowdown,
        zone_shift=args.zone_shift,
        rate=args.rate,
    )
    started = time.monotonic()
    args.out.parent.mkdir(parents=True, exist_ok=True)
    part = args.out.with_name(args.out.name + ".part")
    written, first, last = 0, None, None
    with pq.ParquetWriter(part, GREEN_SCHEMA) as writer:
        for table in generate(model, options):
            # Row groups of ~64k rows: a reader streams them without holding a whole chunk.
            writer.write_table(table, row_group_size=ROW_GROUP_ROWS)
            written += table.num_rows
            pickups = table.column("lpep_pickup_datetime")
            first = first or pickups[0].as_py()
            last = pickups[-1].as_py()
            line = f"synth: {written:,} of {args.rides:,} rides"
            sys.stderr.write(f"\r{line}" if sys.stderr.isatty() else f"{line}\n")
            sys.stderr.flush()
    part.replace(args.out)
    if sys.stderr.isatty():
        sys.stderr.write("\n")
    elapsed_s = time.monotonic() - started
    print(
        f"wrote {written:,} synthetic rides to {args.out} "
        f"({args.out.stat().st_size / 1e6:.1f} MB, {elapsed_s:.1f} s)\n"
        f"  fitted on     {fit_path.name} ({model.rides:,} plausible rides)\n"
        f"  pickups       {first} .. {last}\n"
        f"  drift         slowdown {args.slowdown:g}, zone shift {args.zone_shift:g}, "
        f"rate {args.rate:g}, seed {args.seed}"
    )
    return 0


if __name__ == "__main__":
    sys.exit(main())
