"""The small interface every vocoder codec implements.

The scheduler only ever talks to a codec through this interface: it conditions a stream once on
its voice, opens the stream's decode state, then decodes batches of equal-length token windows
for many streams in one forward. A codec returns each row's own samples, context cropped away.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any, NamedTuple, Protocol, Self

import numpy as np
import torch


@dataclass(frozen=True)
class VoiceConditioning:
    """What a stream's start message says about its voice.

    BiCodec uses the 32 global token ids; S3Gen a prompt (speech tokens, their mel, an x-vector).
    """

    global_ids: tuple[int, ...] = ()
    prompt_tokens: tuple[int, ...] = ()
    prompt_mel: np.ndarray | None = None
    """float32 [frames, mel bins]."""
    xvector: tuple[float, ...] = ()


class CodecInputError(ValueError):
    """Raised for conditioning or tokens a codec cannot accept; the message names field and limit."""


@dataclass(frozen=True)
class EncodedVoice:
    """A reference recording's voice conditioning, as `Vocoder.EncodeVoice` returns it."""

    global_ids: tuple[int, ...] = ()
    """BiCodec: the speaker's global token ids."""
    reference_semantic_ids: tuple[int, ...] = ()
    """BiCodec, when asked for: the semantic ids of the whole reference."""
    s3_prompt: VoiceConditioning | None = None
    """S3Gen: the flow's prompt (prompt_tokens, prompt_mel [2 x tokens, 80], xvector)."""
    speaker_embedding: tuple[float, ...] = ()
    t3_prompt_tokens: tuple[int, ...] = ()
    """Chatterbox: T3's speaker embedding and prompt speech tokens."""


def check_reference(
    audio: np.ndarray, sample_rate: int, codec_rate: int, codec: str, min_samples: int = 0
) -> None:
    """Refuse a reference a codec's `encode_voice` cannot take (CodecInputError naming
    `sample_rate` or `audio`): it must be mono float at the codec's rate, long enough, finite."""
    if sample_rate != codec_rate:
        raise CodecInputError(f"sample_rate is {sample_rate}; {codec} enrols at {codec_rate} Hz")
    if not isinstance(audio, np.ndarray) or audio.ndim != 1 or not np.issubdtype(audio.dtype, np.floating):
        shape = getattr(audio, "shape", None)
        raise CodecInputError(f"audio must be a 1-D float array (mono), got {type(audio).__name__} {shape}")
    if audio.size < min_samples:
        raise CodecInputError(
            f"audio holds {audio.size} samples; it must hold at least {min_samples} "
            f"({min_samples / codec_rate * 1000:g} ms)"
        )
    if not np.isfinite(audio).all():
        raise CodecInputError("audio holds non-finite samples")


class EncoderUnavailable(RuntimeError):
    """The pack holds no voice encoder for this codec; the message names the missing files."""


@dataclass(frozen=True)
class Window:
    """One unit of decode work: tokens [start, end) decoded with context on both sides.

    `left` tokens before `start` and `right` after `end` are context only; a final window has
    no right context and ends the stream.
    """

    stream_id: int
    start: int
    end: int
    left: int
    right: int
    final: bool

    @property
    def length(self) -> int:
        return self.left + (self.end - self.start) + self.right

    @property
    def chunk_tokens(self) -> int:
        return self.end - self.start


@dataclass
class DecodeRow:
    """One row of a batch: a window, its tokens (context included) and its stream's codec state."""

    window: Window
    tokens: torch.Tensor  # int64 [window.length], or [window.length, codes_per_token]
    conditioning: Any
    state: Any


class ChunkContext(NamedTuple):
    """Tokens of context a window carries on each side of its chunk."""

    left_tokens: int
    lookahead_tokens: int


class StaticForward(Protocol):
    """A codec's batched forward as a function of fixed-shape tensors, which never waits for the
    host: what a CUDA graph can record once and replay (`device_decode`)."""

    samples_per_token: int

    def inputs(self, rows: Sequence[DecodeRow]) -> tuple[torch.Tensor, ...]:
        """The forward's inputs for these rows, batch first; validated, on any device."""
        ...

    def forward(self, *inputs: torch.Tensor) -> torch.Tensor:
        """Whole-window samples [B, T x samples_per_token], float32."""
        ...


