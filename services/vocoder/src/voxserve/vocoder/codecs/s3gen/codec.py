"""The `Codec` implementation for S3Gen packs (Chatterbox / CosyVoice2 speech tokens).

A window is [left context | chunk | lookahead] tokens. The flow runs on the voice's prompt
followed by the window, so its cost per chunk is bounded whatever the utterance's length; each
mel frame starts from noise drawn for its absolute position from the stream's seed, so the
frames a window shares with an offline decode start from the same noise. Windows of different
streams share one flow forward: rows are right-padded (prompts differ in length) and padding is
masked, and guidance doubles the batch inside the flow. HiFT then turns each chunk's mel into
samples, continuing the stream's excitation and waveform (`continuity.py`).
"""

from __future__ import annotations

import dataclasses
import json
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import torch
from safetensors import safe_open

from voxserve.common.logging import get_logger
from voxserve.families.registry import family_of
from voxserve.vocoder.codecs.base import (
    ChunkContext,
    CodecInputError,
    DecodeRow,
    EncodedVoice,
    EncoderUnavailable,
    StaticForward,
    VoiceConditioning,
    check_reference,
)
from voxserve.vocoder.codecs.s3gen import noise
from voxserve.vocoder.codecs.s3gen.checkpoint import load_s3gen
from voxserve.vocoder.codecs.s3gen.config import FULL, FlowConfig, HiftConfig, S3GenConfig
from voxserve.vocoder.codecs.s3gen.continuity import HiftChunk, HiftState, vocode_chunks
from voxserve.vocoder.codecs.s3gen.enrolment import S3Enrolment
from voxserve.vocoder.codecs.s3gen.flow import S3Gen
from voxserve.vocoder.codecs.s3gen.voice import S3Voice

log = get_logger(__name__)

# A warm-up prompt as long as a few seconds of reference audio (25 tokens per second).
WARMUP_PROMPT_TOKENS = 75

CHECKPOINT_FILE = "s3gen.safetensors"
CONFIG_FILE = "s3gen.json"
TURBO_KEY = "flow.decoder.estimator.time_embed_mixer.weight"
# Flow left context when the config sets none: one second of tokens.
DEFAULT_LEFT_CONTEXT_TOKENS = 25


def config_from_json(path: Path) -> S3GenConfig:
    """Sizes from `s3gen.json` ({"flow": {...}, "hift": {...}}, FlowConfig/HiftConfig fields);
    fields it leaves out keep the full-size values."""
    raw = json.loads(path.read_text())

    def plain(key: str, value: Any) -> Any:
        if isinstance(value, list):  # JSON arrays are the config's tuples (dilations: of tuples)
            return tuple(tuple(v) if isinstance(v, list) else v for v in value)
        return value

    def section(cls: type, values: dict[str, Any]) -> Any:
        names = {f.name for f in dataclasses.fields(cls)}
        unknown = sorted(set(values) - names)
        if unknown:
            raise ValueError(f"{path}: unknown {cls.__name__} fields {', '.join(unknown)}")
        return cls(**{k: plain(k, v) for k, v in values.items()})

    return S3GenConfig(
        flow=section(FlowConfig, raw.get("flow", {})), hift=section(HiftConfig, raw.get("hift", {}))
    )


def config_to_json(config: S3GenConfig) -> str:
    return json.dumps(
        {"flow": dataclasses.asdict(config.flow), "hift": dataclasses.asdict(config.hift)}, indent=2
    )


def pack_config(pack: Path) -> S3GenConfig:
    """The pack's sizes (full size without `s3gen.json`); a checkpoint holding the time-embedding
    mixer is the Turbo variant: meanflow, two steps, no guidance."""
    config = config_from_json(pack / CONFIG_FILE) if (pack / CONFIG_FILE).is_file() else FULL
    with safe_open(str(pack / CHECKPOINT_FILE), framework="pt") as f:
        turbo = TURBO_KEY in f.keys()
    if turbo != config.flow.meanflow:
        flow = dataclasses.replace(config.flow, meanflow=turbo, steps=2 if turbo else FULL.flow.steps)
        config = dataclasses.replace(config, flow=flow)
    return config


@dataclass(frozen=True)
class S3Conditioning:
    """A validated voice on the codec's device."""

    prompt_tokens: torch.Tensor  # int64 [P]
    prompt_mel: torch.Tensor  # [2P, 80]
    xvector: torch.Tensor  # [192]


@dataclass
class S3StreamState:
    prompt_noise: torch.Tensor  # [80, 2P]: the flow noise of the prompt frames
    hift: HiftState


