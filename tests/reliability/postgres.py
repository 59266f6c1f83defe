"""A throwaway PostgreSQL server (Debian's `postgresql` package) on a loopback port, for the
MLflow backend store as docker-compose.yml runs it.

PostgreSQL refuses to run as root, and CI runs as root: then every server command runs as the
`postgres` user the package creates, in a folder of its own under the system temp dir (pytest's
tmp dirs are private to root). `fsync=off`: the data is thrown away with the test.
"""

from __future__ import annotations

import glob
import logging
import os
import shutil
import subprocess
import tempfile
from pathlib import Path

import pytest

from ridestream.kafka_broker import free_ports

log = logging.getLogger("tests.postgres")

USER = "mlflow"  # as in docker-compose.yml (POSTGRES_USER, POSTGRES_DB)
DATABASE = "mlflow"


def postgres_bin() -> Path | None:
    """The folder of PostgreSQL's server programs (initdb, pg_ctl), newest version first."""
    found = sorted(glob.glob("/usr/lib/postgresql/*/bin/initdb"), reverse=True)
    if found:
        return Path(found[0]).parent
    initdb = shutil.which("initdb")
    return Path(initdb).parent if initdb else None


class PostgresServer:
    """initdb, start and stop one server with trust auth on 127.0.0.1 only."""

    def __init__(self) -> None:
        bindir = postgres_bin()
        if bindir is None:
            pytest.skip("PostgreSQL is not installed (make install adds Debian's postgresql)")
        self.bindir = bindir
        (self.port,) = free_ports(1)
        self.folder = Path(tempfile.mkdtemp(prefix="ridestream-postgres-"))
        self.as_user: list[str] = []
        if os.geteuid() == 0:
            shutil.chown(self.folder, "postgres", "postgres")
            self.as_user = ["runuser", "-u", "postgres", "--"]

    @property
    def uri(self) -> str:
        """The SQLAlchemy URI of the database, as MLflow's --backend-store-uri takes it. The
        driver is named: SQLAlchemy 2.1 made psycopg 3 the default for `postgresql://`, and
        the driver installed (here and in the compose image) is psycopg2."""
        return f"postgresql+psycopg2://{USER}@127.0.0.1:{self.port}/{DATABASE}"

    @property
    def log_file(self) -> Path:
        return self.folder / "postgres.log"

    def start(self) -> None:
        """Create the cluster and the database, start the server, wait until it accepts."""
        data = self.folder / "data"
        self._run("initdb", "-D", str(data), "-U", USER, "--auth=trust", "-E", "UTF8", "--no-sync")
        options = f"-h 127.0.0.1 -p {self.port} -k {self.folder} -c fsync=off"
        self._run("pg_ctl", "-D", str(data), "-l", str(self.log_file), "-o", options, "-w", "start")
        self._run("createdb", "-h", "127.0.0.1", "-p", str(self.port), "-U", USER, DATABASE)
        log.info("PostgreSQL at %s (data in %s)", self.uri, data)

    def stop(self) -> None:
        """Stop the server (fast shutdown) and remove its folder."""
        self._run("pg_ctl", "-D", str(self.folder / "data"), "-m", "fast", "-w", "stop")
        shutil.rmtree(self.folder, ignore_errors=True)

    def query(self, sql: str, *params: object) -> object:
        """The first column of the first row of `sql` (psycopg2, as MLflow connects)."""
        import psycopg2

        libpq_uri = self.uri.replace("+psycopg2", "")
        with psycopg2.connect(libpq_uri) as connection, connection.cursor() as cursor:
            cursor.execute(sql, params)
            row = cursor.fetchone()
        return row[0] if row else None

    def _run(self, program: str, *args: str) -> None:
        command = [*self.as_user, str(self.bindir / program), *args]
        done = subprocess.run(command, capture_output=True, text=True, timeout=120, check=False)
        assert done.returncode == 0, f"{program} failed: {done.stderr or done.stdout}"
