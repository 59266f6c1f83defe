"""`ridestream data fetch|list`: download into the data dir, skip what is there, list it."""

from __future__ import annotations

import shutil
import urllib.error
from pathlib import Path

import pytest

from producer.data_cli import list_files, main
from ridestream.tripdata_fetch import FetchError, fetch


@pytest.fixture
def mirror(tmp_path: Path, make_trip_file) -> str:
    """A file:// mirror of trip-data/ holding one small green month (no network needed)."""
    folder = tmp_path / "mirror"
    folder.mkdir()
    shutil.move(make_trip_file("green_tripdata_2021-01.parquet", rows=30), folder)
    return folder.as_uri()


def test_fetch_downloads_missing_months_and_skips_those_already_there(
    tmp_path: Path, mirror: str
) -> None:
    data_dir = tmp_path / "data"

    first = fetch(data_dir, "green", ["2021-01"], base_url=mirror, progress=False)
    second = fetch(data_dir, "green", ["2021-01"], base_url=mirror, progress=False)

    assert [(f.month, f.downloaded, f.rows) for f in first] == [("2021-01", True, 30)]
    assert [(f.month, f.downloaded) for f in second] == [("2021-01", False)]
    assert [p.name for p in data_dir.iterdir()] == ["green_tripdata_2021-01.parquet"]


def test_offline_fetch_fails_in_one_line_and_leaves_no_partial_file(tmp_path: Path) -> None:
    def offline(url: str, timeout: float) -> None:
        raise urllib.error.URLError("[Errno -2] Name or service not known")

    with pytest.raises(FetchError) as caught:
        fetch(tmp_path, "green", ["2021-01"], opener=offline, progress=False)

    assert str(caught.value) == (
        "cannot reach d37ci6vzurychx.cloudfront.net ([Errno -2] Name or service not known); "
        "are you offline?"
    )
    assert list(tmp_path.iterdir()) == []


def test_a_missing_month_on_the_mirror_is_a_one_line_error(
    tmp_path: Path, mirror: str, capsys: pytest.CaptureFixture[str]
) -> None:
    code = main(
        ["fetch", "--months", "2021-02", "--base-url", mirror, "--data-dir", str(tmp_path / "d")]
    )

    err = capsys.readouterr().err.strip().splitlines()
    assert code == 1
    assert len(err) == 1 and err[0].startswith("ridestream data fetch: cannot reach")


def test_a_downloaded_file_that_is_not_a_trip_file_is_removed(tmp_path: Path) -> None:
    folder = tmp_path / "mirror"
    folder.mkdir()
    (folder / "green_tripdata_2021-01.parquet").write_text("<html>Access denied</html>")

    with pytest.raises(FetchError, match="not a trip file"):
        fetch(tmp_path / "d", "green", ["2021-01"], base_url=folder.as_uri(), progress=False)

    assert list((tmp_path / "d").iterdir()) == []


def test_list_shows_months_rows_and_size(
    tmp_path: Path, mirror: str, capsys: pytest.CaptureFixture[str]
) -> None:
    data_dir = tmp_path / "data"
    fetch(data_dir, "green", ["2021-01"], base_url=mirror, progress=False)
    (data_dir / "notes.csv").write_text("a,b\n1,2\n")

    entries = list_files(data_dir)
    code = main(["list", "--data-dir", str(data_dir)])

    assert [(e["file"], e["color"], e["month"], e["rows"]) for e in entries] == [
        ("green_tripdata_2021-01.parquet", "green", "2021-01", 30),
        ("notes.csv", "-", "-", None),
    ]
    out = capsys.readouterr().out
    assert code == 0
    assert "green_tripdata_2021-01.parquet  green   2021-01" in out
    assert "not a trip file" in out


def test_bad_months_are_refused_in_one_line(capsys: pytest.CaptureFixture[str]) -> None:
    with pytest.raises(SystemExit) as exited:
        main(["fetch", "--months", "2021-1"])

    assert exited.value.code == 2
    assert capsys.readouterr().err.count("\n") == 1
