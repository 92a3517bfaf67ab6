"""The voice store in an SQLite file: the embedded default, for one gateway replica (or several
processes on one host, which WAL mode and the write lock let share the file)."""

from __future__ import annotations

import asyncio
import builtins
import contextlib
import sqlite3
import threading
import time
from collections.abc import Callable, Iterator
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import TypeVar

from voxserve.common.logging import get_logger
from voxserve.gateway.voice_store import migrations
from voxserve.gateway.voice_store.errors import VoiceExists, VoiceQuotaReached
from voxserve.gateway.voice_store.record import COLUMNS, StoredVoice
from voxserve.gateway.voice_store.store import VoiceStore

T = TypeVar("T")
log = get_logger(__name__)

# Each wait for another connection's lock is this short, so that a cancelled call stops waiting
# soon; a write retries for up to WRITE_WAIT_SECONDS in all.
BUSY_SLICE_MS = 100
WRITE_WAIT_SECONDS = 10.0

_SELECT = f"SELECT {', '.join(COLUMNS)} FROM voices"
_INSERT = f"INSERT INTO voices ({', '.join(COLUMNS)}) VALUES ({', '.join('?' * len(COLUMNS))})"


class _Abandoned(Exception):
    """The caller was cancelled before the commit: the transaction was rolled back."""


class SqliteVoiceStore(VoiceStore):
    def __init__(self, path: Path):
        self.path = path.absolute()
        self.description = f"sqlite:{self.path}"
        self._executor: ThreadPoolExecutor | None = None
        self._connection: sqlite3.Connection | None = None

    async def open(self) -> None:
        if self._executor is not None:
            raise RuntimeError(f"voice store {self.description} is already open")
        # One thread owns the connection: calls run one at a time, in order.
        self._executor = ThreadPoolExecutor(max_workers=1, thread_name_prefix="voice-store")
        try:
            loop = asyncio.get_running_loop()
            self._connection = await loop.run_in_executor(self._executor, self._connect)
        except BaseException:
            self._executor.shutdown(wait=False)
            self._executor = None
            raise

    def _connect(self) -> sqlite3.Connection:
        self.path.parent.mkdir(parents=True, exist_ok=True)
        connection = sqlite3.connect(self.path, timeout=BUSY_SLICE_MS / 1000, isolation_level=None)
        try:
            mode = _retry_busy(lambda: connection.execute("PRAGMA journal_mode=WAL").fetchone()[0])
            if mode != "wal":
                log.warning("voice store: no WAL mode on this file system", store=self.description, mode=mode)
            with _write(connection, threading.Event()):
                connection.execute(migrations.MIGRATIONS_TABLE)
                applied = [v for (v,) in connection.execute("SELECT version FROM schema_migrations")]
                for migration in migrations.pending(applied, migrations.SQLITE, self.description):
                    for statement in migration.statements:
                        connection.execute(statement)
                    record = migrations.RECORD_MIGRATION.format(placeholder="?")
                    connection.execute(record, (migration.version,))
        except BaseException:
            connection.close()
            raise
        return connection

    async def close(self) -> None:
        executor, connection = self._executor, self._connection
        self._executor = self._connection = None
        if executor is None:
            return
        if connection is not None:
            await asyncio.get_running_loop().run_in_executor(executor, connection.close)
        executor.shutdown(wait=True)

    async def _call(self, work: Callable[[sqlite3.Connection, threading.Event], T]) -> T:
        """Run `work` on the connection's thread. If the caller is cancelled meanwhile, `work` sees
        its event set and rolls back at its next check, and the cancellation waits for that."""
        if self._executor is None or self._connection is None:
            raise RuntimeError(f"voice store {self.description} is not open")
        abandoned = threading.Event()
        job = asyncio.get_running_loop().run_in_executor(self._executor, work, self._connection, abandoned)
        try:
            return await asyncio.shield(job)
        except asyncio.CancelledError:
            abandoned.set()
            await asyncio.wait({job})
            if not job.cancelled():
                job.exception()  # retrieved: it is the cancellation that propagates
            raise

    async def add(self, voice: StoredVoice, *, max_per_owner: int) -> None:
        def work(connection: sqlite3.Connection, abandoned: threading.Event) -> None:
            with _write(connection, abandoned):
                _bump(connection)
                if _fetch(connection, voice.owner, voice.id) is not None:
                    raise VoiceExists(voice.owner, voice.id)
                (count,) = connection.execute(
                    "SELECT count(*) FROM voices WHERE owner = ?", (voice.owner,)
                ).fetchone()
                if count >= max_per_owner:
                    raise VoiceQuotaReached(max_per_owner)
                connection.execute(_INSERT, voice.row())

        await self._call(work)

    async def get(self, owner: str, voice_id: str) -> StoredVoice | None:
        return await self._call(lambda connection, _: _fetch(connection, owner, voice_id))

    async def remove(self, owner: str, voice_id: str) -> bool:
        def work(connection: sqlite3.Connection, abandoned: threading.Event) -> bool:
            with _write(connection, abandoned):
                removed = connection.execute(
                    "DELETE FROM voices WHERE owner = ? AND id = ?", (owner, voice_id)
                ).rowcount
                if removed:
                    _bump(connection)
            return removed > 0

        return await self._call(work)

    async def list(self, owner: str) -> builtins.list[StoredVoice]:
        def work(connection: sqlite3.Connection, _: threading.Event) -> builtins.list[StoredVoice]:
            rows = connection.execute(f"{_SELECT} WHERE owner = ? ORDER BY created_at, id", (owner,))
            return [StoredVoice.from_row(row) for row in rows]

        return await self._call(work)

    async def version(self) -> int:
        def work(connection: sqlite3.Connection, _: threading.Event) -> int:
            return int(connection.execute("SELECT version FROM voice_store_version").fetchone()[0])

        return await self._call(work)


def _fetch(connection: sqlite3.Connection, owner: str, voice_id: str) -> StoredVoice | None:
    row = connection.execute(f"{_SELECT} WHERE owner = ? AND id = ?", (owner, voice_id)).fetchone()
    return None if row is None else StoredVoice.from_row(row)


def _bump(connection: sqlite3.Connection) -> None:
    connection.execute("UPDATE voice_store_version SET version = version + 1")


def _busy(error: sqlite3.OperationalError) -> bool:
    return getattr(error, "sqlite_errorcode", None) in (sqlite3.SQLITE_BUSY, sqlite3.SQLITE_LOCKED)


def _retry_busy(statement: Callable[[], T], abandoned: threading.Event | None = None) -> T:
    """Run `statement`, retrying while another connection holds the lock (WRITE_WAIT_SECONDS)."""
    deadline = time.monotonic() + WRITE_WAIT_SECONDS
    while True:
        if abandoned is not None and abandoned.is_set():
            raise _Abandoned
        try:
            return statement()
        except sqlite3.OperationalError as error:
            if not _busy(error) or time.monotonic() > deadline:
                raise


@contextlib.contextmanager
def _write(connection: sqlite3.Connection, abandoned: threading.Event) -> Iterator[None]:
    """A write transaction: the file's write lock from BEGIN on, so checks and writes are one
    step for every process; rolled back on any error or when the caller was cancelled."""
    _retry_busy(lambda: connection.execute("BEGIN IMMEDIATE"), abandoned)
    try:
        yield
        if abandoned.is_set():
            raise _Abandoned
        connection.execute("COMMIT")
    except BaseException:
        if connection.in_transaction:
            connection.execute("ROLLBACK")
        raise
