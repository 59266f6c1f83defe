"""`evidently ui` on a workspace, opened in headless Chromium (Debian's package): the page as the
browser rendered it, and a screenshot of it."""

from __future__ import annotations

import json
import shutil
import subprocess
import sys
import urllib.error
import urllib.request
from pathlib import Path

import pytest

from ridestream.kafka_broker import free_ports
from tests.reliability.outage import wait_until

# As the report test runs Chromium; the UI is a single-page app that fetches its data after
# load, so the virtual time budget is longer.
CHROMIUM_FLAGS = [
    "--headless",
    "--no-sandbox",
    "--disable-gpu",
    "--no-first-run",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
    "--virtual-time-budget=20000",
    "--window-size=1600,1200",
]


class EvidentlyUi:
    """`evidently ui --workspace <folder>` on a free loopback port."""

    def __init__(self, workspace: Path, log_dir: Path) -> None:
        self.workspace = workspace
        self.log_file = log_dir / "evidently-ui.log"
        (self.port,) = free_ports(1)
        self.process: subprocess.Popen[bytes] | None = None

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def start(self) -> None:
        evidently = Path(sys.executable).with_name("evidently")
        command = [str(evidently), "ui", "--workspace", str(self.workspace)]
        command += ["--host", "127.0.0.1", "--port", str(self.port)]
        with self.log_file.open("wb") as log_file:
            self.process = subprocess.Popen(command, stdout=log_file, stderr=subprocess.STDOUT)
        wait_until(f"evidently ui at {self.url}", self._answers, timeout_s=90)

    def stop(self) -> None:
        if self.process is not None and self.process.poll() is None:
            self.process.terminate()
            self.process.wait(timeout=30)

    def project_id(self, name: str) -> str:
        """The id of the project called `name`, as the UI's API lists it."""
        with urllib.request.urlopen(f"{self.url}/api/projects/", timeout=10) as response:
            projects = json.load(response)
        ids = [project["id"] for project in projects if project["name"] == name]
        assert ids, f"no project {name!r} in {[p['name'] for p in projects]}"
        return str(ids[0])

    def _answers(self) -> bool:
        if self.process is not None and self.process.poll() is not None:
            output = self.log_file.read_text(errors="replace")[-2000:]
            raise AssertionError(f"evidently ui exited ({self.process.returncode}):\n{output}")
        try:
            with urllib.request.urlopen(self.url, timeout=2) as response:
                return bool(response.status == 200)
        except (urllib.error.URLError, OSError):
            return False


def render(url: str, screenshot: Path, profile: Path) -> str:
    """The DOM of `url` once Chromium ran its scripts; a screenshot of it saved to `screenshot`."""
    chromium = shutil.which("chromium") or shutil.which("chromium-browser")
    if chromium is None:
        pytest.skip("chromium is missing: `make install` installs Debian's chromium package")
    base = [chromium, *CHROMIUM_FLAGS, f"--user-data-dir={profile}"]
    dom = subprocess.run(
        [*base, "--dump-dom", url], capture_output=True, text=True, timeout=120, check=False
    ).stdout
    subprocess.run([*base, f"--screenshot={screenshot}", url], capture_output=True, timeout=120)
    return dom
