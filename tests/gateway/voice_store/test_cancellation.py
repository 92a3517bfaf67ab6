"""An add cancelled before its commit (the gRPC call was cancelled, the gateway stops) stores
nothing, and the store goes on working."""

from __future__ import annotations

import asyncio
import sqlite3
import time
from pathlib import Path

import psycopg
import pytest

from tests.gateway.voice_store.samples import voice
from voxserve.gateway.voice_store import open_voice_store
from voxserve.gateway.voice_store.record import COLUMNS

LIMIT = 100


async def _blocked(task: asyncio.Task[None]) -> None:
    """Let `task` run into the lock it waits for, and check that it is still waiting there."""
    await asyncio.sleep(0.3)
    assert not task.done()


async def test_postgres_add_cancelled_inside_its_transaction_leaves_nothing(postgres_url: str) -> None:
    store = open_voice_store(postgres_url)
    await store.open()
    try:
        start = await store.version()
        # Another writer's uncommitted row with the same key: the add has bumped the version in
        # its transaction, passed its checks, and now waits on that row's lock inside INSERT.
        with psycopg.connect(postgres_url) as other:
            placeholders = ", ".join(["%s"] * len(COLUMNS))
            other.execute(
                f"INSERT INTO voices ({', '.join(COLUMNS)}) VALUES ({placeholders})",
                voice(description="the other writer's").row(),
            )
            adding = asyncio.create_task(store.add(voice(), max_per_owner=LIMIT))
            await _blocked(adding)
            waiting = other.execute("SELECT count(*) FROM pg_locks WHERE NOT granted").fetchone()
            assert waiting == (1,)
            adding.cancel()
            with pytest.raises(asyncio.CancelledError):
                await adding
            other.rollback()
        assert await store.get("key-a", "narrator") is None
        assert await store.version() == start
        await store.add(voice(), max_per_owner=LIMIT)
        assert await store.version() == start + 1
    finally:
        await store.close()


async def test_sqlite_add_cancelled_while_waiting_for_the_write_lock_leaves_nothing(tmp_path: Path) -> None:
    path = tmp_path / "voices.sqlite3"
    store = open_voice_store(str(path))
    await store.open()
    try:
        start = await store.version()
        # Another process's write transaction holds the file's write lock.
        other = sqlite3.connect(path, isolation_level=None)
        other.execute("BEGIN IMMEDIATE")
        adding = asyncio.create_task(store.add(voice(), max_per_owner=LIMIT))
        await _blocked(adding)
        adding.cancel()
        cancelled_at = time.monotonic()
        with pytest.raises(asyncio.CancelledError):
            await adding
        # The cancellation does not wait for the lock: the add stops retrying at once.
        assert time.monotonic() - cancelled_at < 1.0
        other.execute("ROLLBACK")
        other.close()
        # Had the add gone on in its thread, the lock being free would now let it commit.
        await asyncio.sleep(0.3)
        assert await store.get("key-a", "narrator") is None
        assert await store.version() == start
        await store.add(voice(), max_per_owner=LIMIT)
        assert await store.list("key-a") == [voice()]
    finally:
        await store.close()


async def test_cancelled_reads_leave_the_store_usable(location: str) -> None:
    store = open_voice_store(location)
    await store.open()
    try:
        await store.add(voice(), max_per_owner=LIMIT)
        for _ in range(20):
            reading = asyncio.create_task(store.list("key-a"))
            await asyncio.sleep(0)
            reading.cancel()
            with pytest.raises(asyncio.CancelledError):
                await reading
        assert await store.list("key-a") == [voice()]
        assert await store.remove("key-a", "narrator")
    finally:
        await store.close()
