"""What the voice store refuses."""

from __future__ import annotations


class VoiceExists(Exception):
    """The owner already has a voice with this id."""

    def __init__(self, owner: str, voice_id: str):
        super().__init__(f"voice {voice_id!r} already exists")
        self.owner = owner
        self.voice_id = voice_id


class VoiceQuotaReached(Exception):
    """The owner already stores `limit` voices."""

    def __init__(self, limit: int):
        super().__init__(f"the owner already stores {limit} voices, the limit")
        self.limit = limit


class SchemaTooNew(RuntimeError):
    """The store was migrated by a newer gateway than this one; refusing it protects its data."""

    def __init__(self, description: str, found: int, known: int):
        super().__init__(
            f"voice store {description} has schema version {found}, newer than the {known} this gateway "
            "knows: upgrade this gateway (a newer one migrated the store)"
        )
        self.found = found
        self.known = known
