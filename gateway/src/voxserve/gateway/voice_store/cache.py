"""A gateway's cache of stored voices, kept fresh against changes made through other replicas."""

from __future__ import annotations

import asyncio
import builtins
import contextlib
import time
from collections import OrderedDict

from voxserve.common.logging import get_logger
from voxserve.gateway.voice_store.record import StoredVoice
from voxserve.gateway.voice_store.store import VoiceStore

log = get_logger(__name__)


class VoiceCache:
    """Read-through cache in front of a VoiceStore.

    A miss always asks the store, so a voice created through another replica is found at once.
    A hit is served only while the store's version was read at most `check_seconds` ago and had
    not changed since the entry was cached: a voice removed or replaced through another replica
    is served from here for at most `check_seconds` (far less where the store notifies, as
    PostgreSQL does). The version is polled in the background, and read before a hit whenever
    that poll is late.
    """

    def __init__(self, store: VoiceStore, *, check_seconds: float = 1.0, max_entries: int = 4096):
        if check_seconds <= 0:
            raise ValueError(f"check_seconds must be positive, not {check_seconds}")
        self.store = store
        self.check_seconds = check_seconds
        self.max_entries = max_entries
        self._entries: OrderedDict[tuple[str, str], StoredVoice] = OrderedDict()
        # Bumped whenever entries are dropped: a store read that started before a drop may hold
        # what was just dropped, so its result is not cached.
        self._generation = 0
        self._version: int | None = None
        self._checked_at: float | None = None
        """monotonic() just before the latest successful version read."""
        self._check_lock = asyncio.Lock()
        self._tasks: list[asyncio.Task[None]] = []

    async def start(self) -> None:
        """Read the version, then keep checking it, and follow the store's notifications."""
        await self._check()
        self._tasks = [
            asyncio.create_task(self._poll(), name="voice-cache-poll"),
            asyncio.create_task(self._watch(), name="voice-cache-watch"),
        ]

    async def stop(self) -> None:
        tasks, self._tasks = self._tasks, []
        for task in tasks:
            task.cancel()
        for task in tasks:
            with contextlib.suppress(asyncio.CancelledError):
                await task

    async def get(self, owner: str, voice_id: str) -> StoredVoice | None:
        key = (owner, voice_id)
        if key in self._entries:
            await self._check(unless_fresh=True)
            if (voice := self._entries.get(key)) is not None:
                self._entries.move_to_end(key)
                return voice
        generation = self._generation
        voice = await self.store.get(owner, voice_id)
        if voice is not None and generation == self._generation:
            self._entries[key] = voice
            while len(self._entries) > self.max_entries:
                self._entries.popitem(last=False)
        return voice

    async def add(self, voice: StoredVoice, *, max_per_owner: int) -> None:
        try:
            await self.store.add(voice, max_per_owner=max_per_owner)
        finally:
            self._drop((voice.owner, voice.id))

    async def remove(self, owner: str, voice_id: str) -> bool:
        try:
            return await self.store.remove(owner, voice_id)
        finally:
            self._drop((owner, voice_id))

    async def list(self, owner: str) -> builtins.list[StoredVoice]:
        return await self.store.list(owner)

    def _drop(self, key: tuple[str, str]) -> None:
        self._entries.pop(key, None)
        self._generation += 1

    def _drop_all(self) -> None:
        self._entries.clear()
        self._generation += 1

    async def _check(self, *, unless_fresh: bool = False) -> None:
        """Read the store's version; on a change, drop every entry."""
        async with self._check_lock:
            if unless_fresh and self._fresh():
                return
            sent = time.monotonic()
            try:
                version = await self.store.version()
            except BaseException:
                # Unverifiable entries must not outlive the bound.
                self._drop_all()
                self._version = self._checked_at = None
                raise
            if version != self._version:
                self._drop_all()
                self._version = version
            self._checked_at = sent

    def _fresh(self) -> bool:
        return self._checked_at is not None and time.monotonic() - self._checked_at <= self.check_seconds

    async def _watch(self) -> None:
        try:
            await self.store.watch(self._drop_all)
        except Exception as error:
            # The version poll still bounds staleness, just not as tightly.
            log.error(
                "voice cache: change notifications stopped", store=self.store.description, error=str(error)
            )

    async def _poll(self) -> None:
        # Twice per bound, so that gets rarely find the last check too old and wait for one.
        failing = False
        while True:
            await asyncio.sleep(self.check_seconds / 2)
            try:
                await self._check()
            except Exception as error:
                if not failing:
                    log.warning(
                        "voice cache: version check failed", store=self.store.description, error=str(error)
                    )
                failing = True
            else:
                if failing:
                    log.info("voice cache: version check works again", store=self.store.description)
                failing = False
