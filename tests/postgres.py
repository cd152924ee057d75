"""A real, throw-away PostgreSQL server for tests: initdb in a temporary directory, listening on
127.0.0.1 at a free port with its socket in that directory, stopped and deleted afterwards.

Root may not run postgres: as root the server runs as the `postgres` user (Debian's package
creates it). Without the binaries (`initdb`, `pg_ctl`) the test is skipped with a message, except
under CI (`CI=true`), where it fails: .ci/run installs Debian's `postgresql`."""

from __future__ import annotations

import glob
import os
import shutil
import socket
import subprocess
import tempfile
from pathlib import Path

import pytest

from tests.conftest import in_ci


def _bindir() -> Path | None:
    found = sorted(glob.glob("/usr/lib/postgresql/*/bin/initdb"), reverse=True)
    if found:
        return Path(found[0]).parent
    initdb = shutil.which("initdb")
    return Path(initdb).parent if initdb else None


def require_bindir() -> Path:
    """The PostgreSQL bin directory, or skip (fail under CI) naming what is missing."""
    bindir = _bindir()
    if bindir is None or not (bindir / "pg_ctl").exists():
        why = "PostgreSQL server binaries not found (apt-get install postgresql)"
        if in_ci():
            pytest.fail(f"{why}; CI=true, so this is a failure", pytrace=False)
        pytest.skip(why)
    return bindir


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


class PostgresServer:
    """One server; `url(db)` for psycopg, `stop()`/`start()` to take it away under load."""

    def __init__(self, bindir: Path) -> None:
        self.bindir = bindir
        self.root = Path(tempfile.mkdtemp(prefix="tholos-pg-"))
        self.data = self.root / "data"
        self.port = _free_port()
        self.as_postgres = os.geteuid() == 0
        if self.as_postgres:
            shutil.chown(self.root, "postgres", "postgres")
        self._run("initdb", "-D", str(self.data), "-A", "trust", "-U", "postgres", "--no-sync")
        self._databases = 0

    def _run(self, tool: str, *args: str) -> None:
        cmd = [str(self.bindir / tool), *args]
        if self.as_postgres:
            cmd = ["runuser", "-u", "postgres", "--", *cmd]
        done = subprocess.run(cmd, capture_output=True, text=True, timeout=120, check=False)
        if done.returncode != 0:
            raise RuntimeError(f"{tool} failed ({done.returncode}): {done.stderr[-2000:]}")

    def start(self) -> None:
        opts = (
            f"-k {self.root} -c listen_addresses=127.0.0.1 -p {self.port} -c fsync=off "
            "-c max_connections=50"
        )
        log = str(self.root / "server.log")
        self._run("pg_ctl", "-D", str(self.data), "-l", log, "-o", opts, "-w", "-t", "120", "start")

    def stop(self) -> None:
        self._run("pg_ctl", "-D", str(self.data), "-m", "fast", "-w", "-t", "120", "stop")

    def url(self, database: str = "postgres") -> str:
        return f"postgresql://postgres@127.0.0.1:{self.port}/{database}"

    def new_database(self) -> str:
        """A fresh, empty database; its URL."""
        import psycopg

        self._databases += 1
        name = f"t{os.getpid()}_{self._databases}"
        with psycopg.connect(self.url(), autocommit=True) as conn:
            conn.execute(f"CREATE DATABASE {name}")
        return self.url(name)

    def remove(self) -> None:
        try:
            self.stop()
        except RuntimeError:  # stopped already
            pass
        finally:
            shutil.rmtree(self.root, ignore_errors=True)
