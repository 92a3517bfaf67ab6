"""Prompt strings (plain text, no chat template): Spark-TTS's, the s3 family's (`s3_prompt`) and
Orpheus's (`orpheus_prompt`).

- ``fixed_voice``: the voice's 32 global tokens are known (a registered voice, or a later segment of a
  request reusing the globals of its first segment); the model continues with the semantic tokens.
- ``cloning``: upstream's voice-cloning prompt, for a voice enrolled from reference audio with its
  transcript: the transcript joined to the text, the voice's globals, then the reference's semantic
  tokens after ``<|start_semantic_token|>``; the model continues the reference's semantic tokens.
- ``controllable``: gender/pitch/speed labels only; the model generates the 32 global tokens itself,
  then the semantic tokens.
- ``controllable_with_globals``: the controllable prompt continued with a global block. The generator
  runs a controllable request in two phases: a first, constrained phase generates exactly the 32 global
  tokens, then the same sequence (this prompt) is continued for the semantic tokens. The model sees the
  very text it would have produced in one pass, and the globals are known before any audio is decoded.
- ``speaker`` / ``speaker_with_globals``: the same two phases for fine-tunes that name one of a fixed
  set of speakers (`voxserve.families.speakers`) instead of the style block.

Special tokens inside the text would be read as control tokens by the tokenizer, so text containing
anything shaped like ``<|...|>`` or ``<custom_token_N>`` is refused. Emotion tags such as
``<laugh>`` are text and pass through.
"""

from __future__ import annotations

import re
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Literal, Protocol

import numpy as np

from voxserve.families.spark import GLOBAL_TOKENS_PER_VOICE
from voxserve.families.speakers import SpeakerSet, check_speaker_name

NUM_STYLE_LEVELS = 5
# The position is the N of <|gender_N|>, as upstream (female 0, male 1).
GENDERS: tuple[str, ...] = ("female", "male")

Gender = Literal["female", "male"]

_SPECIAL_TOKEN_SHAPE = re.compile(r"<\|[^<>|]*\|>|<custom_token_\d+>")

# Orpheus's markers, by name (their ids come from the tokenizer).
ORPHEUS_START_OF_HUMAN = "<custom_token_3>"
ORPHEUS_END_OF_HUMAN = "<custom_token_4>"
ORPHEUS_START_OF_AI = "<custom_token_5>"
ORPHEUS_START_OF_SPEECH = "<custom_token_1>"
LLAMA3_BEGIN_OF_TEXT = "<|begin_of_text|>"
LLAMA3_END_OF_TURN = "<|eot_id|>"


class HasVocabSizes(Protocol):
    @property
    def num_global(self) -> int: ...

    @property
    def num_semantic(self) -> int: ...


