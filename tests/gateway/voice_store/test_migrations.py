"""Opening a store migrates it, once, also when replicas open a fresh database at the same time;
a store migrated by a newer gateway is refused."""

from __future__ import annotations

import asyncio

import pytest

from tests.gateway.voice_store.samples import query, voice
from voxserve.gateway.voice_store import SchemaTooNew, open_voice_store
from voxserve.gateway.voice_store.migrations import POSTGRES, SQLITE, Migration, pending


def test_each_dialect_has_the_same_numbered_migrations() -> None:
    for migrations in (SQLITE, POSTGRES):
        assert [m.version for m in migrations] == list(range(1, len(migrations) + 1))
    assert len(SQLITE) == len(POSTGRES)


def test_pending_migrations_are_the_missing_ones_in_order() -> None:
    steps = (Migration(1, ()), Migration(2, ()), Migration(3, ()))
    assert pending([], steps, "x") == list(steps)
    assert pending([1], steps, "x") == [steps[1], steps[2]]
    assert pending([1, 2, 3], steps, "x") == []
    with pytest.raises(SchemaTooNew, match=r"schema version 4, newer than the 3") as refused:
        pending([1, 2, 3, 4], steps, "sqlite:/voices")
    assert (refused.value.found, refused.value.known) == (4, 3)


async def test_migrations_run_once(location: str) -> None:
    for _ in range(2):
        store = open_voice_store(location)
        await store.open()
        await store.add(voice(voice_id=f"v{await store.version()}"), max_per_owner=10)
        await store.close()
    applied = query(location, "SELECT version FROM schema_migrations ORDER BY version")
    assert applied == [(m.version,) for m in SQLITE]
    assert query(location, "SELECT count(*) FROM voices") == [(2,)]


async def test_replicas_opening_a_fresh_store_at_once_both_succeed(location: str) -> None:
    replicas = [open_voice_store(location) for _ in range(3)]
    await asyncio.gather(*(replica.open() for replica in replicas))
    try:
        await replicas[0].add(voice(), max_per_owner=10)
        for replica in replicas:
            assert await replica.get("key-a", "narrator") == voice()
        applied = query(location, "SELECT version FROM schema_migrations ORDER BY version")
        assert applied == [(m.version,) for m in SQLITE]
    finally:
        for replica in replicas:
            await replica.close()


async def test_a_store_with_a_newer_schema_is_refused(location: str) -> None:
    store = open_voice_store(location)
    await store.open()
    await store.add(voice(), max_per_owner=10)
    await store.close()
    newer = len(SQLITE) + 1
    query(location, "INSERT INTO schema_migrations (version) VALUES (?)", (newer,))

    refused = open_voice_store(location)
    with pytest.raises(SchemaTooNew, match=f"schema version {newer}, newer than the {newer - 1}"):
        await refused.open()
    with pytest.raises(RuntimeError, match="not open"):
        await refused.list("key-a")
    # Refusing changed nothing.
    assert query(location, "SELECT count(*) FROM voices") == [(1,)]
