"""The broker goes away for 30 s in the middle of a stream, and comes back.

A broker of the test's own (stopped and started again on the same ports and data dir), the
predictor as a real process (`python -m predictor`) and `ridestream replay` of real green
rides (`python -m producer`) across the outage, then more rides produced after the broker is
back. The predictor either rides the outage out or exits non-zero and is restarted by the test,
as an orchestrator would; the replay either delivers every ride or says it did not (exit 1).
Afterwards: every ride on rides.requested is one the replay reported sent (none silently
lost), and every one of them has a prediction on rides.predictions. What each process did is
logged (and asserted: nothing lost, whichever way it went).
"""

from __future__ import annotations

import logging
import re
import time
from collections import Counter
from pathlib import Path

import pytest

from ridestream import kafka_broker
from ridestream.events import DurationPredicted, decode, encode
from ridestream.settings import BrokerSettings, KafkaSettings, MlflowSettings
from ridestream.topics import Topics
from tests import tripdata
from tests.reliability.outage import Service, register_champion, service_env, wait_until
from tests.reliability.topic_io import produce_raw, read_topic
from tests.synthetic import ride

pytestmark = [pytest.mark.integration, pytest.mark.reliability, pytest.mark.faults]
log = logging.getLogger("tests.broker_outage")

OUTAGE_S = 30.0
# Half a day of real rides (~1,400) replayed at 1,500x: about 30 s of sending, so the replay
# is mid-stream when the broker stops a few seconds in, and sends into the outage.
REPLAY = ("--start", "2021-01-12T06:00", "--end", "2021-01-12T18:00", "--speed", "1500")
RIDES_AFTER = 300
# An orchestrator does not restart a crashing service in a tight loop either.
RESTART_DELAY_S = 2.0


def ride_ids(records: list) -> list[str]:
    return [record.key.decode() for record in records]


class Supervisor:
    """Restarts the predictor whenever it exited (any code), after a short delay."""

    def __init__(self, predictor: Service) -> None:
        self.predictor = predictor
        self.restarts = 0
        self._exited_at: float | None = None

    def tend(self) -> None:
        """One look: restart the predictor if it has been down for `RESTART_DELAY_S`."""
        if self.predictor.exited() is None:
            return
        now = time.monotonic()
        if self._exited_at is None:
            self._exited_at = now
        if now - self._exited_at >= RESTART_DELAY_S:
            self._exited_at = None
            self.restarts += 1
            self.predictor.start()


@pytest.mark.parametrize("client", ["kafka-python", "confluent"])
def test_broker_outage_of_30_s_loses_no_ride_and_no_prediction(
    client: str,
    local_broker_settings: BrokerSettings,
    topic_prefix: str,
    group_id: str,
    tmp_path: Path,
) -> None:
    green_2021_01 = tripdata.month_file("2021-01")
    started = time.monotonic()
    broker = local_broker_settings
    kafka_broker.start(broker)
    kafka = KafkaSettings(bootstrap_servers=broker.bootstrap, client=client)
    topics = Topics(topic_prefix)
    name = "ride-duration-" + topic_prefix.strip(".")
    store = tmp_path / "mlflow"
    mlflow = MlflowSettings(
        tracking_uri=f"sqlite:///{store}/mlflow.db",
        artifact_location=str(store / "artifacts"),
        experiment=name,
        model_name=name,
    )
    champion = register_champion(mlflow)
    env = service_env(
        kafka, topic_prefix, mlflow, PREDICTOR__GROUP_ID=group_id, PREDICTOR__LOG_INTERVAL_S="5"
    )
    predictor = Service("predictor", "predictor", env, tmp_path)
    replay = Service("replay", "producer", env, tmp_path, ("--files", str(green_2021_01), *REPLAY))
    supervisor = Supervisor(predictor)

    def predictions() -> list:
        return read_topic(kafka, topics.rides_predictions, expect=10**9, timeout_s=1.0)

    try:
        predictor.start(ready_line=r"predicting .* as group")
        replay.start()
        wait_until("the first predictions", lambda: bool(predictions()), timeout_s=90)

        # -- the outage ----------------------------------------------------------------------
        replay_running_at_stop = replay.exited() is None
        stop_clock = time.monotonic()
        kafka_broker.stop(broker)
        down_at = time.monotonic()
        while time.monotonic() - down_at < OUTAGE_S:
            supervisor.tend()
            time.sleep(0.5)
        restart_clock = time.monotonic()
        kafka_broker.start(broker)  # same ports, same data dir
        log.info(
            "broker: stopped in %.1f s, down %.1f s, serving again %.1f s after its start",
            down_at - stop_clock,
            time.monotonic() - down_at,
            time.monotonic() - restart_clock,
        )

        # -- after: more rides, the replay finishes, every ride gets its prediction ----------
        after = [ride(n, f"after-{group_id}") for n in range(RIDES_AFTER)]
        produce_raw(kafka, topics.rides_requested, [(r.key.encode(), encode(r)) for r in after])

        def replay_done() -> bool:
            supervisor.tend()
            return replay.exited() is not None

        wait_until("the replay ends", replay_done, timeout_s=180)
        summary = replay.log_file.read_text(errors="replace")
        assert replay.exit_codes == [0], f"the replay reported lost sends:\n{summary[-2000:]}"
        sent = re.search(rf"{re.escape(topics.rides_requested)} ([\d,]+)", summary)
        assert sent, summary[-2000:]
        replayed = int(sent.group(1).replace(",", ""))

        requested = read_topic(
            kafka, topics.rides_requested, expect=replayed + RIDES_AFTER, timeout_s=60
        )
        requested_ids = Counter(ride_ids(requested))
        predicted: Counter[str] = Counter()

        def all_predicted() -> bool:
            supervisor.tend()
            predicted.clear()
            predicted.update(ride_ids(predictions()))
            return set(predicted) >= set(requested_ids)

        wait_until("a prediction for every ride", all_predicted, timeout_s=120)
        final = [decode(DurationPredicted, r.value) for r in predictions()]
        rode_out = predictor.runs == 1 and predictor.exited() is None
    finally:
        predictor.stop()
        replay.stop()
        kafka_broker.stop(broker)

    # The replay sent every ride it reported (nothing lost silently, nothing doubled), and the
    # test's own rides after the outage are there too.
    assert sum(requested_ids.values()) == replayed + RIDES_AFTER
    assert len(requested_ids) == replayed + RIDES_AFTER
    assert {r.ride_id for r in after} <= set(requested_ids)
    # Every ride has a prediction; duplicates (at-least-once redelivery) are counted.
    assert set(predicted) == set(requested_ids)
    duplicates = sum(predicted.values()) - len(predicted)
    assert {p.model_version for p in final} == {champion}
    # The predictor either rode it out, or each of its runs but the last exited non-zero.
    assert rode_out or all(code != 0 for code in predictor.exit_codes[: predictor.runs - 1])
    log.info(
        "broker outage of %.0f s: predictor %s (runs %d, exit codes %s), replay %s and exited "
        "%s; %d rides checked (%d replayed + %d after), every one predicted, %d duplicate "
        "prediction(s); test %.0f s",
        OUTAGE_S,
        "rode it out" if rode_out else "exited and was restarted",
        predictor.runs,
        predictor.exit_codes,
        "was mid-stream at the stop" if replay_running_at_stop else "had already finished",
        replay.exit_codes,
        len(requested_ids),
        replayed,
        RIDES_AFTER,
        duplicates,
        time.monotonic() - started,
    )
