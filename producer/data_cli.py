"""`ridestream data fetch|list`: download the official monthly TLC files, show what is there.

Files go to the data dir (`RIDESTREAM_DATA_DIR`, default `./data`) under their TLC names, so
`ridestream replay --months` and the training code find them with `ridestream.trips.month_path`.
"""

from __future__ import annotations

import argparse
import contextlib
import re
import sys
import time
import urllib.error
import urllib.parse
import urllib.request
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import IO, Any

from producer.settings import ProducerSettings
from ridestream.cli import CommandParser
from ridestream.trips import NotATripFileError, count_rows, month_path, trip_file_color

TLC_BASE_URL = "https://d37ci6vzurychx.cloudfront.net/trip-data"
MONTH = re.compile(r"^\d{4}-(0[1-9]|1[0-2])$")
CHUNK_BYTES = 1 << 20
TRIP_FILE = re.compile(r"^(?P<color>green|yellow)_tripdata_(?P<month>\d{4}-\d{2})\.")

Opener = Callable[..., IO[bytes]]


class FetchError(RuntimeError):
    """A download failed (the message is one line)."""


def month_url(base_url: str, color: str, month: str) -> str:
    """The URL of a monthly TLC file."""
    return f"{base_url.rstrip('/')}/{color}_tripdata_{month}.parquet"


def download(
    url: str,
    dest: Path,
    *,
    timeout_s: float = 30.0,
    opener: Opener = urllib.request.urlopen,
    progress: Callable[[int, int | None], None] | None = None,
) -> int:
    """Download `url` to `dest` (via `dest.part`, renamed when complete); returns the bytes.

    Raises FetchError with a one-line reason when the host cannot be reached or answers badly.
    """
    part = dest.with_name(dest.name + ".part")
    try:
        with opener(url, timeout=timeout_s) as response, part.open("wb") as out:
            length = (
                response.headers.get("Content-Length") if hasattr(response, "headers") else None
            )
            total = int(length) if length else None
            done = 0
            while chunk := response.read(CHUNK_BYTES):
                out.write(chunk)
                done += len(chunk)
                if progress is not None:
                    progress(done, total)
    except urllib.error.HTTPError as error:
        part.unlink(missing_ok=True)
        raise FetchError(f"{url}: HTTP {error.code} {error.reason}") from None
    except (urllib.error.URLError, OSError, TimeoutError) as error:
        part.unlink(missing_ok=True)
        reason = getattr(error, "reason", error)
        host = urllib.parse.urlparse(url).netloc or url
        raise FetchError(f"cannot reach {host} ({reason}); are you offline?") from None
    part.replace(dest)
    return done


def _print_progress(name: str) -> Callable[[int, int | None], None]:
    last = [0.0]

    def show(done: int, total: int | None) -> None:
        now = time.monotonic()
        if now - last[0] < 0.5 and done != total:
            return
        last[0] = now
        of = f" of {total / 1e6:.1f} MB ({100 * done / total:.0f}%)" if total else ""
        end = "\n" if done == total or not sys.stderr.isatty() else ""
        sys.stderr.write(f"\r{name}: {done / 1e6:.1f} MB{of}{end}")
        sys.stderr.flush()

    return show


def fetch(
    data_dir: Path,
    color: str,
    months: Sequence[str],
    *,
    base_url: str = TLC_BASE_URL,
    timeout_s: float = 30.0,
    opener: Opener = urllib.request.urlopen,
    progress: bool = True,
) -> list[tuple[str, str]]:
    """Fetch the monthly files that are not in `data_dir` yet; returns (month, what happened)."""
    data_dir.mkdir(parents=True, exist_ok=True)
    done: list[tuple[str, str]] = []
    for month in months:
        dest = month_path(data_dir, month, color)
        if dest.exists():
            done.append((month, f"already there: {dest}"))
            continue
        size = download(
            month_url(base_url, color, month),
            dest,
            timeout_s=timeout_s,
            opener=opener,
            progress=_print_progress(dest.name) if progress else None,
        )
        try:
            trip_file_color(dest)
        except NotATripFileError as error:
            dest.unlink(missing_ok=True)
            raise FetchError(f"downloaded file is not a trip file: {error}") from None
        done.append((month, f"fetched {size / 1e6:.1f} MB: {dest}"))
    return done


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


def _month(text: str) -> str:
    if not MONTH.match(text):
        raise argparse.ArgumentTypeError(f"expected YYYY-MM, got {text!r}")
    return text


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
        type=_month,
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
        for month, what in fetch(
            data_dir, args.color, args.months, base_url=args.base_url, timeout_s=args.timeout
        ):
            print(f"{args.color} {month}: {what}")
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
