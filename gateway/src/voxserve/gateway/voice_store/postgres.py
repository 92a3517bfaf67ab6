"""The voice store in PostgreSQL: for several gateway replicas. Writes NOTIFY the other replicas,
whose caches drop their entries at once."""

from __future__ import annotations

import asyncio
import builtins
from collections.abc import AsyncIterator, Callable
from contextlib import asynccontextmanager

import psycopg
from psycopg.conninfo import conninfo_to_dict
from psycopg_pool import AsyncConnectionPool

from voxserve.common.logging import get_logger
from voxserve.gateway.voice_store import migrations
from voxserve.gateway.voice_store.errors import VoiceExists, VoiceQuotaReached
from voxserve.gateway.voice_store.record import COLUMNS, StoredVoice
from voxserve.gateway.voice_store.store import VoiceStore

log = get_logger(__name__)

CHANNEL = "voxserve_voices"
"""The NOTIFY channel; each payload is the store's new version."""
LISTENER_NAME = "voxserve-gateway-voice-listener"
"""application_name of the LISTEN connection (pg_stat_activity shows it)."""
# pg_advisory_xact_lock key held while migrating, so that replicas opening at once take turns.
MIGRATION_LOCK = 0x766F_7863_7374
CONNECT_SECONDS = 10.0
"""How long a call waits for a pooled connection, and `open` for the server."""
RELISTEN_SECONDS = (0.1, 5.0)
"""The first and the longest wait before the listener reconnects."""

_SELECT = f"SELECT {', '.join(COLUMNS)} FROM voices"
_INSERT = f"INSERT INTO voices ({', '.join(COLUMNS)}) VALUES ({', '.join(['%s'] * len(COLUMNS))})"
_BUMP = "UPDATE voice_store_version SET version = version + 1 RETURNING version"


def describe(url: str) -> str:
    """`url` without its password (nor user or options): postgresql://host[:port]/db."""
    parts = conninfo_to_dict(url)
    host = parts.get("host") or "localhost"
    port = f":{parts['port']}" if parts.get("port") else ""
    return f"postgresql://{host}{port}/{parts.get('dbname') or ''}"


