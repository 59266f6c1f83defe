"""docker-compose.yml, the Prometheus config and the Grafana dashboard agree with the code.

No Docker engine is needed: the compose file is parsed with PyYAML and checked against the
settings classes and the metrics module. `test_compose_config_is_valid` also runs a real
`docker compose config` (or `docker-compose config`, or the binary named by
RIDESTREAM_TEST_COMPOSE); `make install` installs Debian's docker-compose when no client is
there, so CI runs it too.
"""

from __future__ import annotations

import copy
import importlib
import json
import os
import re
import shutil
import subprocess
import typing
from pathlib import Path
from typing import Any

import pytest
import yaml
from prometheus_client import CollectorRegistry
from pydantic import BaseModel

from ridestream.metrics import Metrics
from ridestream.settings import Settings

REPO = Path(__file__).resolve().parents[3]
COMPOSE_FILE = REPO / "docker-compose.yml"
PROMETHEUS_FILE = REPO / "deploy" / "prometheus" / "prometheus.yml"
GRAFANA_DIR = REPO / "deploy" / "grafana"
DASHBOARD_FILE = GRAFANA_DIR / "dashboards" / "ridestream.json"
DATASOURCE_FILE = GRAFANA_DIR / "provisioning" / "datasources" / "prometheus.yml"

ENV_PREFIX = "RIDESTREAM_"
# The settings class each compose service reads (`module:Class`); others read the shared one.
SETTINGS_OF_SERVICE = {
    "predictor": "predictor.settings:PredictorSettings",
    "monitor": "monitor.settings:MonitorSettings",
    "retrainer": "retrainer.settings:RetrainerSettings",
    "replay": "producer.settings:ProducerSettings",
}
METRIC_NAME = re.compile(r"\bridestream_[a-z0-9_]+\b")


@pytest.fixture(scope="module")
def compose() -> dict[str, Any]:
    return yaml.safe_load(COMPOSE_FILE.read_text())


@pytest.fixture(scope="module")
def services(compose: dict[str, Any]) -> dict[str, dict[str, Any]]:
    return compose["services"]


def one_shot(service: dict[str, Any]) -> bool:
    return str(service.get("restart", "no")) == "no"


def environment(service: dict[str, Any]) -> dict[str, str]:
    env = service.get("environment") or {}
    if isinstance(env, list):  # the `- KEY=value` form
        return dict(item.partition("=")[::2] for item in env)
    return {key: str(value) for key, value in env.items()}


def settings_class(service_name: str) -> type[BaseModel]:
    target = SETTINGS_OF_SERVICE.get(service_name)
    if target is None:
        return Settings
    module_name, _, class_name = target.partition(":")
    try:
        return getattr(importlib.import_module(module_name), class_name)
    except (ModuleNotFoundError, AttributeError):
        return Settings  # the service has no settings class yet: shared fields only


def names_a_field(model: type[BaseModel], path: list[str]) -> bool:
    """Whether `a__b__c` (split) is a field of `model`, nested through BaseModel fields."""
    head, *rest = path
    fields = {name.lower(): info for name, info in model.model_fields.items()}
    if head not in fields:
        return False
    if not rest:
        return True
    candidates = [fields[head].annotation, *typing.get_args(fields[head].annotation)]
    nested = [c for c in candidates if isinstance(c, type) and issubclass(c, BaseModel)]
    return any(names_a_field(c, rest) for c in nested)


def settings_path(variable: str) -> list[str]:
    return variable[len(ENV_PREFIX) :].lower().split("__")


# -- the compose file ------------------------------------------------------------------


def test_every_long_running_service_has_a_healthcheck(services: dict[str, Any]) -> None:
    missing = [
        name for name, svc in services.items() if not one_shot(svc) and "healthcheck" not in svc
    ]
    assert missing == []


def test_every_dependency_waits_on_a_condition_the_target_can_meet(
    services: dict[str, Any],
) -> None:
    problems = []
    for name, svc in services.items():
        depends_on = svc.get("depends_on") or {}
        if isinstance(depends_on, list):
            problems.append(f"{name}: depends_on without conditions")
            continue
        for target, spec in depends_on.items():
            condition = (spec or {}).get("condition")
            if condition == "service_healthy" and "healthcheck" not in services[target]:
                problems.append(f"{name} waits for {target} healthy, which has no healthcheck")
            elif condition == "service_completed_successfully" and not one_shot(services[target]):
                problems.append(f"{name} waits for {target} to complete, which restarts")
            elif condition not in ("service_healthy", "service_completed_successfully"):
                problems.append(f"{name} -> {target}: condition {condition!r}")
    assert problems == []


def test_services_that_need_the_loop_wait_for_kafka_mlflow_and_the_first_champion(
    services: dict[str, Any],
) -> None:
    for name in ("predictor", "monitor", "retrainer"):
        depends_on = services[name]["depends_on"]
        assert depends_on["kafka"]["condition"] == "service_healthy", name
        assert depends_on["mlflow"]["condition"] == "service_healthy", name
        assert depends_on["trainer"]["condition"] == "service_completed_successfully", name


def test_every_host_port_is_bound_to_loopback(services: dict[str, Any]) -> None:
    exposed = []
    for name, svc in services.items():
        for port in svc.get("ports") or []:
            host_ip = port.get("host_ip") if isinstance(port, dict) else str(port).split(":")[0]
            if host_ip != "127.0.0.1" or (isinstance(port, str) and port.count(":") != 2):
                exposed.append(f"{name}: {port}")
    assert exposed == []


