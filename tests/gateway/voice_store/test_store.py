"""The store's contract, on SQLite and PostgreSQL alike."""

from __future__ import annotations

import asyncio
from pathlib import Path
from typing import cast

import pytest

from tests.gateway.voice_store.samples import query, voice
from voxserve.gateway.voice_store import (
    VoiceExists,
    VoiceQuotaReached,
    VoiceStore,
    open_voice_store,
)
from voxserve.gateway.voice_store.postgres import PostgresVoiceStore
from voxserve.gateway.voice_store.sqlite import SqliteVoiceStore

LIMIT = 100


async def test_add_get_list_remove_round_trip(store: VoiceStore) -> None:
    later = voice(voice_id="b-later", created_at=2_000.0, transcript=None)
    tied_b = voice(voice_id="tie-b", created_at=1_000.0)
    tied_a = voice(voice_id="tie-a", created_at=1_000.0, encoding=b"")
    for added in (later, tied_b, tied_a):
        await store.add(added, max_per_owner=LIMIT)

    assert await store.get("key-a", "b-later") == later
    assert await store.get("key-a", "tie-a") == tied_a
    assert await store.get("key-a", "missing") is None
    assert await store.list("key-a") == [tied_a, tied_b, later]  # by created_at, then id

    assert await store.remove("key-a", "tie-b") is True
    assert await store.get("key-a", "tie-b") is None
    assert await store.remove("key-a", "tie-b") is False
    assert [v.id for v in await store.list("key-a")] == ["tie-a", "b-later"]


async def test_a_taken_id_is_refused_and_nothing_changes(store: VoiceStore) -> None:
    original = voice()
    await store.add(original, max_per_owner=LIMIT)
    version = await store.version()
    with pytest.raises(VoiceExists) as refused:
        await store.add(voice(description="another voice", encoding=b"other"), max_per_owner=LIMIT)
    assert (refused.value.owner, refused.value.voice_id) == ("key-a", "narrator")
    assert await store.get("key-a", "narrator") == original
    assert await store.list("key-a") == [original]
    assert await store.version() == version


async def test_the_quota_is_per_owner_and_refusal_stores_nothing(store: VoiceStore) -> None:
    for n in range(2):
        await store.add(voice(voice_id=f"v{n}", created_at=n), max_per_owner=2)
    await store.add(voice("key-b", "v0"), max_per_owner=2)
    version = await store.version()
    with pytest.raises(VoiceQuotaReached) as refused:
        await store.add(voice(voice_id="v2"), max_per_owner=2)
    assert refused.value.limit == 2
    assert [v.id for v in await store.list("key-a")] == ["v0", "v1"]
    assert await store.version() == version
    # A taken id is reported as taken even at the limit.
    with pytest.raises(VoiceExists):
        await store.add(voice(voice_id="v1"), max_per_owner=2)
    assert await store.remove("key-a", "v0")
    await store.add(voice(voice_id="v2", created_at=5), max_per_owner=2)
    assert [v.id for v in await store.list("key-a")] == ["v1", "v2"]


async def test_owners_never_see_each_others_voices(store: VoiceStore) -> None:
    mine, theirs = voice("key-a", "narrator"), voice("key-b", "narrator", description="theirs")
    only_mine = voice("key-a", "private")
    for added in (mine, theirs, only_mine):
        await store.add(added, max_per_owner=LIMIT)
    assert await store.get("key-a", "narrator") == mine
    assert await store.get("key-b", "narrator") == theirs
    assert await store.get("key-b", "private") is None
    assert await store.list("key-b") == [theirs]
    assert await store.remove("key-b", "private") is False
    assert await store.remove("key-b", "narrator") is True
    assert await store.list("key-a") == [mine, only_mine]
    assert await store.list("") == []