class PostgresVoiceStore(VoiceStore):
    def __init__(self, url: str, *, pool_size: int = 8):
        self._url = url
        self._pool_size = pool_size
        self.description = describe(url)
        self._pool: AsyncConnectionPool | None = None

    async def open(self) -> None:
        if self._pool is not None:
            raise RuntimeError(f"voice store {self.description} is already open")
        # Migrate on a connection of its own first: a refused connection raises its own error.
        async with await psycopg.AsyncConnection.connect(
            self._url, autocommit=True, connect_timeout=int(CONNECT_SECONDS)
        ) as connection:
            await self._migrate(connection)
        pool: AsyncConnectionPool = AsyncConnectionPool(
            self._url,
            min_size=1,
            max_size=self._pool_size,
            open=False,
            kwargs={"autocommit": True},
            # A connection the server dropped (restart, failover) is replaced before use.
            check=AsyncConnectionPool.check_connection,
            timeout=CONNECT_SECONDS,
            name="voice-store",
        )
        try:
            await pool.open(wait=True, timeout=CONNECT_SECONDS)
        except BaseException:
            await pool.close()
            raise
        self._pool = pool

    async def _migrate(self, connection: psycopg.AsyncConnection) -> None:
        async with connection.transaction():
            await connection.execute("SELECT pg_advisory_xact_lock(%s)", (MIGRATION_LOCK,))
            await connection.execute(migrations.MIGRATIONS_TABLE)
            cursor = await connection.execute("SELECT version FROM schema_migrations")
            applied = [v for (v,) in await cursor.fetchall()]
            for migration in migrations.pending(applied, migrations.POSTGRES, self.description):
                for statement in migration.statements:
                    await connection.execute(statement)
                await connection.execute(
                    migrations.RECORD_MIGRATION.format(placeholder="%s"), (migration.version,)
                )

    async def close(self) -> None:
        pool, self._pool = self._pool, None
        if pool is not None:
            await pool.close()

    @asynccontextmanager
    async def _connection(self) -> AsyncIterator[psycopg.AsyncConnection]:
        """A pooled connection in autocommit mode: each statement on its own is atomic."""
        if self._pool is None:
            raise RuntimeError(f"voice store {self.description} is not open")
        async with self._pool.connection() as connection:
            yield connection

    @asynccontextmanager
    async def _transaction(self) -> AsyncIterator[psycopg.AsyncConnection]:
        async with self._connection() as connection, connection.transaction():
            yield connection

    async def add(self, voice: StoredVoice, *, max_per_owner: int) -> None:
        async with self._transaction() as connection:
            # The counter's row lock, held to the commit, puts concurrent writers in line, so the
            # count below cannot miss another replica's insert.
            version = await _bump(connection)
            if await _fetch(connection, voice.owner, voice.id) is not None:
                raise VoiceExists(voice.owner, voice.id)
            cursor = await connection.execute("SELECT count(*) FROM voices WHERE owner = %s", (voice.owner,))
            (count,) = await cursor.fetchone() or (0,)
            if count >= max_per_owner:
                raise VoiceQuotaReached(max_per_owner)
            try:
                await connection.execute(_INSERT, voice.row())
            except psycopg.errors.UniqueViolation:
                raise VoiceExists(voice.owner, voice.id) from None
            await _notify(connection, version)

    async def get(self, owner: str, voice_id: str) -> StoredVoice | None:
        async with self._connection() as connection:
            return await _fetch(connection, owner, voice_id)

    async def remove(self, owner: str, voice_id: str) -> bool:
        async with self._transaction() as connection:
            cursor = await connection.execute(
                "DELETE FROM voices WHERE owner = %s AND id = %s", (owner, voice_id)
            )
            if cursor.rowcount == 0:
                return False
            await _notify(connection, await _bump(connection))
            return True

    async def list(self, owner: str) -> builtins.list[StoredVoice]:
        async with self._connection() as connection:
            cursor = await connection.execute(f"{_SELECT} WHERE owner = %s ORDER BY created_at, id", (owner,))
            return [StoredVoice.from_row(row) for row in await cursor.fetchall()]

    async def version(self) -> int:
        async with self._connection() as connection:
            cursor = await connection.execute("SELECT version FROM voice_store_version")
            row = await cursor.fetchone()
            assert row is not None, "the migration inserts the counter's row"
            return int(row[0])

    async def watch(self, changed: Callable[[], None]) -> None:
        """LISTEN on a connection of its own; after a lost connection, reconnect and call
        `changed` (notifications sent meanwhile are lost)."""
        wait = RELISTEN_SECONDS[0]
        while True:
            try:
                async with await psycopg.AsyncConnection.connect(
                    self._url,
                    autocommit=True,
                    application_name=LISTENER_NAME,
                    connect_timeout=int(CONNECT_SECONDS),
                ) as connection:
                    await connection.execute(f"LISTEN {CHANNEL}")
                    changed()
                    wait = RELISTEN_SECONDS[0]
                    async for _ in connection.notifies():
                        changed()
            except psycopg.Error as error:
                log.warning(
                    "voice store: listener lost, reconnecting", store=self.description, error=str(error)
                )
            await asyncio.sleep(wait)
            wait = min(wait * 2, RELISTEN_SECONDS[1])


async def _fetch(connection: psycopg.AsyncConnection, owner: str, voice_id: str) -> StoredVoice | None:
    cursor = await connection.execute(f"{_SELECT} WHERE owner = %s AND id = %s", (owner, voice_id))
    row = await cursor.fetchone()
    return None if row is None else StoredVoice.from_row(row)


async def _bump(connection: psycopg.AsyncConnection) -> int:
    cursor = await connection.execute(_BUMP)
    row = await cursor.fetchone()
    assert row is not None, "the migration inserts the counter's row"
    return int(row[0])


async def _notify(connection: psycopg.AsyncConnection, version: int) -> None:
    """Delivered at the commit, and not at all on a rollback."""
    await connection.execute("SELECT pg_notify(%s, %s)", (CHANNEL, str(version)))
