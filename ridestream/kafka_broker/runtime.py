"""What the local broker runs on: Java 17+ and the Apache Kafka jars, resolved from Maven
Central through `pom.xml` beside this file and cached in `~/.cache/ridestream/kafka-<version>/`.
"""

from __future__ import annotations

import hashlib
import logging
import os
import re
import shutil
import subprocess
import tempfile
from pathlib import Path

log = logging.getLogger(__name__)

# Must equal <kafka.version> in pom.xml (tests/unit/test_kafka_broker.py checks).
KAFKA_VERSION = "4.1.2"
MIN_JAVA_MAJOR = 17  # Apache Kafka 4.x brokers need Java 17+

POM = Path(__file__).with_name("pom.xml")
_COPY_DEPENDENCIES = "org.apache.maven.plugins:maven-dependency-plugin:3.8.1:copy-dependencies"
_RESOLVED_MARKER = ".resolved"  # holds the pom digest: a changed pom resolves again
_KAFKA_JAR = re.compile(r"^kafka_2\.\d+-(\d+\.\d+\.\d+(?:-[\w.]+)?)\.jar$")
_MAVEN_TIMEOUT_S = 900.0


class BrokerError(RuntimeError):
    """The local broker cannot be set up, started or stopped; the message says what to do."""


def default_jar_dir(version: str = KAFKA_VERSION) -> Path:
    """Where the broker jars are cached: `$XDG_CACHE_HOME/ridestream/kafka-<version>/`."""
    cache_home = Path(os.environ.get("XDG_CACHE_HOME") or Path.home() / ".cache")
    return cache_home / "ridestream" / f"kafka-{version}"


def jar_kafka_version(jar_dir: Path) -> str | None:
    """The Kafka version of the `kafka_2.13-<version>.jar` in `jar_dir`, or None when absent."""
    if not jar_dir.is_dir():
        return None
    for jar in sorted(jar_dir.iterdir()):
        match = _KAFKA_JAR.match(jar.name)
        if match:
            return match.group(1)
    return None


def resolve_jars(jar_dir: Path | None = None) -> Path:
    """Copy the broker's runtime jars from Maven into `jar_dir` unless they are already there."""
    jar_dir = jar_dir or default_jar_dir()
    digest = hashlib.sha256(POM.read_bytes()).hexdigest()[:16]
    if _is_resolved(jar_dir, digest):
        return jar_dir
    mvn = shutil.which("mvn")
    if mvn is None:
        raise BrokerError(
            "mvn not found: install Apache Maven (e.g. `apt install maven`) to fetch the "
            f"Apache Kafka {KAFKA_VERSION} jars from Maven Central"
        )
    find_java()  # Maven runs on Java, and the jars are useless without it
    log.info("resolving Apache Kafka %s jars into %s (first run only)", KAFKA_VERSION, jar_dir)
    jar_dir.parent.mkdir(parents=True, exist_ok=True)
    # Resolve into a sibling temp dir and rename, so an interrupted run leaves no half cache.
    with tempfile.TemporaryDirectory(prefix=f".{jar_dir.name}-", dir=jar_dir.parent) as tmp:
        pom = Path(tmp) / "pom.xml"
        shutil.copyfile(POM, pom)  # Maven writes beside the pom; the package may be read-only
        staged = Path(tmp) / "jars"
        command = [mvn, "-q", "-B", "-f", str(pom), _COPY_DEPENDENCIES]
        command += ["-DincludeScope=runtime", f"-DoutputDirectory={staged}"]
        try:
            done = subprocess.run(
                command, capture_output=True, text=True, timeout=_MAVEN_TIMEOUT_S, check=False
            )
        except subprocess.TimeoutExpired as exc:
            raise BrokerError(f"mvn took over {_MAVEN_TIMEOUT_S:.0f}s fetching jars") from exc
        if done.returncode != 0 or jar_kafka_version(staged) is None:
            raise BrokerError(
                f"mvn could not fetch the Apache Kafka {KAFKA_VERSION} jars: "
                f"{first_error(done.stdout + done.stderr)}"
            )
        (staged / _RESOLVED_MARKER).write_text(digest + "\n")
        if jar_dir.exists():
            shutil.rmtree(jar_dir)
        try:
            staged.rename(jar_dir)
        except OSError:
            if not _is_resolved(jar_dir, digest):  # else a concurrent run got there first
                raise
    return jar_dir


def _is_resolved(jar_dir: Path, digest: str) -> bool:
    marker = jar_dir / _RESOLVED_MARKER
    return marker.is_file() and marker.read_text().strip() == digest


def first_error(output: str) -> str:
    """The line of a tool's output that says what went wrong (Maven's first [ERROR], else its
    first line)."""
    lines = [line.strip() for line in output.splitlines() if line.strip()]
    errors = [line for line in lines if line.startswith("[ERROR]")]
    return (errors or lines or ["no output"])[0]


# --- java -----------------------------------------------------------------------------------


def find_java() -> str:
    """The `java` executable (JAVA_HOME first, then PATH); BrokerError unless it is 17+."""
    java_home = os.environ.get("JAVA_HOME")
    java = str(Path(java_home) / "bin" / "java") if java_home else None
    if java is None or not os.access(java, os.X_OK):
        java = shutil.which("java")
    if java is None:
        raise BrokerError(
            f"java not found: install a Java {MIN_JAVA_MAJOR}+ runtime "
            "(e.g. `apt install openjdk-17-jre-headless`) to run Apache Kafka"
        )
    done = subprocess.run(
        [java, "-version"], capture_output=True, text=True, timeout=60, check=False
    )
    major = java_major_version(done.stderr + done.stdout)
    if major is None or major < MIN_JAVA_MAJOR:
        raise BrokerError(
            f"{java} is Java {major or 'of unknown version'}: Apache Kafka {KAFKA_VERSION} "
            f"needs Java {MIN_JAVA_MAJOR}+ (set JAVA_HOME or put a newer java on PATH)"
        )
    return java


def java_major_version(version_output: str) -> int | None:
    """The major version in `java -version` output: 8 for "1.8.0_382", 17 for "17.0.15"."""
    match = re.search(r'version "(\d+)(?:\.(\d+))?', version_output)
    if match is None:
        return None
    major = int(match.group(1))
    return int(match.group(2) or 0) if major == 1 else major
