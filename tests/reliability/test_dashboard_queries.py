"""The Grafana dashboard's queries, evaluated against real data: Prometheus (Debian's package)
scrapes the predictor, the monitor and the retrainer (real processes) while a day and a half of
real green rides is replayed through the loop; then the Evidently UI on the monitor's workspace
is opened in headless Chromium (screenshot `evidently-ui.png` in the test's tmp dir, named in
the log) and must show the run's windows.

The champion is trained on synthetic rides, so the real ones are a quality drift: the monitor
alerts, the retrainer promotes a challenger. A second alert, given by hand once the promotion is
done, makes the retrainer train on the same rides again: a challenger that is no better is
rejected. One poison ride goes to the dead letters; a burst of synthetic rides makes the
predictor lag. Then every PromQL expression of
deploy/grafana/dashboards/ridestream.json (Grafana's variables substituted) is sent to
Prometheus' HTTP API over the run and must return a series that moved: a renamed metric, a
lost label or a panel left at zero fails here.
"""

from __future__ import annotations

import logging
import time
from pathlib import Path

import pytest

from monitor.snapshots import PROJECT_NAME
from ridestream.events import DriftWindowClosed, decode
from ridestream.kafka_broker import free_ports
from ridestream.settings import KafkaSettings
from ridestream.stream.admin import create_topics
from ridestream.topics import Topics
from tests import tripdata
from tests.reliability.crash import champion_store
from tests.reliability.evidently_ui import EvidentlyUi, render
from tests.reliability.outage import (
    RETRAIN_QUICKLY,
    Service,
    quality_alert,
    service_env,
    wait_until,
)
from tests.reliability.prometheus import (
    SCRAPE_INTERVAL_S,
    PrometheusServer,
    dashboard_queries,
    moved,
)
from tests.reliability.test_registry_outage import produce
from tests.reliability.topic_io import produce_raw, read_topic
from tests.synthetic import ride

pytestmark = [pytest.mark.integration, pytest.mark.reliability, pytest.mark.faults]
log = logging.getLogger("tests.dashboard_queries")

# A day and a half of January (~4,000 rides) at 20,000x: a few seconds of sending.
LAG_BURST, LAG_BATCH = 40_000, 100
REPLAY = ("--start", "2021-01-12T00:00", "--end", "2021-01-13T12:00", "--speed", "20000")


def counter(prometheus: PrometheusServer, metric: str, since: float) -> float:
    """The latest value of `sum(metric)` (0 before the first sample)."""
    series = prometheus.query_range(f"sum({metric})", since, time.time())
    return float(series[0]["values"][-1][1]) if series else 0.0


