"""Named voices: what a voice id means to the generator and the vocoder.

A spark voice is either fixed (32 BiCodec global token ids, the same timbre every time),
controllable (a gender/pitch/speed style from which the model generates its own global ids), or
a named speaker of a speaker-name fine-tune (the model generates the globals for its first
segment; later segments reuse them).
An s3 voice is a conditioning file (prompt speech tokens, their mel, an x-vector) that the
vocoder's flow continues from; the gateway reads it once and sends it with every stream.
An orpheus voice is a speaker name in the generator's prompt.
A chatterbox voice is a `conds.pt` file: its T3 part (speaker embedding, prompt speech tokens,
exaggeration) goes to the generator with every segment, its S3Gen part to the vocoder as an s3
voice's file does.
"""

from __future__ import annotations

import json
import random
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import yaml
from safetensors.numpy import load_file

from voxserve.families.conds import read_conds
from voxserve.families.speakers import check_speaker_name
from voxserve.v1 import generator_pb2, speech_pb2, vocoder_pb2

SPARK_SAMPLE_RATE = 16000
SAMPLE_RATE = {"spark": SPARK_SAMPLE_RATE, "s3": 24000, "orpheus": 24000, "chatterbox": 24000}
SAMPLES_PER_TOKEN = {"spark": 320, "s3": 960, "orpheus": 2048, "chatterbox": 960}
"""Samples of one vocoder token (an Orpheus token is a SNAC frame of 7 generator tokens)."""
GENERATOR_TOKENS_PER_TOKEN = {"orpheus": 7}
GENERATOR_TOKENS_PER_SECOND = {
    family: rate / SAMPLES_PER_TOKEN[family] * GENERATOR_TOKENS_PER_TOKEN.get(family, 1)
    for family, rate in SAMPLE_RATE.items()
}
FAMILIES = tuple(SAMPLE_RATE)
S3_KEYS = ("prompt_tokens", "prompt_mel", "xvector")
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
    s3_prompt: vocoder_pb2.S3Prompt | None = None
    """An s3 voice's conditioning, read from its file."""
    pack: str = ""
    """The model pack the voice belongs to, as the registry names it (informational)."""
    speaker: str | None = None
    """A speaker name of the pack (orpheus voices, speaker-name spark fine-tunes)."""
    chatterbox: generator_pb2.ChatterboxVoice | None = None
    """A chatterbox voice's T3 conditioning, read from its file."""

    @property
    def controllable(self) -> bool:
        return self.family == "spark" and self.global_ids is None and self.speaker is None

    @property
    def reuses_first_voice(self) -> bool:
        """Later segments prefill the global ids the model chose for the first one."""
        return self.family == "spark" and self.global_ids is None

    def to_proto(self) -> speech_pb2.Voice:
        return speech_pb2.Voice(
            id=self.id,
            family=self.family,
            sample_rate=SAMPLE_RATE[self.family],
            description=self.description,
            controllable=self.controllable,
            pack=self.pack,
            speaker=self.speaker or "",
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

        A Chatterbox `conds.pt` (a `.pt` path) is a registry of its one voice, "default": what a
        Chatterbox download without a voices.json serves."""
        path = Path(path)
        if path.suffix == ".pt":
            entry = {"id": "default", "family": "chatterbox", "conditioning": path.name}
            return cls(
                [_voice_from_entry({**entry, "description": "The pack's conds.pt voice"}, path.parent)]
            )
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

    def __iter__(self):  # type: ignore[no-untyped-def]
        return iter(self._voices.values())

    @property
    def ids(self) -> list[str]:
        return list(self._voices)


def _voice_from_entry(entry: dict[str, Any], base: Path) -> Voice:
    voice_id = str(entry["id"])
    family = entry.get("family", "spark")
    description, pack = str(entry.get("description", "")), str(entry.get("pack", ""))
    if family not in FAMILIES:
        raise ValueError(f"voice {voice_id!r}: family must be one of {', '.join(FAMILIES)}")
    if family in ("s3", "chatterbox"):
        if "conditioning" not in entry:
            article = "an" if family == "s3" else "a"
            raise ValueError(f"voice {voice_id!r}: {article} {family} voice needs a conditioning file")
        if family == "s3":
            prompt = read_s3_prompt(base / entry["conditioning"])
            return Voice(voice_id, description, family="s3", s3_prompt=prompt, pack=pack)
        t3, prompt = read_conds_voice(base / entry["conditioning"])
        return Voice(voice_id, description, family=family, s3_prompt=prompt, pack=pack, chatterbox=t3)
    speaker = entry.get("speaker")
    if speaker is not None:
        try:
            check_speaker_name(speaker)
        except ValueError as exc:
            raise ValueError(f"voice {voice_id!r}: {exc}") from exc
        if "global_ids" in entry or "gender" in entry:
            raise ValueError(f"voice {voice_id!r}: a speaker voice takes no global_ids or style")
        return Voice(voice_id, description, family=family, pack=pack, speaker=speaker)
    if family == "orpheus":
        raise ValueError(f"voice {voice_id!r}: an orpheus voice needs a speaker name")
    ids = entry.get("global_ids")
    if ids is not None and (
        not isinstance(ids, list)
        or len(ids) != 32
        or not all(isinstance(g, int) and 0 <= g < 4096 for g in ids)
    ):
        raise ValueError(f"voice {voice_id!r}: global_ids must be 32 ids in [0, 4096)")
    gender = entry.get("gender", "female")
    if gender not in _GENDERS:
        raise ValueError(f"voice {voice_id!r}: gender must be female or male")
    pitch, speed = entry.get("pitch", 2), entry.get("speed", 2)
    if not all(isinstance(v, int) and 0 <= v <= 4 for v in (pitch, speed)):
        raise ValueError(f"voice {voice_id!r}: pitch and speed must be integers 0..4")
    return Voice(
        voice_id,
        description,
        pack=pack,
        global_ids=tuple(ids) if ids is not None else None,
        gender=gender,
        pitch=pitch,
        speed=speed,
    )


def read_s3_prompt(path: Path) -> vocoder_pb2.S3Prompt:
    """An s3 voice file (safetensors: prompt_tokens [P], prompt_mel [2P, 80], xvector [192]) as the
    vocoder's start message carries it. Shapes are checked here; the vocoder checks the rest."""
    try:
        tensors = load_file(str(path))
    except (OSError, ValueError) as exc:
        raise ValueError(f"voice file {path}: {exc}") from exc
    missing = [k for k in S3_KEYS if k not in tensors]
    if missing:
        raise ValueError(f"voice file {path} lacks {', '.join(missing)}")
    tokens, mel, xvector = (tensors[k] for k in S3_KEYS)
    return _s3_prompt(path, tokens, mel, xvector)


def _s3_prompt(path: Path, tokens: np.ndarray, mel: np.ndarray, xvector: np.ndarray) -> vocoder_pb2.S3Prompt:
    if tokens.ndim != 1 or mel.ndim != 2 or mel.shape[0] != 2 * tokens.shape[0] or xvector.ndim != 1:
        raise ValueError(
            f"voice file {path}: expected prompt tokens [P], prompt mel [2P, bins], x-vector [D]; got "
            f"{list(tokens.shape)}, {list(mel.shape)}, {list(xvector.shape)}"
        )
    return vocoder_pb2.S3Prompt(
        prompt_tokens=tokens.astype(np.int64).tolist(),
        prompt_mel_f32=mel.astype("<f4").tobytes(),
        xvector=xvector.astype(np.float32).tolist(),
    )


def read_conds_voice(path: Path) -> tuple[generator_pb2.ChatterboxVoice, vocoder_pb2.S3Prompt]:
    """A Chatterbox `conds.pt` as the generator's voice and the vocoder's prompt. The services
    check values against their models."""
    conds = read_conds(path)
    voice = generator_pb2.ChatterboxVoice(
        speaker_embedding=conds.speaker_embedding.reshape(-1).tolist(),
        prompt_tokens=conds.t3_prompt_tokens.reshape(-1).tolist(),
        exaggeration=conds.exaggeration,
    )
    return voice, _s3_prompt(path, conds.s3_prompt_tokens, conds.prompt_mel, conds.xvector)
