"""The broker process: start it detached, wait until it serves, report its status, stop it."""

from __future__ import annotations

import base64
import contextlib
import logging
import os
import signal
import socket
import subprocess
import sys
import tempfile
import time
import uuid
from collections.abc import Iterator, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from ridestream.kafka_broker.config import read_properties, server_properties
from ridestream.kafka_broker.runtime import (
    KAFKA_VERSION,
    BrokerError,
    find_java,
    first_error,
    jar_kafka_version,
    resolve_jars,
)
from ridestream.settings import BrokerSettings

log = logging.getLogger(__name__)

LOG4J_CONFIG = Path(__file__).with_name("log4j2.properties")
_STOP_TIMEOUT_S = 30.0


@dataclass(frozen=True)
class BrokerStatus:
    """What `ridestream broker status` reports about the local broker."""

    running: bool
    address: str
    kafka_version: str | None
    pid: int | None
    data_dir: Path
    log_file: Path


@dataclass(frozen=True)
class _Files:
    data_dir: Path

    @property
    def server_properties(self) -> Path:
        return self.data_dir / "server.properties"

    @property
    def logs(self) -> Path:
        return self.data_dir / "data"

    @property
    def server_log(self) -> Path:
        return self.data_dir / "server.log"

    @property
    def stdout(self) -> Path:
        return self.data_dir / "broker.out"

    @property
    def pid(self) -> Path:
        return self.data_dir / "broker.pid"

    @property
    def version(self) -> Path:
        return self.data_dir / "broker.version"


# Brokers this process launched: kept so they are reaped (a dead unreaped child still has a
# pid that answers os.kill(pid, 0)) and so no "subprocess still running" warning is raised.
_children: dict[int, subprocess.Popen[bytes]] = {}


def status(settings: BrokerSettings) -> BrokerStatus:
    """Whether the broker in `settings.data_dir` runs: its pid is alive and its port answers."""
    files = _Files(settings.data_dir.absolute())
    pid = _broker_pid(files)
    version = files.version.read_text().strip() if files.version.is_file() else None
    return BrokerStatus(
        running=pid is not None and _port_answers(settings.host, settings.port),
        address=settings.bootstrap,
        kafka_version=version,
        pid=pid,
        data_dir=files.data_dir,
        log_file=files.server_log,
    )


def start(
    settings: BrokerSettings,
    extra_properties: Mapping[str, str] | None = None,
    *,
    jar_dir: Path | None = None,
    client_config: Mapping[str, Any] | None = None,
    cluster: Sequence[BrokerSettings] = (),
    wait: bool = True,
) -> BrokerStatus:
    """Start the broker detached and wait until it serves; does nothing if it already runs.

    `extra_properties` go into server.properties (e.g. a SASL listener); `client_config` is the
    kafka-python config the readiness check connects with (default: PLAINTEXT on the port).
    `cluster`: the settings of every node when this is one node of a cluster (see
    `cluster_nodes`); `wait=False` returns once the JVM runs (a node of a new cluster cannot
    serve before a majority of the voters runs: `start_cluster` starts them all, then waits).
    """
    files = _Files(settings.data_dir.absolute())
    deadline = time.monotonic() + settings.startup_timeout_s
    pid = _broker_pid(files)
    if pid is not None:
        log.info("Apache Kafka already runs at %s (pid %d)", settings.bootstrap, pid)
        if wait:
            _wait_until_ready(pid, settings, files, client_config, deadline)
        return status(settings)
    files.pid.unlink(missing_ok=True)  # stale: that broker is gone
    properties = server_properties(settings, extra_properties, cluster)
    if _port_answers(settings.host, settings.port):
        raise BrokerError(
            f"{settings.bootstrap} is already in use by another process "
            f"(not the broker in {files.data_dir}): pick another RIDESTREAM_BROKER__PORT"
        )
    java = find_java()
    jars = resolve_jars(jar_dir)
    version = jar_kafka_version(jars) or KAFKA_VERSION
    files.data_dir.mkdir(parents=True, exist_ok=True)
    _check_same_controller(files, settings)
    files.server_properties.write_text(properties)
    classpath = str(jars / "*")
    if not (files.logs / "meta.properties").is_file():
        _format_storage(java, classpath, files, _cluster_id(cluster) if cluster else None)

    command = [
        java,
        f"-Xmx{settings.heap}",
        "-Djava.awt.headless=true",
        f"-Dlog4j2.configurationFile={LOG4J_CONFIG}",
        f"-Dkafka.logs.dir={files.data_dir}",
        "-cp",
        classpath,
        "kafka.Kafka",
        str(files.server_properties),
    ]
    log.info(
        "starting Apache Kafka %s at %s (data in %s)", version, settings.bootstrap, files.data_dir
    )
    with files.stdout.open("ab") as out:
        process = subprocess.Popen(
            command,
            stdin=subprocess.DEVNULL,
            stdout=out,
            stderr=subprocess.STDOUT,
            cwd=files.data_dir,
            start_new_session=True,  # outlives the caller and its Ctrl-C
        )
    _children[process.pid] = process
    files.pid.write_text(f"{process.pid}\n")
    files.version.write_text(f"{version}\n")
    if wait:
        wait_until_serving(settings, client_config, deadline=deadline)
    return status(settings)


