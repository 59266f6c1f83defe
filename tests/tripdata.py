"""The real TLC months tests use: one place that says where they are, or fetches them.

`month_file(month)` / `months_dir(*months)` return real green trip files. Looked for, in order:

1. `RIDESTREAM_TEST_DATA_DIR` (the Makefile sets it to `../shared/data` or `./data`), default
   `<repo>/../shared/data`;
2. the cache `<repo>/.ridestream/test-data`, filled once per run from `RIDESTREAM_TEST_DATA_URL`
   (a mirror of TLC's trip-data/), default the official site, when its host answers a quick
   connection check (one per run, so an offline run costs seconds, not a timeout per test).

Otherwise the test is skipped with a reason starting `SKIP_REASON`, which the summary hook in
`tests/conftest.py` counts into one line saying how to provide the data.
"""

from __future__ import annotations

import os
from pathlib import Path

import pytest

from ridestream.tripdata_fetch import TLC_BASE_URL, FetchError, answers, fetch, missing_months
from ridestream.trips import month_path

REPO = Path(__file__).resolve().parents[1]
CACHE_DIR = REPO / ".ridestream" / "test-data"
DATA_DIR_VARIABLE = "RIDESTREAM_TEST_DATA_DIR"
DATA_URL_VARIABLE = "RIDESTREAM_TEST_DATA_URL"
SKIP_REASON = "real TLC data missing"
CONNECT_TIMEOUT_S = 3.0

# Per process, that is per pytest run: a mirror that failed once is not asked again.
_failed: dict[str, str] = {}


def data_dir() -> Path:
    """Where the tests look for real TLC files first."""
    return Path(os.environ.get(DATA_DIR_VARIABLE, REPO.parent / "shared" / "data"))


def data_url() -> str:
    """Where missing months are fetched from."""
    return os.environ.get(DATA_URL_VARIABLE) or TLC_BASE_URL


def months_dir(*months: str) -> Path:
    """A folder holding the green files of `months`; skips the calling test when none can."""
    primary = data_dir()
    if not missing_months(primary, months):
        return primary
    _fill_cache(primary, months)
    return CACHE_DIR


def month_file(month: str) -> Path:
    """The green trip file of `month` (YYYY-MM); skips the calling test when it cannot be had."""
    return month_path(months_dir(month), month)


def _fill_cache(primary: Path, months: tuple[str, ...]) -> None:
    url = data_url()
    CACHE_DIR.mkdir(parents=True, exist_ok=True)
    for month in missing_months(CACHE_DIR, months):
        local = month_path(primary, month)
        if local.exists():  # the rest of a set whose other months are fetched
            link = month_path(CACHE_DIR, month)
            link.unlink(missing_ok=True)  # a link left dangling by an earlier run
            link.symlink_to(local.resolve())
    wanted = missing_months(CACHE_DIR, months)
    if not wanted:
        return
    if url not in _failed and not answers(url, CONNECT_TIMEOUT_S):
        _failed[url] = "does not answer"
    if url not in _failed:
        try:
            fetch(CACHE_DIR, "green", wanted, base_url=url, progress=False)
            return
        except FetchError as error:
            _failed[url] = str(error)
    pytest.skip(
        f"{SKIP_REASON}: green {' '.join(wanted)} not in {primary} and not fetched from {url} "
        f"({_failed[url]})"
    )


def skip_summary(skipped: int) -> str:
    """The one line that ends a run in which tests were skipped for lack of real data."""
    return (
        f"{skipped} test(s) skipped: {SKIP_REASON}. Put green_tripdata_YYYY-MM.parquet files in "
        f"a folder named by {DATA_DIR_VARIABLE} (now {data_dir()}), or set {DATA_URL_VARIABLE} "
        f"to a mirror of TLC's trip-data/ (tried {data_url()}); fetched months are kept in "
        f"{CACHE_DIR}"
    )