@dataclass(frozen=True)
class SparkPromptBuilder:
    """Builds prompts for a tokenizer with ``num_global`` BiCodec global tokens and
    ``num_semantic`` semantic tokens (0: a builder for prompts without a reference)."""

    num_global: int
    num_semantic: int = 0

    @classmethod
    def from_token_table(cls, table: HasVocabSizes) -> SparkPromptBuilder:
        return cls(num_global=table.num_global, num_semantic=table.num_semantic)

    def fixed_voice(self, text: str, global_ids: Sequence[int] | np.ndarray) -> str:
        """``global_ids`` are the 32 BiCodec global indices (0..num_global-1), not token ids."""
        return (
            f"<|task_tts|><|start_content|>{_checked_text(text)}<|end_content|>"
            f"{self.global_block(global_ids)}"
        )

    def cloning(
        self,
        text: str,
        global_ids: Sequence[int] | np.ndarray,
        reference_text: str,
        reference_ids: Sequence[int] | np.ndarray,
    ) -> str:
        """Upstream's cloning prompt: ``reference_text`` (the reference's transcript) joined to
        ``text`` with no separator, then the globals, then the reference's semantic indices
        (0..num_semantic-1, not token ids) after ``<|start_semantic_token|>``."""
        content = _checked_text(reference_text, "reference_text") + _checked_text(text)
        # Each part is clean, but their join could still spell a special token.
        _checked_text(content, "reference_text joined to text")
        semantic = "".join(f"<|bicodec_semantic_{n}|>" for n in self._checked_reference_ids(reference_ids))
        return (
            f"<|task_tts|><|start_content|>{content}<|end_content|>"
            f"{self.global_block(global_ids)}<|start_semantic_token|>{semantic}"
        )

    def controllable(self, text: str, gender: Gender, pitch: int, speed: int) -> str:
        """``gender`` is "female" or "male"; ``pitch`` and ``speed`` are levels 0 (lowest) .. 4."""
        gender_n = _gender_index(gender)
        pitch_n = _level("pitch", pitch)
        speed_n = _level("speed", speed)
        return (
            f"<|task_controllable_tts|><|start_content|>{_checked_text(text)}<|end_content|>"
            f"<|start_style_label|><|gender_{gender_n}|><|pitch_label_{pitch_n}|>"
            f"<|speed_label_{speed_n}|><|end_style_label|>"
        )

    def controllable_with_globals(
        self, text: str, gender: Gender, pitch: int, speed: int, global_ids: Sequence[int] | np.ndarray
    ) -> str:
        block = self.global_block(global_ids)
        return self.controllable(text, gender, pitch, speed) + block

    def speaker(self, text: str, speakers: SpeakerSet, name: str) -> str:
        """A speaker-name fine-tune's prompt; the model continues with the global block."""
        return speakers.render(speakers.check(name), _checked_text(text))

    def speaker_with_globals(
        self, text: str, speakers: SpeakerSet, name: str, global_ids: Sequence[int] | np.ndarray
    ) -> str:
        return self.speaker(text, speakers, name) + self.global_block(global_ids)

    def global_block(self, global_ids: Sequence[int] | np.ndarray) -> str:
        """``<|start_global_token|>`` + the 32 global tokens + ``<|end_global_token|>``."""
        checked = self._checked_global_ids(global_ids)
        tokens = "".join(f"<|bicodec_global_{n}|>" for n in checked)
        return f"<|start_global_token|>{tokens}<|end_global_token|>"

    def _checked_global_ids(self, global_ids: Sequence[int] | np.ndarray) -> list[int]:
        values = list(global_ids)
        if len(values) != GLOBAL_TOKENS_PER_VOICE:
            raise ValueError(f"global_ids must hold exactly {GLOBAL_TOKENS_PER_VOICE} ids, got {len(values)}")
        checked = []
        for position, value in enumerate(values):
            if not _is_int(value) or not 0 <= value < self.num_global:
                raise ValueError(
                    f"global_ids[{position}] = {value!r} is not an integer in 0..{self.num_global - 1}"
                )
            checked.append(int(value))
        return checked

    def _checked_reference_ids(self, reference_ids: Sequence[int] | np.ndarray) -> list[int]:
        values = list(reference_ids)
        if not values:
            raise ValueError("reference_semantic_ids must not be empty")
        bad = next(
            (i for i, v in enumerate(values) if not _is_int(v) or not 0 <= v < self.num_semantic), None
        )
        if bad is not None:
            raise ValueError(
                f"reference_semantic_ids[{bad}]={values[bad]!r} is not an integer in [0, {self.num_semantic})"
            )
        return [int(v) for v in values]


def s3_prompt(text: str) -> str:
    """The s3 family's prompt: the text, then the start of speech; the model writes speech tokens
    up to ``<|end_speech|>``. (The voice lives in the vocoder's prompt, not in the LM's.)"""
    return f"<|task_tts|><|start_content|>{_checked_text(text)}<|end_content|><|start_speech|>"


def orpheus_prompt(text: str, voice: str) -> str:
    """Orpheus's prompt: a human turn holding ``"{voice}: {text}"``, then the start of the AI turn
    and of speech; the model writes audio tokens up to its end-of-speech marker."""
    name = check_speaker_name(voice)
    return (
        f"{ORPHEUS_START_OF_HUMAN}{LLAMA3_BEGIN_OF_TEXT}{name}: {_checked_text(text)}{LLAMA3_END_OF_TURN}"
        f"{ORPHEUS_END_OF_HUMAN}{ORPHEUS_START_OF_AI}{ORPHEUS_START_OF_SPEECH}"
    )


def _checked_text(text: str, field: str = "text") -> str:
    if not isinstance(text, str):
        raise TypeError(f"{field} must be a str, got {type(text).__name__}")
    if not text.strip():
        raise ValueError(f"{field} must not be empty")
    if match := _SPECIAL_TOKEN_SHAPE.search(text):
        raise ValueError(f"{field} must not contain special-token markup such as {match.group(0)!r}")
    return text


def _gender_index(gender: str) -> int:
    if gender not in GENDERS:
        raise ValueError(f"gender must be one of {', '.join(GENDERS)}, got {gender!r}")
    return GENDERS.index(gender)


def _level(field: str, value: int) -> int:
    if not _is_int(value) or not 0 <= value < NUM_STYLE_LEVELS:
        raise ValueError(f"{field} must be an integer in 0..{NUM_STYLE_LEVELS - 1}, got {value!r}")
    return int(value)


def _is_int(value: object) -> bool:
    return isinstance(value, int | np.integer) and not isinstance(value, bool | np.bool_)