async def test_every_add_and_remove_bumps_the_version(store: VoiceStore) -> None:
    start = await store.version()
    await store.add(voice(), max_per_owner=LIMIT)
    assert await store.version() == start + 1
    with pytest.raises(VoiceExists):
        await store.add(voice(), max_per_owner=LIMIT)
    assert await store.remove("key-a", "missing") is False
    assert await store.version() == start + 1
    assert await store.remove("key-a", "narrator") is True
    assert await store.version() == start + 2


async def test_a_write_failing_midway_leaves_nothing(store: VoiceStore) -> None:
    """The insert fails after the version was bumped in the same transaction: both roll back."""
    start = await store.version()
    unstorable = voice(encoding=cast(bytes, {"not": "bytes"}))
    with pytest.raises(Exception) as failed:
        await store.add(unstorable, max_per_owner=LIMIT)
    assert not isinstance(failed.value, (VoiceExists, VoiceQuotaReached))
    assert await store.get("key-a", "narrator") is None
    assert await store.version() == start
    await store.add(voice(), max_per_owner=LIMIT)  # and the store still works
    assert await store.version() == start + 1


async def test_replicas_adding_at_once_never_pass_the_quota(location: str) -> None:
    """Two stores on one database (two gateway replicas), eight adds racing for three places."""
    replicas = [open_voice_store(location) for _ in range(2)]
    for replica in replicas:
        await replica.open()
    try:
        outcomes = await asyncio.gather(
            *(replicas[n % 2].add(voice(voice_id=f"v{n}", created_at=n), max_per_owner=3) for n in range(8)),
            return_exceptions=True,
        )
        stored = [o for o in outcomes if o is None]
        refused = [o for o in outcomes if isinstance(o, VoiceQuotaReached)]
        assert (len(stored), len(refused)) == (3, 5), outcomes
        assert len(await replicas[1].list("key-a")) == 3
        assert await replicas[0].version() == 3
    finally:
        for replica in replicas:
            await replica.close()


async def test_a_reopened_store_keeps_its_voices(location: str) -> None:
    first = open_voice_store(location)
    await first.open()
    kept = [voice(voice_id="one", created_at=1.0), voice("key-b", "two", created_at=2.0)]
    for added in kept:
        await first.add(added, max_per_owner=LIMIT)
    version = await first.version()
    await first.close()

    second = open_voice_store(location)
    await second.open()
    try:
        assert await second.get("key-a", "one") == kept[0]
        assert await second.list("key-b") == [kept[1]]
        assert await second.version() == version
    finally:
        await second.close()


def test_the_location_picks_the_store_and_the_description_hides_the_password(tmp_path: Path) -> None:
    for url in (
        "postgresql://voxserve:s3cret@db.internal:5433/voices",
        "postgres://voxserve:s3cret@db.internal:5433/voices",
    ):
        store = open_voice_store(url)
        assert isinstance(store, PostgresVoiceStore)
        assert store.description == "postgresql://db.internal:5433/voices"
    hidden = open_voice_store("postgresql://db.internal/voices?user=voxserve&password=s3cret")
    assert "s3cret" not in hidden.description and hidden.description == "postgresql://db.internal/voices"
    path = tmp_path / "a" / "b" / "voices.sqlite3"
    store = open_voice_store(str(path))
    assert isinstance(store, SqliteVoiceStore) and store.description == f"sqlite:{path}"


async def test_an_sqlite_store_creates_its_directories_and_a_wal_file(tmp_path: Path) -> None:
    path = tmp_path / "a" / "b" / "voices.sqlite3"
    store = open_voice_store(str(path))
    await store.open()
    try:
        await store.add(voice(), max_per_owner=LIMIT)
        assert path.is_file()
        assert query(str(path), "PRAGMA journal_mode") == [("wal",)]
    finally:
        await store.close()


async def test_a_closed_store_refuses_calls(location: str) -> None:
    store = open_voice_store(location)
    with pytest.raises(RuntimeError, match="not open"):
        await store.get("key-a", "narrator")
    await store.open()
    await store.close()
    with pytest.raises(RuntimeError, match="not open"):
        await store.list("key-a")
