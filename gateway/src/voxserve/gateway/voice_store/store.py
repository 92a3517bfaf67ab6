"""The voice store: where voices enrolled from reference audio are kept, shared by every gateway
replica that opens the same location."""

from __future__ import annotations

import builtins
from abc import ABC, abstractmethod
from collections.abc import Callable
from pathlib import Path

from voxserve.gateway.voice_store.record import StoredVoice

POSTGRES_SCHEMES = ("postgresql://", "postgres://")


class VoiceStore(ABC):
    """Voices keyed by (owner, id): each owner has its own names and sees only its own voices."""

    description: str
    """Where the store is, for logs ("sqlite:/path", "postgresql://host/db"); never a password."""

    @abstractmethod
    async def open(self) -> None:
        """Connect and migrate to the latest schema; safe when several replicas open at once."""

    @abstractmethod
    async def close(self) -> None: ...

    @abstractmethod
    async def add(self, voice: StoredVoice, *, max_per_owner: int) -> None:
        """Store a new voice in one transaction with the quota check.

        Raises VoiceExists for a taken (owner, id) and VoiceQuotaReached when the owner already
        has `max_per_owner` voices; either way, and on cancellation before the commit, nothing
        is stored.
        """

    @abstractmethod
    async def get(self, owner: str, voice_id: str) -> StoredVoice | None: ...

    @abstractmethod
    async def remove(self, owner: str, voice_id: str) -> bool:
        """Whether there was such a voice (now removed)."""

    @abstractmethod
    async def list(self, owner: str) -> builtins.list[StoredVoice]:
        """The owner's voices, oldest first (ties by id)."""

    @abstractmethod
    async def version(self) -> int:
        """A counter that every add and remove bumps, in the same transaction."""

    async def watch(self, changed: Callable[[], None]) -> None:
        """Call `changed` soon after any replica changes the voices, until cancelled.

        For stores that can push changes; the others return at once and are polled (`version`).
        """
        return


def open_voice_store(location: str) -> VoiceStore:
    """The store at `location`: a postgresql:// (or postgres://) URL, else an SQLite file path.

    Nothing is connected until `open`; an SQLite file's parent directories are created then.
    """
    if location.startswith(POSTGRES_SCHEMES):
        from voxserve.gateway.voice_store.postgres import PostgresVoiceStore

        return PostgresVoiceStore(location)
    from voxserve.gateway.voice_store.sqlite import SqliteVoiceStore

    return SqliteVoiceStore(Path(location).expanduser())
