"""Every voice a caller can use: the registry's built-in voices, then the stored voices of the
caller's scope (enrolled from reference audio, shared by every gateway replica via the store)."""

from __future__ import annotations

from voxserve.common.status import AlreadyExists, FailedPrecondition, LimitReached
from voxserve.families.registry import FAMILIES
from voxserve.gateway.voice_store import StoredVoice, VoiceCache, VoiceExists, VoiceQuotaReached
from voxserve.gateway.voices import Enrolled, Voice, VoiceRegistry
from voxserve.v1 import vocoder_pb2


def voice_from_record(record: StoredVoice) -> Voice:
    """A stored voice as the gateway uses it; its family turns the stored encoding into parts."""
    family = FAMILIES.get(record.family)
    if family is None or family.enrolment is None:
        raise ValueError(f"stored voice {record.id!r} has family {record.family!r}, which has no enrolment")
    encoded = vocoder_pb2.EncodedVoice.FromString(record.encoding)
    return Voice(
        record.id,
        record.description,
        family,
        family.enrolment.voice_parts(encoded, record.transcript),
        record.pack,
        Enrolled(
            display_name=record.display_name,
            transcript=record.transcript,
            consent=record.consent,
            created_at=record.created_at,
            reference_seconds=record.reference_seconds,
            encoding=record.encoding,
        ),
    )


class VoiceDirectory:
    def __init__(self, registry: VoiceRegistry, stored: VoiceCache | None = None):
        self.registry = registry
        self.stored = stored
        """None: no store; the registry's voices only."""

    def builtin(self, voice_id: str) -> Voice | None:
        return self.registry.get(voice_id)

    async def find(self, scope: str, voice_id: str) -> Voice | None:
        """The voice called `voice_id` for this scope (empty: the registry's default)."""
        if (voice := self.registry.get(voice_id)) is not None:
            return voice
        record = None if self.stored is None else await self.stored.get(scope, voice_id)
        return None if record is None else voice_from_record(record)

    async def voices(self, scope: str) -> list[Voice]:
        """Built-in voices first, then the scope's stored voices, oldest first."""
        records = [] if self.stored is None else await self.stored.list(scope)
        return [*self.registry, *(voice_from_record(r) for r in records)]

    async def check_room(self, scope: str, max_per_scope: int) -> None:
        """Refuse early what `add` would refuse at the end: a scope at its voice limit."""
        stored = 0 if self.stored is None else len(await self.stored.list(scope))
        if stored >= max_per_scope:
            raise _limit_reached(max_per_scope)

    async def add(self, record: StoredVoice, *, max_per_scope: int) -> Voice:
        if self.registry.get(record.id) is not None:
            raise AlreadyExists(f"voice_id {record.id!r} is a built-in voice")
        if self.stored is None:
            raise FailedPrecondition("this gateway has no voice store")
        voice = voice_from_record(record)
        try:
            await self.stored.add(record, max_per_owner=max_per_scope)
        except VoiceExists as exc:
            raise AlreadyExists(f"voice_id {record.id!r} already exists") from exc
        except VoiceQuotaReached as exc:
            raise _limit_reached(exc.limit) from exc
        return voice

    async def remove(self, scope: str, voice_id: str) -> bool:
        if self.registry.get(voice_id) is not None and voice_id:
            raise FailedPrecondition(f"voice_id {voice_id!r} is a built-in voice; it cannot be deleted")
        return self.stored is not None and await self.stored.remove(scope, voice_id)


def _limit_reached(limit: int) -> LimitReached:
    return LimitReached(f"this API key already stores {limit} voices, the limit; delete one first")