class S3GenCodec:
    """The `Codec` for S3Gen packs: conditions on a prompt voice, decodes S3 speech tokens."""

    name = "s3gen"
    codes_per_token = 1

    def __init__(
        self,
        model: S3Gen,
        *,
        left_context_tokens: int = DEFAULT_LEFT_CONTEXT_TOKENS,
        enrolment: S3Enrolment | None = None,
    ) -> None:
        self.model = model.eval().requires_grad_(False)
        self.enrolment = enrolment
        self.config = model.config
        param = next(model.parameters())
        self.device, self.dtype = param.device, param.dtype
        self.sample_rate = self.config.hift.sample_rate
        self.samples_per_token = self.config.samples_per_token
        self.token_vocab_size = self.config.flow.vocab_size
        self.lookahead_tokens = self.config.flow.lookahead_tokens
        self.left_context_tokens = left_context_tokens

    @classmethod
    def from_pack(
        cls, pack_dir: str | Path, device: str | torch.device = "cpu", dtype: torch.dtype = torch.float32
    ) -> S3GenCodec:
        """Load `<pack>/s3gen.safetensors` with the sizes of `<pack>/s3gen.json`."""
        pack = Path(pack_dir)
        model = load_s3gen(pack / CHECKPOINT_FILE, pack_config(pack), dtype=dtype, device=str(device))
        family = family_of(pack)
        enrolment = None if family is None else family.enrolment
        encoder = None if enrolment is None else S3Enrolment(pack, CHECKPOINT_FILE, enrolment, device=device)
        if encoder is not None:
            log.info(
                "s3gen voice encoder", pack=str(pack), complete=not encoder.missing, missing=encoder.missing
            )
        return cls(model, enrolment=encoder)

    def encode_voice(self, audio: np.ndarray, sample_rate: int, reference_tokens: bool) -> EncodedVoice:
        """The flow's prompt of a mono 24 kHz reference (and T3's part on a Chatterbox pack)."""
        check_reference(audio, sample_rate, self.sample_rate, "S3Gen")
        if self.enrolment is None:
            raise EncoderUnavailable("this S3Gen was not loaded from a pack: it has no voice encoder")
        encoded = self.enrolment.encode(audio)
        if encoded.s3_prompt is not None:
            self.condition(encoded.s3_prompt)  # the prompt must suit this flow (shapes, vocabulary)
        return encoded

    def chunk_context(self, context_tokens: int, tolerance: float) -> ChunkContext:
        """S3Gen carries its state across chunks: its lookahead is the flow's own, its left
        context the flow context of each window (set, or one second of tokens)."""
        return ChunkContext(context_tokens or self.left_context_tokens, self.lookahead_tokens)

    def warmup_voice(self, seed: int = 0) -> VoiceConditioning:
        """A valid prompt of random tokens, mel and x-vector (the length of a few seconds of
        reference), for forwards run before any stream arrives."""
        generator = np.random.default_rng(seed)
        flow = self.config.flow
        tokens = WARMUP_PROMPT_TOKENS
        return VoiceConditioning(
            prompt_tokens=tuple(int(t) for t in generator.integers(0, flow.vocab_size, tokens)),
            prompt_mel=generator.standard_normal((flow.token_mel_ratio * tokens, flow.mel_bins)).astype(
                np.float32
            ),
            xvector=tuple(float(x) for x in generator.standard_normal(flow.speaker_dim)),
        )

    def condition(self, voice: VoiceConditioning) -> S3Conditioning:
        """Validate a voice (field names as in `DecodeStart.s3_prompt`) and move it to the device."""
        bins = self.config.flow.mel_bins
        if voice.prompt_mel is None:
            raise CodecInputError(
                "s3_prompt is required: an S3Gen voice is prompt tokens, their mel and an x-vector"
            )
        mel = np.asarray(voice.prompt_mel, dtype=np.float32)
        if mel.ndim == 1:
            if mel.size % bins:
                raise CodecInputError(
                    f"s3_prompt.prompt_mel_f32 holds {mel.size} floats: not whole frames of {bins} bins"
                )
            mel = mel.reshape(-1, bins)
        s3 = S3Voice(
            torch.tensor(voice.prompt_tokens, dtype=torch.int64),
            torch.from_numpy(mel.copy()),
            torch.tensor(voice.xvector, dtype=torch.float32),
        )
        s3.validate(self.config.flow, label="s3_prompt.")
        return S3Conditioning(
            s3.prompt_tokens.to(self.device),
            s3.prompt_mel.to(self.device, self.dtype),
            s3.xvector.to(self.device, self.dtype),
        )

    def static_forward(self) -> StaticForward | None:
        # None: the flow's padded length follows the batch's prompt lengths, its mask the rows'
        # lengths, and HiFT groups rows by their tails and carries phase and tails on the host.
        return None

    def open_stream(self, conditioning: S3Conditioning, seed: int) -> S3StreamState:
        prompt_frames = conditioning.prompt_mel.shape[0]
        return S3StreamState(
            prompt_noise=noise.flow_noise(seed, 0, prompt_frames, self.config.flow.mel_bins).to(
                self.device, self.dtype
            ),
            hift=HiftState.start(seed, self.model.mel2wav, self.device, self.dtype),
        )

    @torch.inference_mode()
    def flow_mels(self, rows: Sequence[DecodeRow]) -> list[torch.Tensor]:
        """Each row's mel [80, 2 x (chunk + lookahead)] from one flow forward over all rows."""
        ratio, bins = self.config.flow.token_mel_ratio, self.config.flow.mel_bins
        sequences, noises, conds, xvectors = [], [], [], []
        for row in rows:
            cond, state = row.conditioning, row.state
            assert isinstance(cond, S3Conditioning) and isinstance(state, S3StreamState)
            sequences.append(torch.cat([cond.prompt_tokens, row.tokens.to(self.device)]))
            first = cond.prompt_mel.shape[0] + ratio * (row.window.start - row.window.left)
            window_noise = noise.flow_noise(state.hift.seed, first, ratio * row.window.length, bins)
            noises.append(torch.cat([state.prompt_noise, window_noise.to(self.device, self.dtype)], dim=1))
            conds.append(cond.prompt_mel.T)
            xvectors.append(cond.xvector)
        lengths = torch.tensor([s.numel() for s in sequences], device=self.device)
        longest = int(lengths.max())
        tokens = torch.zeros(len(rows), longest, dtype=torch.int64, device=self.device)
        start_noise = torch.zeros(len(rows), bins, ratio * longest, dtype=self.dtype, device=self.device)
        prompt = torch.zeros_like(start_noise)
        for i, (s, n, c) in enumerate(zip(sequences, noises, conds, strict=True)):
            tokens[i, : s.numel()] = s
            start_noise[i, :, : n.shape[1]] = n
            prompt[i, :, : c.shape[1]] = c
        flow = self.model.flow
        mu, mask = flow.encode(tokens, lengths)
        mel = flow.decoder(start_noise, mask.to(mu.dtype), mu, flow.speaker(torch.stack(xvectors)), prompt)
        out = []
        for i, row in enumerate(rows):
            first = conds[i].shape[1] + ratio * row.window.left
            out.append(mel[i, :, first : first + ratio * (row.window.chunk_tokens + row.window.right)])
        return out

    def validate_tokens(self, rows: Sequence[DecodeRow]) -> None:
        for row in rows:
            if (
                row.tokens.numel()
                and not 0 <= int(row.tokens.min()) <= int(row.tokens.max()) < self.token_vocab_size
            ):
                raise CodecInputError(f"tokens must lie in [0, {self.token_vocab_size})")

    @torch.inference_mode()
    def decode_windows(self, rows: Sequence[DecodeRow]) -> list[torch.Tensor]:
        self.validate_tokens(rows)
        # A final window with no tokens of its own (End after everything was decoded) is empty.
        work = [i for i, row in enumerate(rows) if row.window.chunk_tokens]
        waves = {i: torch.zeros(0) for i in range(len(rows)) if i not in work}
        if work:
            waves.update(zip(work, self._decode_rows([rows[i] for i in work]), strict=True))
        return [waves[i] for i in range(len(rows))]

    def _decode_rows(self, rows: Sequence[DecodeRow]) -> list[torch.Tensor]:
        ratio = self.config.flow.token_mel_ratio
        mels = self.flow_mels(rows)
        chunks = []
        for row, mel in zip(rows, mels, strict=True):
            state = row.state
            assert isinstance(state, S3StreamState)
            frames = ratio * row.window.chunk_tokens
            chunks.append(HiftChunk(state.hift, ratio * row.window.start, mel[:, :frames], mel[:, frames:]))
        # HiFT rows must agree in length: group them (streams past their first chunks agree).
        waves: dict[int, torch.Tensor] = {}
        groups: dict[tuple[int, int, int], list[int]] = {}
        for i, chunk in enumerate(chunks):
            groups.setdefault(chunk.shape_key, []).append(i)
        for members in groups.values():
            for i, wave in zip(
                members, vocode_chunks(self.model.mel2wav, [chunks[i] for i in members]), strict=True
            ):
                waves[i] = wave
        return [waves[i].float() for i in range(len(rows))]