class Codec(Protocol):
    """A token-to-waveform decoder loaded from a model pack."""

    name: str
    """Its name in the codec registry, which families name (`Family.codec`) and start messages
    carry (`DecodeStart.codec`)."""
    sample_rate: int
    samples_per_token: int
    token_vocab_size: int
    """Valid token ids are 0 .. token_vocab_size - 1."""
    codes_per_token: int
    """Ids that make one token: 1, or a frame of several codes (SNAC: 7), sent whole."""

    @classmethod
    def from_pack(
        cls, pack_dir: str | Path, device: str | torch.device = "cpu", dtype: torch.dtype = torch.float32
    ) -> Self:
        """Load the codec from a model pack's files, in the upstream checkpoint layout."""
        ...

    def chunk_context(self, context_tokens: int, tolerance: float) -> ChunkContext:
        """The context of every window: `context_tokens` is the configured context (0: the
        codec's own), `tolerance` the largest sample difference between a streamed and an
        offline decode allowed where the codec measures its context."""
        ...

    def condition(self, voice: VoiceConditioning) -> Any:
        """Per-stream conditioning computed once at stream start (validates the voice)."""
        ...

    def warmup_voice(self, seed: int = 0) -> VoiceConditioning:
        """A valid voice (random where the codec takes one) for the forwards of the warm-up,
        which run before any stream arrives."""
        ...

    def open_stream(self, conditioning: Any, seed: int) -> Any:
        """Per-stream decode state (None for a codec that keeps none), handed back with every row."""
        ...

    def decode_windows(self, rows: Sequence[DecodeRow]) -> list[torch.Tensor]:
        """Decode a batch of equal-length windows in one forward.

        Returns, per row, float32 samples of its own tokens: [(end - start) x samples_per_token].
        Rows are independent of each other; a stateful codec advances each row's state.
        """
        ...

    def static_forward(self) -> StaticForward | None:
        """The forward in fixed shapes, for codecs whose rows are independent and stateless
        between calls; None where shapes or state follow the rows."""
        ...

    def encode_voice(self, audio: np.ndarray, sample_rate: int, reference_tokens: bool) -> EncodedVoice:
        """The voice conditioning of a mono reference recording (float32 at the family's
        enrolment rate). Raises EncoderUnavailable when the pack has no encoder, CodecInputError
        for audio it cannot encode. Blocking: the vocoder runs it off its event loop."""
        ...


class WithoutVoiceEncoder:
    """For codecs whose packs hold no voice encoder."""

    name: str

    def encode_voice(self, audio: np.ndarray, sample_rate: int, reference_tokens: bool) -> EncodedVoice:
        raise EncoderUnavailable(f"codec {self.name} has no voice encoder: its voices are enrolled elsewhere")


class WindowDecoder(Protocol):
    """A stateless codec: any window decodes the same whatever was decoded before it."""

    samples_per_token: int
    token_vocab_size: int
    receptive_field_tokens: int
    """Theoretical one-sided receptive field in tokens: a window with this much context on both
    sides decodes its middle exactly as a full decode would."""

    def condition(self, voice: VoiceConditioning) -> torch.Tensor: ...

    def decode(self, tokens: torch.Tensor, conditioning: torch.Tensor) -> torch.Tensor:
        """tokens int64 [B, T], stacked conditioning [B, ...] -> samples [B, T x samples_per_token]."""
        ...


def crop_rows(audio: torch.Tensor, rows: Sequence[DecodeRow], samples_per_token: int) -> list[torch.Tensor]:
    """Each row's own samples out of whole-window audio [B, T x samples_per_token]."""
    out = []
    for i, row in enumerate(rows):
        first = row.window.left * samples_per_token
        out.append(audio[i, first : first + row.window.chunk_tokens * samples_per_token])
    return out
