"""`ridestream data fetch|list`: download the official monthly TLC files, show what is there.

Files go to the data dir (`RIDESTREAM_DATA_DIR`, default `./data`) under their TLC names, so
`ridestream replay --months` and the training code find them with `ridestream.trips.month_path`.
The download itself (temporary name, checked, then renamed) is `ridestream.tripdata_fetch`.
"""

from __future__ import annotations

import argparse
import contextlib
import re
import sys
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from producer.settings import ProducerSettings
from ridestream.cli import CommandParser
from ridestream.tripdata_fetch import TLC_BASE_URL, FetchError, fetch, month_argument
from ridestream.trips import NotATripFileError, count_rows, trip_file_color

TRIP_FILE = re.compile(r"^(?P<color>green|yellow)_tripdata_(?P<month>\d{4}-\d{2})\.")


def list_files(data_dir: Path) -> list[dict[str, Any]]:
    """The trip files in `data_dir`: name, colour, month, rows, size (and why, if refused)."""
    rows: list[dict[str, Any]] = []
    if not data_dir.is_dir():
        return rows
    for path in sorted(data_dir.iterdir()):
        if not path.name.endswith((".parquet", ".csv", ".csv.gz")) or not path.is_file():
            continue
        entry: dict[str, Any] = {"file": path.name, "size_bytes": path.stat().st_size}
        named = TRIP_FILE.match(path.name)
        entry["month"] = named["month"] if named else "-"
        try:
            entry["color"] = trip_file_color(path)
            entry["rows"] = count_rows(path)
        except NotATripFileError as error:
            entry["color"], entry["rows"] = "-", None
            entry["problem"] = str(error).removeprefix(f"{path}: ")
        rows.append(entry)
    return rows


def format_listing(entries: list[dict[str, Any]], data_dir: Path) -> str:
    """The table `ridestream data list` prints."""
    if not entries:
        return f"no trip files in {data_dir} (try `ridestream data fetch --months 2021-01`)"
    width = max(len(e["file"]) for e in entries)
    lines = [f"{'file':<{width}}  {'color':<6}  {'month':<7}  {'rows':>11}  {'size':>9}"]
    for e in entries:
        rows = f"{e['rows']:,}" if e["rows"] is not None else "-"
        size = f"{e['size_bytes'] / 1e6:.1f} MB"
        line = f"{e['file']:<{width}}  {e['color']:<6}  {e['month']:<7}  {rows:>11}  {size:>9}"
        if "problem" in e:
            line += f"  not a trip file: {e['problem']}"
        lines.append(line)
    total_rows = sum(e["rows"] or 0 for e in entries)
    total_mb = sum(e["size_bytes"] for e in entries) / 1e6
    lines.append(f"{len(entries)} file(s), {total_rows:,} rows, {total_mb:.1f} MB in {data_dir}")
    return "\n".join(lines)


def build_parser() -> argparse.ArgumentParser:
    """The `ridestream data` command line."""
    parser = CommandParser(
        prog="ridestream data",
        description="Fetch and list NYC TLC trip record files in the data dir.",
        epilog="The data dir is RIDESTREAM_DATA_DIR (default ./data) unless --data-dir is given.",
    )
    parser.add_argument("--data-dir", type=Path, help="overrides RIDESTREAM_DATA_DIR")
    commands = parser.add_subparsers(
        dest="command", metavar="{fetch,list}", parser_class=CommandParser
    )
    fetch_parser = commands.add_parser(
        "fetch",
        help="download monthly TLC files (skips those already there)",
        description=f"Download monthly TLC parquet files from {TLC_BASE_URL}.",
    )
    fetch_parser.add_argument(
        "--months",
        nargs="+",
        type=month_argument,
        required=True,
        metavar="YYYY-MM",
        help="the months to download",
    )
    fetch_parser.add_argument(
        "--color", choices=("green", "yellow"), default="green", help="TLC colour (default: green)"
    )
    fetch_parser.add_argument("--base-url", default=TLC_BASE_URL, help="a mirror of trip-data/")
    fetch_parser.add_argument(
        "--timeout",
        type=float,
        default=30.0,
        metavar="SECONDS",
        help="network timeout per request (default: 30)",
    )
    fetch_parser.add_argument(
        "--data-dir", type=Path, default=argparse.SUPPRESS, help="overrides RIDESTREAM_DATA_DIR"
    )
    list_parser = commands.add_parser(
        "list",
        help="show the trip files there (month, rows, size)",
        description="Show the trip files in the data dir: colour, month, rows and size.",
    )
    list_parser.add_argument(
        "--data-dir", type=Path, default=argparse.SUPPRESS, help="overrides RIDESTREAM_DATA_DIR"
    )
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    """Run `ridestream data fetch|list ARGS`; returns the exit code."""
    parser = build_parser()
    args = parser.parse_args(list(sys.argv[1:] if argv is None else argv))
    if args.command is None:
        parser.print_help()
        return 2
    data_dir = args.data_dir or ProducerSettings().data_dir
    if args.command == "list":
        print(format_listing(list_files(data_dir), data_dir))
        return 0
    try:
        fetch(
            data_dir,
            args.color,
            args.months,
            base_url=args.base_url,
            timeout_s=args.timeout,
            on_done=lambda done: print(f"{args.color} {done.month}: {done.describe()}", flush=True),
        )
    except FetchError as error:
        print(f"ridestream data fetch: {error}", file=sys.stderr)
        return 1
    except KeyboardInterrupt:
        with contextlib.suppress(OSError):
            sys.stderr.write("\n")
        return 130
    return 0


if __name__ == "__main__":
    sys.exit(main())
