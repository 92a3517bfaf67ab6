"""Two gateways, each with its own VoiceCache on one store: a voice created through one is seen by
the other at once; a removal is seen within the bound (PostgreSQL: at once, by notification)."""

from __future__ import annotations

import asyncio
import time
from collections.abc import AsyncIterator, Callable
from contextlib import asynccontextmanager
from pathlib import Path

import pytest

from tests.gateway.voice_store.samples import is_postgres, query, voice
from voxserve.gateway.voice_store import VoiceCache, open_voice_store
from voxserve.gateway.voice_store.postgres import LISTENER_NAME

LIMIT = 100
POLL = 0.005


@asynccontextmanager
async def gateways(location: str, check_seconds: float) -> AsyncIterator[tuple[VoiceCache, VoiceCache]]:
    """Two gateway replicas: a store and a cache each."""
    caches = []
    for _ in range(2):
        store = open_voice_store(location)
        await store.open()
        cache = VoiceCache(store, check_seconds=check_seconds)
        await cache.start()
        caches.append(cache)
    try:
        yield caches[0], caches[1]
    finally:
        for cache in caches:
            await cache.stop()
            await cache.store.close()


def listeners(postgres_url: str) -> int:
    (count,) = query(
        postgres_url,
        "SELECT count(*) FROM pg_stat_activity WHERE datname = current_database() "
        "AND application_name = ? AND starts_with(query, 'LISTEN')",
        (LISTENER_NAME,),
    )[0]
    return int(count)


async def until(condition_met: Callable[[], bool], seconds: float) -> None:
    deadline = time.monotonic() + seconds
    while not condition_met():
        assert time.monotonic() < deadline
        await asyncio.sleep(0.02)


async def removal_delay(writer: VoiceCache, reader: VoiceCache, voice_id: str, limit: float) -> float:
    """Seconds from `writer` removing a voice that `reader` has cached to `reader` not serving it."""
    assert await reader.get("key-a", voice_id) is not None
    assert await writer.remove("key-a", voice_id)
    removed = time.monotonic()
    while await reader.get("key-a", voice_id) is not None:
        assert time.monotonic() - removed < limit, f"still served after {limit} s"
        await asyncio.sleep(POLL)
    return time.monotonic() - removed


async def test_postgres_replicas_see_new_voices_at_once_and_removals_by_notification(
    postgres_url: str,
) -> None:
    # A version poll every 15 s: a removal seen sooner was seen by notification.
    async with gateways(postgres_url, check_seconds=30.0) as (one, two):
        await until(lambda: listeners(postgres_url) == 2, 5)
        await one.add(voice(), max_per_owner=LIMIT)
        assert await two.get("key-a", "narrator") == voice()
        assert [v.id for v in await two.list("key-a")] == ["narrator"]
        delays = []
        for n in range(5):
            await one.add(voice(voice_id=f"v{n}"), max_per_owner=LIMIT)
            delays.append(await removal_delay(one, two, f"v{n}", limit=1.0))
        print(
            f"postgres, NOTIFY: removal seen by the other replica after {max(delays) * 1000:.1f} ms at most"
        )
        assert max(delays) < 1.0


async def test_postgres_replicas_recover_a_lost_listener(postgres_url: str) -> None:
    """Notifications sent while a listener reconnects are lost: reconnecting drops the cache."""
    check_seconds = 1.0
    async with gateways(postgres_url, check_seconds=check_seconds) as (one, two):
        await until(lambda: listeners(postgres_url) == 2, 5)
        await one.add(voice(voice_id="a"), max_per_owner=LIMIT)
        await one.add(voice(voice_id="b"), max_per_owner=LIMIT)
        assert await two.get("key-a", "a") is not None
        query(
            postgres_url,
            "SELECT pg_terminate_backend(pid) FROM pg_stat_activity WHERE application_name = ? "
            "AND datname = current_database()",
            (LISTENER_NAME,),
        )
        delay = await removal_delay(one, two, "a", limit=check_seconds + 0.1)
        print(f"postgres, listener lost: removal seen after {delay * 1000:.1f} ms (bound {check_seconds} s)")
        # The listeners come back by themselves.
        await until(lambda: listeners(postgres_url) == 2, 5)
        delay = await removal_delay(one, two, "b", limit=check_seconds + 0.1)
        print(f"postgres, listener back: removal seen after {delay * 1000:.1f} ms")


