"""A stored voice: one row of the voice store."""

from __future__ import annotations

from dataclasses import astuple, dataclass, fields, replace
from typing import Any


@dataclass(frozen=True)
class StoredVoice:
    owner: str
    """The API-key scope that created it ("" when the gateway has no keys)."""
    id: str
    family: str
    display_name: str
    description: str
    pack: str
    transcript: str | None
    consent: str
    encoding: bytes
    """A serialized voxserve.v1.vocoder_pb2.EncodedVoice; opaque to the store."""
    reference_seconds: float
    created_at: float
    """Unix seconds."""

    def row(self) -> tuple[Any, ...]:
        """The values in COLUMNS order."""
        return astuple(self)

    @classmethod
    def from_row(cls, row: tuple[Any, ...]) -> StoredVoice:
        voice = cls(*row)
        # Drivers may hand back memoryview or bytearray for binary columns.
        return voice if isinstance(voice.encoding, bytes) else replace(voice, encoding=bytes(voice.encoding))


COLUMNS: tuple[str, ...] = tuple(f.name for f in fields(StoredVoice))
