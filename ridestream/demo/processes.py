"""The processes the demo starts (services, the replay), stopped together."""

from __future__ import annotations

import signal
import subprocess
import sys
import time
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import IO


class DemoError(RuntimeError):
    """The demo cannot go on (the message says what to do)."""


@dataclass
class Processes:
    """The service processes the demo started, stopped together."""

    running: dict[str, subprocess.Popen[bytes]] = field(default_factory=dict)
    logs: list[IO[bytes]] = field(default_factory=list)

    def start(self, name: str, args: Sequence[str], env: dict[str, str], log_dir: Path) -> None:
        log = (log_dir / f"{name}.log").open("wb")
        self.logs.append(log)
        self.running[name] = subprocess.Popen(
            [sys.executable, *args], env=env, stdout=log, stderr=subprocess.STDOUT
        )

    def check(self) -> None:
        """Raise if a service died: the demo cannot go on without it."""
        for name, process in self.running.items():
            if process.poll() is not None:
                raise DemoError(f"{name} exited with code {process.returncode}: see its log")

    def stop_all(self, timeout_s: float = 20.0) -> None:
        """SIGTERM every service (they finish their batch and commit), then SIGKILL stragglers."""
        for process in self.running.values():
            if process.poll() is None:
                process.send_signal(signal.SIGTERM)
        deadline = time.monotonic() + timeout_s
        for process in self.running.values():
            try:
                process.wait(timeout=max(0.1, deadline - time.monotonic()))
            except subprocess.TimeoutExpired:
                process.kill()
                process.wait()
        for log in self.logs:
            log.close()