def test_every_image_has_a_pinned_tag(services: dict[str, Any]) -> None:
    unpinned = []
    for name, svc in services.items():
        image = svc.get("image")
        if image is None:
            unpinned.append(f"{name}: no image name")
            continue
        repository, _, tag = image.rpartition(":")
        if not repository or "/" in tag or tag in ("", "latest"):
            unpinned.append(f"{name}: {image}")
    assert unpinned == []


def test_the_replay_runs_only_with_its_profile(services: dict[str, Any]) -> None:
    assert services["replay"]["profiles"] == ["replay"]
    assert one_shot(services["replay"])
    assert [name for name, svc in services.items() if svc.get("profiles")] == ["replay"]


def test_ridestream_variables_name_real_settings_fields(services: dict[str, Any]) -> None:
    unknown = []
    for name, svc in services.items():
        model = settings_class(name)
        for variable in environment(svc):
            if not variable.startswith(ENV_PREFIX):
                continue
            if not names_a_field(model, settings_path(variable)):
                unknown.append(f"{name}: {variable} is not a field of {model.__name__}")
    assert unknown == []


def test_bind_mounted_config_files_exist(services: dict[str, Any]) -> None:
    missing = []
    for name, svc in services.items():
        for volume in svc.get("volumes") or []:
            source = volume.split(":")[0] if isinstance(volume, str) else volume.get("source", "")
            if source.startswith("./deploy/") and not (REPO / source).exists():
                missing.append(f"{name}: {source}")
    assert missing == []


def test_prometheus_scrapes_every_service_that_serves_metrics(services: dict[str, Any]) -> None:
    config = yaml.safe_load(PROMETHEUS_FILE.read_text())
    targets = {
        target
        for job in config["scrape_configs"]
        for static in job.get("static_configs", [])
        for target in static["targets"]
    }
    serving = {
        f"{name}:{environment(svc)['RIDESTREAM_METRICS_PORT']}"
        for name, svc in services.items()
        if not one_shot(svc) and "RIDESTREAM_METRICS_PORT" in environment(svc)
    }
    assert serving == {"predictor:9100", "monitor:9100", "retrainer:9100"}
    assert serving <= targets


def _compose_command() -> list[str] | None:
    given = os.environ.get("RIDESTREAM_TEST_COMPOSE")
    if given:
        return given.split()
    docker = shutil.which("docker")
    if docker:
        probe = subprocess.run(
            [docker, "compose", "version"], capture_output=True, text=True, timeout=30
        )
        if probe.returncode == 0:
            return [docker, "compose"]
    legacy = shutil.which("docker-compose")
    return [legacy] if legacy else None


def compose_config(compose_file: Path) -> subprocess.CompletedProcess[str]:
    """`<compose> -f FILE --profile replay config -q`, run by a real compose client."""
    command = _compose_command()
    assert command, (
        "no compose client: `make install` installs Debian's docker-compose "
        "(or set RIDESTREAM_TEST_COMPOSE to one)"
    )
    return subprocess.run(
        [*command, "-f", str(compose_file), "--profile", "replay", "config", "-q"],
        capture_output=True,
        text=True,
        timeout=120,
        cwd=compose_file.parent,
    )


def test_compose_config_is_valid() -> None:
    result = compose_config(COMPOSE_FILE)
    assert result.returncode == 0, result.stderr


def test_compose_config_rejects_a_dependency_on_a_missing_service(
    compose: dict[str, Any], tmp_path: Path
) -> None:
    # The check above can fail: the same file with one dangling depends_on is refused.
    broken = copy.deepcopy(compose)
    broken["services"]["predictor"]["depends_on"] = {
        "no-such-service": {"condition": "service_started"}
    }
    broken_file = tmp_path / "docker-compose.yml"
    broken_file.write_text(yaml.safe_dump(broken))
    for source in ("Dockerfile", "deploy"):  # build contexts and mounts the file names
        (tmp_path / source).symlink_to(REPO / source)
    result = compose_config(broken_file)
    assert result.returncode != 0
    assert "no-such-service" in result.stderr + result.stdout


# -- the Grafana dashboard -------------------------------------------------------------


def exposed_metric_names() -> dict[str, set[str]]:
    """Each metric family of ridestream.metrics and the sample names it exposes."""
    registry = CollectorRegistry()
    Metrics(registry)
    suffixes = {"counter": ("_total",), "histogram": ("_bucket", "_count", "_sum")}
    return {
        family.name: {family.name + s for s in suffixes.get(family.type, ("",))}
        for family in registry.collect()
    }


def dashboard_exprs() -> list[str]:
    dashboard = json.loads(DASHBOARD_FILE.read_text())
    return [
        target["expr"]
        for panel in dashboard["panels"]
        for target in panel.get("targets", [])
        if "expr" in target
    ]


def test_dashboard_queries_only_metrics_that_exist() -> None:
    defined = set().union(*exposed_metric_names().values())
    used = {name for expr in dashboard_exprs() for name in METRIC_NAME.findall(expr)}
    assert used, "the dashboard queries no ridestream metric"
    assert used - defined == set()


def test_dashboard_shows_every_metric() -> None:
    used = {name for expr in dashboard_exprs() for name in METRIC_NAME.findall(expr)}
    unshown = [family for family, names in exposed_metric_names().items() if not names & used]
    assert unshown == []


def test_dashboard_panels_use_the_provisioned_datasource() -> None:
    provisioned = {ds["uid"] for ds in yaml.safe_load(DATASOURCE_FILE.read_text())["datasources"]}
    dashboard = json.loads(DASHBOARD_FILE.read_text())
    used = {panel["datasource"]["uid"] for panel in dashboard["panels"] if panel["type"] != "row"}
    assert used and used <= provisioned
