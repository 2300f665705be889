"""A real PostgreSQL server for tests: Debian's binaries, a data folder of its own, a free loopback port.

As root, PostgreSQL refuses to run, so its commands run as the ``postgres`` user (``runuser``); the server is
stopped by ``pg_ctl stop`` on its own data folder, so only the process started here ends. ``fsync`` is off:
the tests prove the journal's queries and locks, not the disk's durability.
"""

from __future__ import annotations

import os
import shutil
import socket
import subprocess
import tempfile
import uuid
from glob import glob
from pathlib import Path


def free_port() -> int:
    """A loopback port free now (the server binds it a moment later; nothing else here picks ports at random)."""
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return int(probe.getsockname()[1])


def binaries() -> Path | None:
    """The folder of ``initdb`` and ``pg_ctl``: Debian's newest PostgreSQL, else the PATH's; None without them."""
    found = sorted(glob("/usr/lib/postgresql/*/bin/initdb"), key=lambda p: int(Path(p).parts[4]))
    if found:
        return Path(found[-1]).parent
    initdb = shutil.which("initdb")
    return Path(initdb).resolve().parent if initdb else None


class PostgresServer:
    """``with PostgresServer() as pg:`` a running server; ``pg.database()`` a new empty database's URL."""

    def __init__(self) -> None:
        bin_dir = binaries()
        if bin_dir is None:
            raise RuntimeError("PostgreSQL is not installed (.ci/run installs Debian's postgresql package)")
        self._bin = bin_dir
        self._root = Path(tempfile.mkdtemp(prefix="wan-pg-"))
        self._data = self._root / "data"
        self.port = free_port()
        self._as_postgres = os.geteuid() == 0

    def _run(self, *command: str) -> None:
        prefix = ["runuser", "-u", "postgres", "--"] if self._as_postgres else []
        subprocess.run([*prefix, *command], check=True, capture_output=True, timeout=60)

    def __enter__(self) -> PostgresServer:
        if self._as_postgres:
            shutil.chown(self._root, "postgres", "postgres")
        self._run(str(self._bin / "initdb"), "-D", str(self._data), "-U", "postgres", "-A", "trust", "-E", "UTF8")
        log = self._root / "server.log"
        pg_ctl = [str(self._bin / "pg_ctl"), "-D", str(self._data), "-l", str(log), "-w", "-t", "30"]
        for attempt in range(3):  # a port free when probed may be taken before the server binds it (xdist workers)
            options = f"-p {self.port} -k {self._data} -c listen_addresses=127.0.0.1 -c fsync=off"
            try:
                self._run(*pg_ctl, "-o", options, "start")
            except subprocess.CalledProcessError:
                if attempt == 2 or "Address already in use" not in log.read_text(errors="replace"):
                    raise
                self.port = free_port()
            else:
                break
        return self

    def __exit__(self, *exc: object) -> None:
        try:
            self._run(str(self._bin / "pg_ctl"), "-D", str(self._data), "-m", "immediate", "-w", "stop")
        finally:
            shutil.rmtree(self._root, ignore_errors=True)

    def url(self, database: str = "postgres") -> str:
        return f"postgresql://postgres@127.0.0.1:{self.port}/{database}"

    def database(self) -> str:
        """A new, empty database's URL."""
        import psycopg
        from psycopg import sql

        name = f"t_{uuid.uuid4().hex[:12]}"
        with psycopg.connect(self.url(), autocommit=True) as admin:
            admin.execute(sql.SQL("CREATE DATABASE {}").format(sql.Identifier(name)))
        return self.url(name)
