"""Named voices: what a voice id means to the generator and the vocoder.

A voice is its family (`voxserve.families`) and the parts its registry entry gives: which parts
a family's voices have, and how an entry is read, is the family's business (`Family.read_voice`).
The gateway reads each voice once and sends its parts with every segment.

Spark's built-in voices are either fixed (32 BiCodec global token ids, the same timbre every
time) or controllable (a gender/pitch/speed style from which the model generates its own global
ids; later segments reuse what it generated for the first).
"""

from __future__ import annotations

import json
import random
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import yaml

from voxserve.families import spark
from voxserve.families.family import Family, VoiceParts
from voxserve.families.registry import DEFAULT_FAMILY, FAMILIES
from voxserve.v1 import generator_pb2, speech_pb2

_GENDERS = {"female": generator_pb2.VoiceStyle.FEMALE, "male": generator_pb2.VoiceStyle.MALE}


@dataclass(frozen=True)
class Enrolled:
    """What a voice enrolled from reference audio (`CreateVoice`) records besides its parts."""

    display_name: str = ""
    transcript: str | None = None
    consent: str = ""
    created_at: float = 0.0
    reference_seconds: float = 0.0
    encoding: bytes = b""
    """The serialized `EncodedVoice` enrolment computed."""


@dataclass(frozen=True)
class Voice:
    id: str
    description: str
    family: Family = DEFAULT_FAMILY
    parts: VoiceParts = field(default_factory=VoiceParts)
    """What the voice gives the generator and the vocoder."""
    pack: str = ""
    """The model pack the voice belongs to, as the registry names it (informational)."""
    enrolled: Enrolled | None = None
    """Set for a stored voice (enrolled from reference audio); None for a registry voice."""

    @property
    def controllable(self) -> bool:
        """A request's style sets the voice: the model writes it from that style."""
        return self.reuses_first_voice and self.parts.speaker is None

    @property
    def reuses_first_voice(self) -> bool:
        """Later segments prefill the voice (global ids) the model wrote for the first one."""
        return self.family.voice_from_generator and self.parts.global_ids is None

    def to_proto(self, *, conditioning: bool = False) -> speech_pb2.Voice:
        """`conditioning`: a stored voice also carries what its enrolment computed."""
        voice = speech_pb2.Voice(
            id=self.id,
            family=self.family.name,
            sample_rate=self.family.sample_rate,
            description=self.description,
            controllable=self.controllable,
            pack=self.pack,
            speaker=self.parts.speaker or "",
        )
        if (enrolled := self.enrolled) is not None:
            voice.stored = True
            voice.display_name = enrolled.display_name
            voice.transcript = enrolled.transcript or ""
            voice.consent = enrolled.consent
            voice.created_unix_seconds = enrolled.created_at
            voice.reference_seconds = enrolled.reference_seconds
            if conditioning:
                voice.conditioning.ParseFromString(enrolled.encoding)
        return voice

    def style(self, override: generator_pb2.VoiceStyle | None) -> generator_pb2.VoiceStyle:
        parts = self.parts
        style = generator_pb2.VoiceStyle(gender=_GENDERS[parts.gender], pitch=parts.pitch, speed=parts.speed)
        if override is not None:
            style.pitch, style.speed = override.pitch, override.speed
            if override.gender != generator_pb2.VoiceStyle.GENDER_UNSPECIFIED:
                style.gender = override.gender
        return style


def _default_global_ids() -> tuple[int, ...]:
    # A fixed, arbitrary timbre: stable across releases because the seed is fixed.
    rng = random.Random(20240501)
    return tuple(rng.randrange(spark.GLOBAL_VOCAB) for _ in range(spark.GLOBAL_TOKENS_PER_VOICE))


BUILTIN_VOICES = (
    Voice(
        "default",
        "Fixed voice: the same 32 global tokens for every request",
        spark.FAMILY,
        VoiceParts(global_ids=_default_global_ids()),
    ),
    Voice(
        "female",
        "Controllable female voice (style pitch/speed 0..4, default 2)",
        spark.FAMILY,
        VoiceParts(gender="female"),
    ),
    Voice(
        "male",
        "Controllable male voice (style pitch/speed 0..4, default 2)",
        spark.FAMILY,
        VoiceParts(gender="male"),
    ),
)