async def test_sqlite_replicas_see_new_voices_at_once_and_removals_within_the_check(tmp_path: Path) -> None:
    check_seconds = 0.3
    async with gateways(f"{tmp_path}/voices.sqlite3", check_seconds=check_seconds) as (one, two):
        await one.add(voice(), max_per_owner=LIMIT)
        assert await two.get("key-a", "narrator") == voice()
        delays = []
        for n in range(5):
            await one.add(voice(voice_id=f"v{n}"), max_per_owner=LIMIT)
            assert await two.get("key-a", f"v{n}") is not None
            await asyncio.sleep(n * 0.05)  # removals at different points of the check period
            delays.append(await removal_delay(one, two, f"v{n}", limit=check_seconds + 0.1))
        print(
            f"sqlite, version check every {check_seconds} s: removal seen after "
            f"{min(delays) * 1000:.0f}..{max(delays) * 1000:.0f} ms"
        )
        assert max(delays) <= check_seconds + 0.05


async def test_hits_come_from_memory_until_the_version_changes(location: str) -> None:
    """Also the fallback for a missed notification: this version bump notifies no one."""
    check_seconds = 0.2
    store = open_voice_store(location)
    await store.open()
    cache = VoiceCache(store, check_seconds=check_seconds)
    await cache.start()
    try:
        await cache.add(voice(), max_per_owner=LIMIT)
        await asyncio.sleep(0.3)  # the add's own version bump (and notification) has been seen
        assert await cache.get("key-a", "narrator") == voice()
        # Deleted behind the store's back, without a version bump: the cached copy is served,
        # also after several version checks.
        query(location, "DELETE FROM voices")
        for _ in range(3):
            assert await cache.get("key-a", "narrator") == voice()
            await asyncio.sleep(0.15)
        # Any change of the version drops it within the bound.
        query(location, "UPDATE voice_store_version SET version = version + 1")
        changed = time.monotonic()
        while await cache.get("key-a", "narrator") is not None:
            assert time.monotonic() - changed < check_seconds + 0.05
            await asyncio.sleep(POLL)
        delay = time.monotonic() - changed
        print(
            f"{'postgres' if is_postgres(location) else 'sqlite'}, version check every {check_seconds} s: "
            f"change seen after {delay * 1000:.0f} ms"
        )
    finally:
        await cache.stop()
        await store.close()


async def test_a_gateway_sees_its_own_writes_at_once(location: str) -> None:
    store = open_voice_store(location)
    await store.open()
    cache = VoiceCache(store, check_seconds=60.0)
    await cache.start()
    try:
        assert await cache.get("key-a", "narrator") is None  # misses are not remembered
        await cache.add(voice(), max_per_owner=LIMIT)
        assert await cache.get("key-a", "narrator") == voice()
        assert await cache.remove("key-a", "narrator")
        assert await cache.get("key-a", "narrator") is None
        assert await cache.list("key-a") == []
    finally:
        await cache.stop()
        await store.close()


async def test_stopping_closes_the_listener(postgres_url: str) -> None:
    async with gateways(postgres_url, check_seconds=1.0):
        await until(lambda: listeners(postgres_url) == 2, 5)
    await until(lambda: listeners(postgres_url) == 0, 5)


def test_the_bound_must_be_positive() -> None:
    with pytest.raises(ValueError, match="positive"):
        VoiceCache(open_voice_store("unused.sqlite3"), check_seconds=0)
