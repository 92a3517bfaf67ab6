"""What a model family is, in one frozen description every service looks up: its pack layout,
audio rates, token grammar, voices and codec. A service never branches on a family's name; it
reads the family's description (`voxserve.families.registry`).
"""

from __future__ import annotations

import re
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from enum import IntEnum
from pathlib import Path
from typing import Any, Literal

from voxserve.v1 import generator_pb2, vocoder_pb2


class TokenKind(IntEnum):
    OTHER = 0
    GLOBAL = 1
    SEMANTIC = 2
    START_GLOBAL = 3
    END_GLOBAL = 4
    START_SEMANTIC = 5
    END_SEMANTIC = 6
    EOS = 7


@dataclass(frozen=True)
class TokenGrammar:
    """The audio tokens and markers of one family's tokenizer, by name (ids differ between
    checkpoints; the generator reads them from whatever tokenizer the pack holds)."""

    family: str
    semantic_pattern: re.Pattern[str]
    global_pattern: re.Pattern[str] | None
    """None: the family has no global (voice) tokens."""
    markers: Mapping[TokenKind, str]
    semantic_offset: int = 0
    """Subtracted from N to give the index (Orpheus numbers its audio tokens from 10)."""
    semantic_count: int | None = None
    """Indices at or past this are not audio tokens (None: all that match)."""

    def matches(self, token: str) -> tuple[TokenKind, int] | None:
        if self.global_pattern is not None and (match := self.global_pattern.fullmatch(token)):
            return TokenKind.GLOBAL, int(match.group(1))
        if match := self.semantic_pattern.fullmatch(token):
            index = int(match.group(1)) - self.semantic_offset
            if 0 <= index and (self.semantic_count is None or index < self.semantic_count):
                return TokenKind.SEMANTIC, index
        return None


@dataclass(frozen=True)
class VoiceParts:
    """What one registry voice gives the generator and the vocoder. Which parts a family's voices
    fill is the family's business (its `read_voice`)."""

    global_ids: tuple[int, ...] | None = None
    """Fixed BiCodec global ids (spark)."""
    gender: str = "female"
    pitch: int = 2
    speed: int = 2
    """A controllable style (spark voices with neither global ids nor a speaker)."""
    speaker: str | None = None
    """A speaker name in the prompt (orpheus; speaker-name spark fine-tunes)."""
    s3_prompt: vocoder_pb2.S3Prompt | None = None
    """The vocoder flow's prompt (s3, chatterbox)."""
    chatterbox: generator_pb2.ChatterboxVoice | None = None
    """T3's conditioning (chatterbox)."""
    reference_text: str | None = None
    reference_semantic_ids: tuple[int, ...] = ()
    """A spark voice enrolled with a transcript: the reference's text and semantic ids, which
    lead every prompt (upstream's voice-cloning prompt)."""


@dataclass(frozen=True)
class Enrolment:
    """How a family's voices are enrolled from reference audio. The gateway decodes and checks
    the upload and converts it to mono at `sample_rate`; the vocoder's codec encodes it
    (`Vocoder.EncodeVoice`); `voice_parts` turns the encoding into the voice's parts."""

    sample_rate: int
    """The encoder's input rate: uploads are resampled to it."""
    channel_mix: Literal["first", "mean"]
    """How a multi-channel upload becomes mono: its first channel, or the mean of all (each as
    the family's upstream loader does)."""
    encoder_files: tuple[str, ...]
    """Pack paths the encoder needs besides the codec's checkpoint."""
    voice_parts: Callable[[vocoder_pb2.EncodedVoice, str | None], VoiceParts]
    """(encoding, transcript or None) -> the voice's parts."""
    transcript_tokens: bool = False
    """A transcript asks the encoder for the reference's own tokens (`reference_tokens`)."""
    resample_quality: Literal["VHQ", "HQ"] = "VHQ"
    """soxr's quality for the conversion to `sample_rate`, as the family's upstream loader uses."""
    exact_length: bool = False
    """The converted audio holds exactly ceil(n x rate / original rate) samples (librosa's
    length), padded or cut; False keeps soxr's own length."""
    conditions_generator: bool = False
    """The encoding also conditions the generator's model itself (Chatterbox's T3: a speaker
    embedding and prompt speech tokens), beside the vocoder's prompt."""


VoiceReader = Callable[[Mapping[str, Any], Path], VoiceParts]
"""Reads a voice registry entry (its family's keys; files relative to the given directory),
without torch. Raises ValueError naming the key or the file and what is wrong."""


@dataclass(frozen=True)
class Family:
    name: str
    summary: str
    identifying_path: str
    """A pack of this family has this path (file or directory); families are tried in the
    registry's order."""
    pack_files: tuple[str, ...]
    """Paths every pack of the family must have."""
    sample_rate: int
    samples_per_token: int
    """Samples of one vocoder token (an Orpheus vocoder token is a SNAC frame)."""
    codec: str
    """The vocoder's codec for this family's packs (its codec registry name)."""
    first_chunk_tokens: int
    max_chunk_tokens: int
    """Default first and largest vocoder chunk, in vocoder tokens."""
    read_voice: VoiceReader
    generator_voice_fields: tuple[str, ...]
    """The `GenerateRequest.voice` fields this family's prompt can use."""
    generator_voice_hint: str
    """What the generator says when a request names another voice field."""
    codes_per_token: int = 1
    """Generator tokens per vocoder token: the codes of one frame."""
    grammar: TokenGrammar | None = None
    """The tokenizer's audio tokens; None where the model is not a plain token LM (T3)."""
    voice_from_generator: bool = False
    """The model writes the voice itself (spark globals) unless a voice fixes it: later segments
    of a request reuse what it wrote for the first."""
    sampling_fields: tuple[str, ...] = ()
    """`SamplingParams` fields only this family takes."""
    default_voice_file: str | None = None
    """A voice file that is a pack's whole voice registry when it has no voices.json."""
    registry_keys: tuple[str, ...] = field(default=())
    """The registry entry keys this family's voices take, besides id, family, description, pack."""
    enrolment: Enrolment | None = None
    """None: voices of this family cannot be enrolled from reference audio."""

    @property
    def generator_tokens_per_second(self) -> float:
        return self.sample_rate / self.samples_per_token * self.codes_per_token

    def is_pack(self, root: Path) -> bool:
        return (root / self.identifying_path).exists()
