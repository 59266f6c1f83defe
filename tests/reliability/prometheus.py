"""A throwaway Prometheus (Debian's `prometheus` package) scraping services on loopback, and
its HTTP API: range queries and the Grafana dashboard's expressions ready to send."""

from __future__ import annotations

import json
import shutil
import subprocess
import urllib.error
import urllib.parse
import urllib.request
from pathlib import Path
from typing import Any

import pytest

from ridestream.kafka_broker import free_ports
from tests.reliability.outage import wait_until

DASHBOARD = Path(__file__).parents[2] / "deploy" / "grafana" / "dashboards" / "ridestream.json"
# Scraped every second, so a run of a minute or two has enough samples for every rate().
SCRAPE_INTERVAL_S = 1
# What Grafana puts for its own variables: $__rate_interval is max(4 x scrape interval,
# interval + scrape interval); 15 s covers several scrapes here and is valid on 2.x and 3.x.
GRAFANA_VARIABLES = {"$__rate_interval": "15s", "$__interval": "2s", "$__range": "5m"}


def dashboard_queries(path: Path = DASHBOARD) -> list[tuple[str, str]]:
    """(panel title, PromQL) of every target of the dashboard, Grafana variables replaced."""
    dashboard = json.loads(path.read_text())
    queries = []
    for panel in dashboard["panels"]:
        for target in panel.get("targets", []):
            expr = target["expr"]
            for variable, value in GRAFANA_VARIABLES.items():
                expr = expr.replace(variable, value)
            assert "$" not in expr, f"{panel['title']}: a Grafana variable is left in {expr!r}"
            queries.append((panel["title"], expr))
    return queries


class PrometheusServer:
    """`prometheus` on a free loopback port, scraping `targets` (host:port) every second."""

    def __init__(self, folder: Path, targets: list[str]) -> None:
        binary = shutil.which("prometheus")
        if binary is None:
            pytest.skip("prometheus is not installed (make install adds Debian's prometheus)")
        self.binary = binary
        self.folder = folder
        (self.port,) = free_ports(1)
        self.targets = targets
        self.process: subprocess.Popen[bytes] | None = None

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def start(self) -> None:
        """Write the scrape config, start Prometheus and wait until it is ready."""
        self.folder.mkdir(parents=True, exist_ok=True)
        config = self.folder / "prometheus.yml"
        config.write_text(
            json.dumps(  # JSON is YAML
                {
                    "global": {"scrape_interval": f"{SCRAPE_INTERVAL_S}s"},
                    "scrape_configs": [
                        {"job_name": "ridestream", "static_configs": [{"targets": self.targets}]}
                    ],
                }
            )
        )
        with (self.folder / "prometheus.log").open("wb") as log_file:
            self.process = subprocess.Popen(
                [
                    self.binary,
                    f"--config.file={config}",
                    f"--storage.tsdb.path={self.folder / 'data'}",
                    f"--web.listen-address=127.0.0.1:{self.port}",
                ],
                stdout=log_file,
                stderr=subprocess.STDOUT,
            )
        wait_until(f"prometheus at {self.url}", self._ready, timeout_s=60)

    def stop(self) -> None:
        if self.process is not None and self.process.poll() is None:
            self.process.terminate()
            self.process.wait(timeout=30)

    def query_range(self, expr: str, start: float, end: float, step_s: float = 2) -> list[Any]:
        """The series of `expr` between two Unix times (the `result` of /api/v1/query_range)."""
        query = urllib.parse.urlencode({"query": expr, "start": start, "end": end, "step": step_s})
        with urllib.request.urlopen(f"{self.url}/api/v1/query_range?{query}", timeout=30) as r:
            answer = json.load(r)
        assert answer["status"] == "success", answer
        return list(answer["data"]["result"])

    def targets_up(self) -> int:
        """How many scrape targets answered their last scrape."""
        series = self._instant("up")
        return sum(1 for s in series if s["value"][1] == "1")

    def _instant(self, expr: str) -> list[Any]:
        query = urllib.parse.urlencode({"query": expr})
        with urllib.request.urlopen(f"{self.url}/api/v1/query?{query}", timeout=30) as r:
            return list(json.load(r)["data"]["result"])

    def _ready(self) -> bool:
        if self.process is not None and self.process.poll() is not None:
            log = (self.folder / "prometheus.log").read_text(errors="replace")
            raise AssertionError(f"prometheus exited ({self.process.returncode}):\n{log[-2000:]}")
        try:
            with urllib.request.urlopen(f"{self.url}/-/ready", timeout=2) as response:
                return bool(response.status == 200)
        except (urllib.error.URLError, OSError):
            return False


def moved(series: dict[str, Any]) -> bool:
    """True when a series of a range query was not flat zero: a value other than 0, or two
    different values (a counter that only exists at zero did not move)."""
    values = {float(value) for _, value in series["values"] if value not in ("NaN", "+Inf")}
    return len(values) > 1 or any(v != 0 for v in values)
