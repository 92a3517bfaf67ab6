"""Named voices: what a voice id means to the generator.

A spark voice is either fixed (32 BiCodec global token ids, the same timbre every time) or
controllable (a gender/pitch/speed style from which the model generates its own global ids).
"""

from __future__ import annotations

import json
import random
from dataclasses import dataclass
from pathlib import Path

from voxserve.v1 import generator_pb2, speech_pb2

SPARK_SAMPLE_RATE = 16000
TOKENS_PER_SECOND = {"spark": 50}
_GENDERS = {"female": generator_pb2.VoiceStyle.FEMALE, "male": generator_pb2.VoiceStyle.MALE}


@dataclass(frozen=True)
class Voice:
    id: str
    description: str
    family: str = "spark"
    global_ids: tuple[int, ...] | None = None
    gender: str = "female"
    pitch: int = 2
    speed: int = 2

    @property
    def controllable(self) -> bool:
        return self.global_ids is None

    def to_proto(self) -> speech_pb2.Voice:
        return speech_pb2.Voice(
            id=self.id,
            family=self.family,
            sample_rate=SPARK_SAMPLE_RATE,
            description=self.description,
            controllable=self.controllable,
        )

    def style(self, override: generator_pb2.VoiceStyle | None) -> generator_pb2.VoiceStyle:
        style = generator_pb2.VoiceStyle(gender=_GENDERS[self.gender], pitch=self.pitch, speed=self.speed)
        if override is not None:
            style.pitch, style.speed = override.pitch, override.speed
            if override.gender != generator_pb2.VoiceStyle.GENDER_UNSPECIFIED:
                style.gender = override.gender
        return style


def _default_global_ids() -> tuple[int, ...]:
    # A fixed, arbitrary timbre: stable across releases because the seed is fixed.
    rng = random.Random(20240501)
    return tuple(rng.randrange(4096) for _ in range(32))


BUILTIN_VOICES = (
    Voice(
        "default",
        "Fixed voice: the same 32 global tokens for every request",
        global_ids=_default_global_ids(),
    ),
    Voice("female", "Controllable female voice (style pitch/speed 0..4, default 2)", gender="female"),
    Voice("male", "Controllable male voice (style pitch/speed 0..4, default 2)", gender="male"),
)


class VoiceRegistry:
    def __init__(self, voices: tuple[Voice, ...] | list[Voice]):
        if not voices:
            raise ValueError("a voice registry needs at least one voice")
        self._voices = {v.id: v for v in voices}

    @classmethod
    def builtin(cls) -> VoiceRegistry:
        return cls(BUILTIN_VOICES)

    @classmethod
    def from_file(cls, path: Path) -> VoiceRegistry:
        """JSON: {"voices": [{"id", "description", "global_ids" | "gender"/"pitch"/"speed"}]}."""
        entries = json.loads(Path(path).read_text())["voices"]
        voices = []
        for e in entries:
            ids = e.get("global_ids")
            if ids is not None and (len(ids) != 32 or not all(0 <= g < 4096 for g in ids)):
                raise ValueError(f"voice {e['id']!r}: global_ids must be 32 ids in [0, 4096)")
            if e.get("gender", "female") not in _GENDERS:
                raise ValueError(f"voice {e['id']!r}: gender must be female or male")
            voices.append(
                Voice(
                    id=e["id"],
                    description=e.get("description", ""),
                    global_ids=tuple(ids) if ids is not None else None,
                    gender=e.get("gender", "female"),
                    pitch=int(e.get("pitch", 2)),
                    speed=int(e.get("speed", 2)),
                )
            )
        return cls(voices)

    @property
    def default(self) -> Voice:
        """The voice of requests that name none: "default" if the registry has it, else its first."""
        return self._voices.get("default") or next(iter(self._voices.values()))

    def get(self, voice_id: str) -> Voice | None:
        return self._voices.get(voice_id) if voice_id else self.default

    def __iter__(self):  # type: ignore[no-untyped-def]
        return iter(self._voices.values())

    @property
    def ids(self) -> list[str]:
        return list(self._voices)