class VoiceRegistry:
    def __init__(self, voices: tuple[Voice, ...] | list[Voice]):
        if not voices:
            raise ValueError("a voice registry needs at least one voice")
        duplicates = sorted({v.id for v in voices if sum(w.id == v.id for w in voices) > 1})
        if duplicates:
            raise ValueError(f"voice ids must be unique; repeated: {', '.join(duplicates)}")
        self._voices = {v.id: v for v in voices}

    @classmethod
    def builtin(cls) -> VoiceRegistry:
        return cls(BUILTIN_VOICES)

    @classmethod
    def from_file(cls, path: Path) -> VoiceRegistry:
        """A registry file, YAML or JSON (JSON is YAML), whose "voices" is either a list of entries
        with an "id" or a mapping from id to entry. An entry has "description", "pack" (a label),
        "family" (default "spark") and its conditioning: spark "global_ids" (32 ids),
        "gender"/"pitch"/"speed" or "speaker" (a speaker-name fine-tune's speaker); s3 and
        chatterbox "conditioning" (a voice file, relative to the registry); orpheus "speaker".

        A family's default voice file (Chatterbox's `conds.pt`; any file with its suffix) is a
        registry of its one voice, "default": what a download without a voices.json serves."""
        path = Path(path)
        if (family := _voice_file_family(path)) is not None:
            entry = {
                "id": "default",
                "family": family.name,
                "conditioning": path.name,
                "description": f"The pack's {family.default_voice_file} voice",
            }
            return cls([_voice_from_entry(entry, path.parent)])
        try:
            text = path.read_text()
            document = json.loads(text) if path.suffix == ".json" else yaml.safe_load(text)
        except (OSError, ValueError, yaml.YAMLError) as exc:
            raise ValueError(f"voice registry {path}: {exc}") from exc
        entries = document.get("voices") if isinstance(document, dict) else None
        if isinstance(entries, dict):
            entries = [{"id": key, **(value or {})} for key, value in entries.items()]
        if not isinstance(entries, list) or not all(isinstance(e, dict) and "id" in e for e in entries):
            raise ValueError(
                f"voice registry {path}: 'voices' must be a list of entries with an id, or a mapping"
            )
        return cls([_voice_from_entry(e, path.parent) for e in entries])

    @property
    def default(self) -> Voice:
        """The voice of requests that name none: "default" if the registry has it, else its first."""
        return self._voices.get("default") or next(iter(self._voices.values()))

    def get(self, voice_id: str) -> Voice | None:
        return self._voices.get(voice_id) if voice_id else self.default

    def __iter__(self) -> Iterator[Voice]:
        return iter(self._voices.values())

    @property
    def ids(self) -> list[str]:
        return list(self._voices)


def _voice_from_entry(entry: dict[str, Any], base: Path) -> Voice:
    voice_id = str(entry["id"])
    family_name = entry.get("family", DEFAULT_FAMILY.name)
    if not isinstance(family_name, str) or family_name not in FAMILIES:
        raise ValueError(f"voice {voice_id!r}: family must be one of {', '.join(FAMILIES)}")
    family = FAMILIES[family_name]
    try:
        parts = family.read_voice(entry, base)
    except ValueError as exc:
        raise ValueError(f"voice {voice_id!r}: {exc}") from exc
    description, pack = str(entry.get("description", "")), str(entry.get("pack", ""))
    return Voice(voice_id, description, family, parts, pack)


def _voice_file_family(path: Path) -> Family | None:
    """The family whose default voice file `path` is (a Chatterbox `conds.pt`), if any."""
    return next(
        (
            f
            for f in FAMILIES.values()
            if f.default_voice_file is not None and Path(f.default_voice_file).suffix == path.suffix
        ),
        None,
    )
