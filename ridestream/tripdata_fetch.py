"""Download monthly NYC TLC trip files into a data dir, never leaving a half file behind.

Used by `ridestream data fetch`, by `ridestream demo` for the months it is missing, and by the
tests' data-dir helper. A download goes to `<name>.part` beside its destination and is renamed
only once it is complete (as many bytes as the server announced) and reads as a TLC trip file,
so an interrupted or corrupt download never shows up later as data.
"""

from __future__ import annotations

import argparse
import http.client
import re
import socket
import sys
import time
import urllib.error
import urllib.parse
import urllib.request
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import IO

from ridestream.trips import NotATripFileError, count_rows, month_path, trip_file_color

TLC_BASE_URL = "https://d37ci6vzurychx.cloudfront.net/trip-data"
MONTH = re.compile(r"^\d{4}-(0[1-9]|1[0-2])$")
CHUNK_BYTES = 1 << 20

Opener = Callable[..., IO[bytes]]
Progress = Callable[[int, int | None], None]


class FetchError(RuntimeError):
    """A download failed (the message is one line)."""


@dataclass(frozen=True)
class Fetched:
    """One month `fetch` was asked for: where it is, and what this call did about it."""

    month: str
    path: Path
    downloaded: bool  # False: the file was already there
    size_bytes: int = 0
    seconds: float = 0.0
    rows: int = 0

    def describe(self) -> str:
        """One line: the size, the rate and the row count of a download, or 'already there'."""
        if not self.downloaded:
            return f"already there: {self.path}"
        rate = self.size_bytes / 1e6 / max(self.seconds, 1e-3)
        return (
            f"fetched {self.size_bytes / 1e6:.1f} MB in {self.seconds:.1f} s ({rate:.1f} MB/s), "
            f"{self.rows:,} rows: {self.path}"
        )


def month_argument(text: str) -> str:
    """An argparse type for a YYYY-MM month (a bad one is a one-line usage error)."""
    if not MONTH.match(text):
        raise argparse.ArgumentTypeError(f"expected YYYY-MM, got {text!r}")
    return text


def month_url(base_url: str, color: str, month: str) -> str:
    """The URL of a monthly TLC file."""
    return f"{base_url.rstrip('/')}/{color}_tripdata_{month}.parquet"


def missing_months(data_dir: Path, months: Sequence[str], color: str = "green") -> list[str]:
    """The months (each once, in order) whose file is not in `data_dir`."""
    wanted = dict.fromkeys(months)
    return [month for month in wanted if not month_path(data_dir, month, color).exists()]


def download(
    url: str,
    dest: Path,
    *,
    timeout_s: float = 30.0,
    opener: Opener = urllib.request.urlopen,
    progress: Progress | None = None,
) -> int:
    """Download `url` to `dest` via `dest.part`, renamed when complete; returns the bytes.

    The file is renamed only when it is complete and reads as a TLC trip file. Raises
    FetchError with a one-line reason (and leaves nothing behind) otherwise.
    """
    part = dest.with_name(dest.name + ".part")
    host = urllib.parse.urlparse(url).netloc or url
    try:
        with opener(url, timeout=timeout_s) as response, part.open("wb") as out:
            headers = getattr(response, "headers", None)
            length = headers.get("Content-Length") if headers is not None else None
            total = int(length) if length else None
            done = 0
            while chunk := response.read(CHUNK_BYTES):
                out.write(chunk)
                done += len(chunk)
                if progress is not None:
                    progress(done, total)
        if total is not None and done < total:
            raise FetchError(f"{url}: connection closed after {done:,} of {total:,} bytes")
        trip_file_color(part)
    except urllib.error.HTTPError as error:
        part.unlink(missing_ok=True)
        raise FetchError(f"{url}: HTTP {error.code} {error.reason}") from None
    except http.client.IncompleteRead as error:
        part.unlink(missing_ok=True)
        raise FetchError(f"{url}: connection closed after {len(error.partial):,} bytes") from None
    except (http.client.HTTPException, ConnectionError) as error:
        part.unlink(missing_ok=True)
        raise FetchError(f"{url}: connection broken ({error!r})") from None
    except (urllib.error.URLError, OSError, TimeoutError) as error:
        part.unlink(missing_ok=True)
        reason = getattr(error, "reason", error)
        raise FetchError(f"cannot reach {host} ({reason}); are you offline?") from None
    except NotATripFileError as error:
        part.unlink(missing_ok=True)
        reason = str(error).removeprefix(f"{part}: ")
        raise FetchError(f"downloaded file is not a trip file: {url}: {reason}") from None
    except BaseException:  # Ctrl-C or a bug: still no half file
        part.unlink(missing_ok=True)
        raise
    part.replace(dest)
    return done


def print_progress(name: str) -> Progress:
    """A progress callback that redraws `name: x MB of y MB (z%)` on stderr (a terminal only)."""
    last = [0.0]
    if not sys.stderr.isatty():
        return lambda done, total: None  # a log gets the one line per file `fetch` returns

    def show(done: int, total: int | None) -> None:
        now = time.monotonic()
        if now - last[0] < 0.5 and done != total:
            return
        last[0] = now
        of = f" of {total / 1e6:.1f} MB ({100 * done / total:.0f}%)" if total else ""
        sys.stderr.write(f"\r{name}: {done / 1e6:.1f} MB{of}\033[K")
        if done == total:
            sys.stderr.write("\r\033[K")
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
    on_done: Callable[[Fetched], None] | None = None,
) -> list[Fetched]:
    """Fetch the monthly files that are not in `data_dir` yet, in order; `on_done` per month."""
    data_dir.mkdir(parents=True, exist_ok=True)
    results: list[Fetched] = []
    for month in dict.fromkeys(months):
        dest = month_path(data_dir, month, color)
        if dest.exists():
            result = Fetched(month, dest, downloaded=False)
        else:
            began = time.monotonic()
            size = download(
                month_url(base_url, color, month),
                dest,
                timeout_s=timeout_s,
                opener=opener,
                progress=print_progress(dest.name) if progress else None,
            )
            seconds = time.monotonic() - began
            result = Fetched(month, dest, True, size, seconds, count_rows(dest))
        results.append(result)
        if on_done is not None:
            on_done(result)
    return results


def answers(base_url: str, timeout_s: float = 3.0) -> bool:
    """True when the host of `base_url` accepts a connection within `timeout_s` (no download).

    A quick check before trying files, so an offline run costs one short wait, not a full
    timeout per file.
    """
    parsed = urllib.parse.urlparse(base_url)
    if parsed.scheme == "file":
        return Path(urllib.request.url2pathname(parsed.path)).is_dir()
    if parsed.hostname is None:
        return False
    port = parsed.port or (443 if parsed.scheme == "https" else 80)
    try:
        socket.create_connection((parsed.hostname, port), timeout=timeout_s).close()
    except OSError:
        return False
    return True