def test_every_dashboard_query_returns_a_series_that_moved_during_a_loop_run(
    kafka_settings: KafkaSettings, topic_prefix: str, group_id: str, tmp_path: Path
) -> None:
    green_2021_01 = tripdata.month_file("2021-01")
    queries = dashboard_queries()
    kafka = kafka_settings
    topics = Topics(topic_prefix)
    mlflow = champion_store(tmp_path / "mlflow", "ride-duration-" + topic_prefix.strip("."))
    champion = "1"  # the store's first version
    workspace = tmp_path / "workspace"
    create_topics(kafka, topics.all_with_dead_letters())
    ports = dict(zip(("predictor", "monitor", "retrainer"), free_ports(3), strict=True))
    options = {
        # Small batches: the burst below then takes the predictor hundreds of batches, seconds
        # in which every scrape sees it lag (at 5,000 a batch it is gone between two scrapes).
        "predictor": {
            "PREDICTOR__GROUP_ID": f"{group_id}-p",
            "PREDICTOR__ALIAS_CHECK_S": "1",
            "PREDICTOR__MAX_POLL_RECORDS": str(LAG_BATCH),
        },
        "monitor": {
            "MONITOR__GROUP_ID": f"{group_id}-m",
            "MONITOR__WINDOW": "6h",
            "MONITOR__LATENESS": "12h",
            "MONITOR__IDLE_PARTITION_S": "5",
            "MONITOR__MIN_WINDOW_RIDES": "50",
            "MONITOR__REPORTS_DIR": str(tmp_path / "reports"),
            "MONITOR__WORKSPACE": str(workspace),
        },
        "retrainer": {"RETRAINER__GROUP_ID": f"{group_id}-r", **RETRAIN_QUICKLY},
    }
    services = {
        service: Service(
            service,
            service,
            {
                **service_env(kafka, topic_prefix, mlflow, **extra),
                "RIDESTREAM_METRICS_PORT": str(ports[service]),
            },
            tmp_path,
        )
        for service, extra in options.items()
    }
    env = service_env(kafka, topic_prefix, mlflow)
    replay = Service("replay", "producer", env, tmp_path, ("--files", str(green_2021_01), *REPLAY))
    prometheus = PrometheusServer(
        tmp_path / "prometheus", [f"127.0.0.1:{port}" for port in ports.values()]
    )
    started = time.time()
    try:
        prometheus.start()
        for service in services.values():
            service.start()
        services["predictor"].wait_for_log(r"predicting .* as group", timeout_s=120)
        services["retrainer"].wait_for_log(r"retrainer ready", timeout_s=120)
        wait_until("Prometheus scrapes all three", lambda: prometheus.targets_up() == 3, 60)
        produce_raw(kafka, topics.rides_requested, [(b"poison", b"not json")])
        # A burst the predictor needs many batches for, so that scrapes see it lag behind (the
        # replay alone is predicted as fast as it arrives: its lag stays at zero).
        produce(kafka, topics.rides_requested, [ride(n, "burst") for n in range(LAG_BURST)])
        replay.start()
        wait_until("the replay ends", lambda: replay.exited() is not None, timeout_s=180)
        assert replay.exit_codes == [0], replay.logs()[-2000:]

        promotions = "ridestream_model_promotions_total"
        wait_until(
            "a promotion after the monitor's alert",
            lambda: counter(prometheus, promotions, started) >= 1,
            timeout_s=180,
        )
        alert = quality_alert(f"alert-{group_id}", champion, "w-by-hand")
        produce(kafka, topics.drift_alerts, [alert])
        wait_until(
            "a rejected challenger after the second alert",
            lambda: counter(prometheus, "ridestream_model_rejections_total", started) >= 1,
            timeout_s=180,
        )
        time.sleep(3 * SCRAPE_INTERVAL_S)  # a few more scrapes after the last change
        ended = time.time()
        results = {expr: prometheus.query_range(expr, started, ended) for _, expr in queries}
        for service in services.values():
            assert service.exited() is None, service.logs()[-3000:]
    finally:
        replay.stop()
        for service in services.values():
            service.stop()
        prometheus.stop()

    # -- the Evidently UI on the monitor's workspace, in a browser ---------------------------
    windows = [
        decode(DriftWindowClosed, record.value).window_id
        for record in read_topic(kafka, topics.drift_windows, expect=10**9, timeout_s=2.0)
    ]
    ui = EvidentlyUi(workspace, tmp_path)
    screenshot = tmp_path / "evidently-ui.png"
    try:
        ui.start()
        page = f"{ui.url}/projects/{ui.project_id(PROJECT_NAME)}/reports"
        dom = render(page, screenshot, tmp_path / "chromium-profile")
    finally:
        ui.stop()
    shown = [window for window in windows if window in dom]
    log.info(
        "evidently ui: %s shows %d of the run's %d windows; screenshot %s",
        page,
        len(shown),
        len(windows),
        screenshot,
    )

    empty = [f"{title}: {expr}" for title, expr in queries if not results[expr]]
    flat = [
        f"{title}: {expr}"
        for title, expr in queries
        if results[expr] and not any(moved(s) for s in results[expr])
    ]
    log.info(
        "%d dashboard queries over %.0f s of scrapes: %d empty, %d flat at zero; series per "
        "query: %s",
        len(queries),
        ended - started,
        len(empty),
        len(flat),
        {expr: len(series) for expr, series in results.items()},
    )
    assert not empty, "queries without a series (a renamed metric?):\n" + "\n".join(empty)
    assert not flat, "queries whose series never moved:\n" + "\n".join(flat)
    assert windows, "the monitor closed no window"
    assert shown, f"the Evidently UI page shows none of the windows {windows}"
    assert screenshot.is_file() and screenshot.stat().st_size > 10_000