def wait_until_serving(
    settings: BrokerSettings,
    client_config: Mapping[str, Any] | None = None,
    *,
    deadline: float | None = None,
) -> None:
    """Wait until the started broker serves; stop it and raise BrokerError if it dies or is
    late (by `deadline`, a `time.monotonic()`, default `settings.startup_timeout_s` from now)."""
    files = _Files(settings.data_dir.absolute())
    pid = _broker_pid(files)
    if pid is None:
        raise BrokerError(f"no Apache Kafka runs in {files.data_dir}:\n{_log_tail(files)}")
    deadline = deadline or time.monotonic() + settings.startup_timeout_s
    try:
        _wait_until_ready(pid, settings, files, client_config, deadline)
    except BrokerError:
        _terminate(pid, _STOP_TIMEOUT_S)
        files.pid.unlink(missing_ok=True)
        raise


def cluster_nodes(
    settings: BrokerSettings, ports: Sequence[tuple[int, int]] | None = None
) -> list[BrokerSettings]:
    """The settings of each node of the cluster `settings` describes (`settings.brokers`
    nodes; one node is `settings` itself). Node n (from 0) serves on `port + 2n` and
    `controller_port + 2n`, or on `ports[n]` (a port and a controller port), with its data in
    `data_dir/node-<n+1>`."""
    if settings.brokers == 1 and not ports:
        return [settings]
    count = len(ports) if ports else settings.brokers
    pairs = ports or [
        (settings.port + 2 * n, settings.controller_port + 2 * n) for n in range(count)
    ]
    return [
        settings.model_copy(
            update={
                "port": port,
                "controller_port": controller_port,
                "brokers": count,
                "data_dir": settings.data_dir / f"node-{n + 1}",
            }
        )
        for n, (port, controller_port) in enumerate(pairs)
    ]


def bootstrap_servers(nodes: Sequence[BrokerSettings]) -> str:
    """The clients' bootstrap servers of a cluster: every node, so any one may be down."""
    return ",".join(node.bootstrap for node in nodes)


def start_cluster(nodes: Sequence[BrokerSettings]) -> list[BrokerStatus]:
    """Start every node of a cluster (from `cluster_nodes`), then wait until each serves; nodes
    that already run are left alone. Each node's JVM is started before any is waited for: the
    controllers elect a leader only once a majority of them runs."""
    if len(nodes) == 1:
        return [start(nodes[0])]
    for node in nodes:
        start(node, cluster=nodes, wait=False)
    deadline = time.monotonic() + max(node.startup_timeout_s for node in nodes)
    try:
        for node in nodes:
            wait_until_serving(node, deadline=deadline)
    except BrokerError:
        stop_cluster(nodes)
        raise
    log.info("Apache Kafka cluster of %d nodes serves at %s", len(nodes), bootstrap_servers(nodes))
    return [status(node) for node in nodes]


def stop_cluster(nodes: Sequence[BrokerSettings], timeout_s: float = _STOP_TIMEOUT_S) -> int:
    """Stop every node of a cluster at once (SIGTERM to all, then wait); the number that ran.

    At once, not one by one: the last nodes of a cluster stopped in turn wait for a controller
    quorum that is already gone."""
    running = [(node, _broker_pid(_Files(node.data_dir.absolute()))) for node in nodes]
    pids = [pid for _, pid in running if pid is not None]
    for alive in pids:
        with contextlib.suppress(ProcessLookupError):
            os.kill(alive, signal.SIGTERM)
    for node, pid in running:
        if pid is not None:
            _terminate(pid, timeout_s)
        _Files(node.data_dir.absolute()).pid.unlink(missing_ok=True)
    return len(pids)


