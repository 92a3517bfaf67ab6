"""A real PostgreSQL server for the tests, registered as a pytest plugin by tests/conftest.py.

`postgres` (session): one server for the whole session, PostgreSQL 16 from the pgserver wheel,
on a unix socket in a temporary directory, started on first use and stopped at the session's end.
`postgres_url` (per test): the URL of a fresh, empty database on it, e.g.

    async def test_something(postgres_url: str) -> None:
        store = open_voice_store(postgres_url)

Databases are not dropped after each test (that would cost more than the test): the whole data
directory goes with the server.
"""

from __future__ import annotations

import os
import shutil
import signal
import tempfile
import time
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import psycopg
import pytest


class PostgresInstance:
    """A running server: URLs of its databases, and new ones."""

    def __init__(self, server: Any):
        self._server = server

    def url(self, database: str = "postgres") -> str:
        return str(self._server.get_uri(database))

    def create_database(self) -> str:
        """A new empty database's URL."""
        name = f"test_{uuid.uuid4().hex[:16]}"
        with psycopg.connect(self.url(), autocommit=True) as connection:
            connection.execute(f"CREATE DATABASE {name}")
        return self.url(name)


def _import_pgserver(runtime: Path) -> Any:
    """pgserver picks its lock and socket directory from XDG_RUNTIME_DIR when first imported (and
    warns without one): point it at a private directory for this session."""
    runtime.chmod(0o700)
    previous = os.environ.get("XDG_RUNTIME_DIR")
    os.environ["XDG_RUNTIME_DIR"] = str(runtime)
    try:
        import pgserver
    finally:
        if previous is None:
            del os.environ["XDG_RUNTIME_DIR"]
        else:
            os.environ["XDG_RUNTIME_DIR"] = previous
    return pgserver


def _wait_gone(pid: int, seconds: float) -> bool:
    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline:
        try:
            os.kill(pid, 0)
        except ProcessLookupError:
            return True
        try:
            # The postmaster is our child (pg_ctl forks it): reap it, or it lingers as a zombie.
            os.waitpid(pid, os.WNOHANG)
        except ChildProcessError:
            pass
        time.sleep(0.05)
    return False


@pytest.fixture(scope="session")
def postgres(tmp_path_factory: pytest.TempPathFactory) -> Iterator[PostgresInstance]:
    # pgserver's lock file, which it also takes at exit: in pytest's temporary directory.
    pgserver = _import_pgserver(tmp_path_factory.mktemp("postgres-runtime"))
    # The data directory is not: every pytest session that starts makes pytest's directories
    # private again, which would lock the server's own user (as root: `pgserver`) out of it.
    root = Path(tempfile.mkdtemp(prefix="voxserve-postgres-"))
    try:
        server = pgserver.get_server(root / "data", cleanup_mode="stop")
        pid = server.get_pid()
        try:
            yield PostgresInstance(server)
        finally:
            server.cleanup()
            if not _wait_gone(pid, 10):
                os.kill(pid, signal.SIGKILL)
                _wait_gone(pid, 5)
    finally:
        shutil.rmtree(root, ignore_errors=True)


@pytest.fixture
def postgres_url(postgres: PostgresInstance) -> str:
    return postgres.create_database()
