"""`ridestream demo`'s fetch step against a local HTTP mirror: no internet, no broker.

The mirror serves copies of two real months from a temporary folder on 127.0.0.1; one
variant drops the connection halfway through every file.
"""

from __future__ import annotations

import shutil
import threading
from collections.abc import Iterator
from http.server import SimpleHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

import pytest

from ridestream import kafka_broker
from ridestream.demo import main
from ridestream.trips import count_rows, month_path
from tests import tripdata

pytestmark = pytest.mark.integration

MONTHS = ("2021-01", "2021-02")
# The demo's months on a one-month replay: training, validation, and the replayed month.
DEMO_ARGS = ["--fetch-only", "--train", MONTHS[0], "--val", MONTHS[1], "--months", MONTHS[1]]


class HalfThenHangUp(SimpleHTTPRequestHandler):
    """Announces the whole file, sends half of it, then closes the connection."""

    def do_GET(self) -> None:
        path = Path(self.translate_path(self.path))
        body = path.read_bytes()
        self.send_response(200)
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body[: len(body) // 2])
        self.wfile.flush()
        self.close_connection = True

    def log_message(self, format: str, *args: object) -> None:
        pass


class QuietHandler(SimpleHTTPRequestHandler):
    def log_message(self, format: str, *args: object) -> None:
        pass


@pytest.fixture(scope="module")
def mirror_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A trip-data/ folder with copies of two real green months."""
    source = tripdata.months_dir(*MONTHS)
    folder = tmp_path_factory.mktemp("mirror") / "trip-data"
    folder.mkdir()
    for month in MONTHS:
        shutil.copyfile(month_path(source, month), month_path(folder, month))
    return folder


def serve(folder: Path, handler: type[SimpleHTTPRequestHandler]) -> Iterator[str]:
    """Serve `folder` (a trip-data/) on a free loopback port; yields its URL."""

    class Handler(handler):  # type: ignore[valid-type,misc]
        def __init__(self, *args: object, **kwargs: object) -> None:
            super().__init__(*args, directory=str(folder.parent), **kwargs)  # type: ignore[arg-type]

    server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield f"http://127.0.0.1:{server.server_address[1]}/trip-data"
    finally:
        server.shutdown()
        server.server_close()


@pytest.fixture
def mirror(mirror_dir: Path) -> Iterator[str]:
    yield from serve(mirror_dir, QuietHandler)


@pytest.fixture
def broken_mirror(mirror_dir: Path) -> Iterator[str]:
    yield from serve(mirror_dir, HalfThenHangUp)


def test_demo_fetches_the_months_it_needs_into_an_empty_data_dir(
    tmp_path: Path, mirror: str, mirror_dir: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    data_dir = tmp_path / "data"

    code = main([*DEMO_ARGS, "--data-dir", str(data_dir), "--base-url", mirror])

    out = capsys.readouterr().out
    assert code == 0, out
    assert sorted(p.name for p in data_dir.iterdir()) == [
        month_path(data_dir, m).name for m in MONTHS
    ]
    for month in MONTHS:
        fetched, served = month_path(data_dir, month), month_path(mirror_dir, month)
        assert fetched.read_bytes() == served.read_bytes()
        line = next(line for line in out.splitlines() if f"green {month}: fetched" in line)
        assert f"{count_rows(served):,} rows" in line and "MB/s" in line


def test_demo_skips_months_already_there(
    tmp_path: Path, mirror: str, capsys: pytest.CaptureFixture[str]
) -> None:
    data_dir = tmp_path / "data"
    assert main([*DEMO_ARGS, "--data-dir", str(data_dir), "--base-url", mirror]) == 0
    capsys.readouterr()

    assert main([*DEMO_ARGS, "--data-dir", str(data_dir), "--base-url", mirror]) == 0
    assert "fetch" not in capsys.readouterr().out


def test_a_connection_dropped_halfway_leaves_no_file_and_one_line(
    tmp_path: Path, broken_mirror: str, capsys: pytest.CaptureFixture[str]
) -> None:
    data_dir = tmp_path / "data"

    code = main([*DEMO_ARGS, "--data-dir", str(data_dir), "--base-url", broken_mirror])

    err = capsys.readouterr().err.splitlines()
    assert code == 1
    assert len(err) == 1, err
    assert err[0].startswith("ridestream demo: no trip files for 2021-01 2021-02 in ")
    assert "connection closed after" in err[0] and "--base-url" in err[0]
    assert list(data_dir.iterdir()) == []


def test_offline_the_demo_fails_in_one_line_naming_months_url_and_remedy(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    (port,) = kafka_broker.free_ports(1)  # nothing listens there
    url = f"http://127.0.0.1:{port}/trip-data"

    code = main([*DEMO_ARGS, "--data-dir", str(tmp_path), "--base-url", url])

    err = capsys.readouterr().err.splitlines()
    assert code == 1
    assert len(err) == 1, err
    assert err[0].startswith("ridestream demo: no trip files for 2021-01 2021-02 in ")
    assert f"cannot reach 127.0.0.1:{port}" in err[0]
    assert "RIDESTREAM_DATA_DIR" in err[0] and "--base-url" in err[0]
    assert list(tmp_path.iterdir()) == []