def kill(settings: BrokerSettings) -> int | None:
    """SIGKILL the broker (a crash: nothing flushed, no controlled shutdown); its pid, or None
    when it was not running."""
    files = _Files(settings.data_dir.absolute())
    pid = _broker_pid(files)
    if pid is not None:
        os.kill(pid, signal.SIGKILL)
        while _pid_alive(pid):
            time.sleep(0.05)
        log.info("killed Apache Kafka at %s (pid %d) with SIGKILL", settings.bootstrap, pid)
    return pid


def _cluster_id(cluster: Sequence[BrokerSettings]) -> str:
    """The id every node of a cluster is formatted with, kept beside the nodes' data dirs."""
    path = cluster[0].data_dir.absolute().parent / "cluster.id"
    if not path.is_file():
        path.parent.mkdir(parents=True, exist_ok=True)
        # Kafka's Uuid in its base64 form; one that starts with "-" would read as an option.
        cluster_id = "-"
        while cluster_id.startswith("-"):
            cluster_id = base64.urlsafe_b64encode(uuid.uuid4().bytes).decode().rstrip("=")
        path.write_text(cluster_id + "\n")
    return path.read_text().strip()


def free_ports(count: int) -> list[int]:
    """`count` distinct TCP ports on 127.0.0.1 that were free a moment ago."""
    with contextlib.ExitStack() as stack:
        sockets = [stack.enter_context(socket.socket()) for _ in range(count)]
        for sock in sockets:  # all bound at once, so the ports differ
            sock.bind(("127.0.0.1", 0))
        return [int(sock.getsockname()[1]) for sock in sockets]


@contextlib.contextmanager
def temporary_broker(bootstrap: str | None = None) -> Iterator[str]:
    """Yield `bootstrap` when given, else a local Apache Kafka on free loopback ports with its
    data in a temporary folder, stopped and removed afterwards (benchmarks, throwaway runs)."""
    if bootstrap:
        yield bootstrap
        return
    with tempfile.TemporaryDirectory(prefix="ridestream-kafka-") as folder:
        port, controller_port = free_ports(2)
        settings = BrokerSettings(
            port=port, controller_port=controller_port, data_dir=Path(folder) / "kafka"
        )
        start(settings)
        try:
            yield settings.bootstrap
        finally:
            stop(settings)


def stop(settings: BrokerSettings, timeout_s: float = _STOP_TIMEOUT_S) -> bool:
    """Stop the broker (SIGTERM, SIGKILL after `timeout_s`); False if none was running."""
    files = _Files(settings.data_dir.absolute())
    pid = _broker_pid(files)
    if pid is not None:
        log.info("stopping Apache Kafka at %s (pid %d)", settings.bootstrap, pid)
        _terminate(pid, timeout_s)
    files.pid.unlink(missing_ok=True)
    return pid is not None


def _format_storage(
    java: str, classpath: str, files: _Files, cluster_id: str | None = None
) -> None:
    """Format the KRaft metadata and log dir once: a node alone with a new cluster id, a node
    of a cluster with the cluster's id."""
    storage_tool = [java, "-cp", classpath, "kafka.tools.StorageTool"]
    config = str(files.server_properties)
    if cluster_id is None:
        cluster_id = _run_tool("kafka-storage random-uuid", [*storage_tool, "random-uuid"])
        # --standalone makes this node the only controller voter (matches
        # controller.quorum.bootstrap.servers).
        format_command = [*storage_tool, "format", "--standalone", "-t", cluster_id, "-c", config]
    else:  # the voters are static (controller.quorum.voters)
        format_command = [*storage_tool, "format", "-t", cluster_id, "-c", config]
    # -g tolerates an already formatted dir.
    _run_tool("kafka-storage format", [*format_command, "-g"])


def _run_tool(name: str, command: list[str]) -> str:
    """Run a Kafka command-line tool; its last line of output, or BrokerError with its error."""
    done = subprocess.run(command, capture_output=True, text=True, timeout=120, check=False)
    output = done.stdout.strip().splitlines()
    if done.returncode != 0 or not output:
        raise BrokerError(f"{name} failed: {first_error(done.stderr + done.stdout)}")
    return output[-1]


def _check_same_controller(files: _Files, settings: BrokerSettings) -> None:
    """Refuse a new controller port on formatted data: the voter set holds the old one."""
    if not (files.logs / "meta.properties").is_file() or not files.server_properties.is_file():
        return
    key = "controller.quorum.bootstrap.servers"
    formatted = read_properties(files.server_properties).get(key)
    wanted = f"{settings.host}:{settings.controller_port}"
    if formatted is not None and formatted != wanted:
        raise BrokerError(
            f"{files.data_dir} was formatted for controller {formatted}, not {wanted}: "
            "use the old controller port or delete that directory"
        )


def _wait_until_ready(
    pid: int,
    settings: BrokerSettings,
    files: _Files,
    client_config: Mapping[str, Any] | None,
    deadline: float,
) -> None:
    """Return once the broker answers a metadata request; BrokerError if it dies or is late."""
    config = dict(client_config or {"bootstrap_servers": [settings.bootstrap]})
    while time.monotonic() < deadline:
        if not _pid_alive(pid):
            raise BrokerError(
                f"Apache Kafka exited during startup; last lines of its logs:\n{_log_tail(files)}"
            )
        if _port_answers(settings.host, settings.port) and _broker_serves(config):
            return
        time.sleep(0.2)
    raise BrokerError(
        f"Apache Kafka did not answer at {settings.bootstrap} within "
        f"{settings.startup_timeout_s:.0f}s; last lines of its logs:\n{_log_tail(files)}"
    )


def _broker_serves(client_config: Mapping[str, Any]) -> bool:
    """True when the broker answers a metadata request and lists itself (it has registered)."""
    from kafka import KafkaAdminClient  # only here: importing this module stays cheap

    try:
        admin = KafkaAdminClient(
            **{"bootstrap_timeout_ms": 3_000, "request_timeout_ms": 5_000, **client_config}
        )
    except Exception:  # any bootstrap failure just means "not yet"
        return False
    try:
        return bool(admin.describe_cluster().get("brokers"))
    except Exception:
        return False
    finally:
        admin.close()


def _port_answers(host: str, port: int) -> bool:
    try:
        with socket.create_connection((host, port), timeout=1.0):
            return True
    except OSError:
        return False


def _broker_pid(files: _Files) -> int | None:
    """The pid in the pid file if that process is alive and is a Kafka broker."""
    try:
        pid = int(files.pid.read_text().strip())
    except (OSError, ValueError):
        return None
    # A broker this process launched is known; its /proc cmdline may not show java yet.
    return pid if _pid_alive(pid) and (pid in _children or _is_kafka(pid)) else None


def _pid_alive(pid: int) -> bool:
    child = _children.get(pid)
    if child is not None:
        if child.poll() is None:
            return True
        del _children[pid]
        return False
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True  # exists, owned by someone else
    return True


def _is_kafka(pid: int) -> bool:
    """Guard against pid reuse: the process must run kafka.Kafka (checked where /proc exists)."""
    cmdline = Path(f"/proc/{pid}/cmdline")
    if not cmdline.parent.is_dir():
        return sys.platform != "linux"
    try:
        return b"kafka.Kafka" in cmdline.read_bytes().split(b"\0")
    except OSError:
        return False


def _terminate(pid: int, timeout_s: float) -> None:
    """SIGTERM (Kafka shuts down cleanly on it), then SIGKILL after `timeout_s`."""
    for sig, wait_s in ((signal.SIGTERM, timeout_s), (signal.SIGKILL, 10.0)):
        with contextlib.suppress(ProcessLookupError):
            os.kill(pid, sig)
        deadline = time.monotonic() + wait_s
        while time.monotonic() < deadline:
            if not _pid_alive(pid):
                return
            time.sleep(0.1)
        if sig == signal.SIGTERM:
            log.warning("Apache Kafka (pid %d) ignored SIGTERM for %.0fs: killing it", pid, wait_s)
    raise BrokerError(f"Apache Kafka (pid {pid}) did not exit even after SIGKILL")


def _log_tail(files: _Files, lines: int = 12) -> str:
    """The last messages of the broker's logs, without Java stack frames (they bury the cause)."""
    tails = []
    for path in (files.stdout, files.server_log):
        text = path.read_text(errors="replace").splitlines() if path.is_file() else []
        messages = [line for line in text if line.strip() and not line.startswith(("\t", " "))]
        if messages:
            tails.append(f"--- {path}\n" + "\n".join(messages[-lines:]))
    return "\n".join(tails) or "(no log written)"
