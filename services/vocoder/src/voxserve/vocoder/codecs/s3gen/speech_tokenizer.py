"""The S3 speech tokenizer v2 (25 Hz, 3^8 = 6561 ids): 16 kHz audio -> S3 speech tokens.

Chatterbox's enrolment runs it twice: on the <= 10 s S3Gen clip (the prompt tokens) and on the
first 6 s for T3 (at most 150 tokens). Its weights are the `tokenizer.*` tensors of
`s3gen.safetensors`; sizes come from their shapes, so a small random tokenizer loads the same way.
Log-mel (chatterbox's override) -> encoder (`speech_tokenizer_encoder.py`) -> FSQ ids, each wave
on its own (batch 1), as upstream's `S3Tokenizer.forward`.
"""

from __future__ import annotations

import json
import re
from pathlib import Path

import numpy as np
import torch
from safetensors import safe_open
from torch import nn

from voxserve.vocoder.codecs.base import CodecInputError
from voxserve.vocoder.codecs.checkpoint import CheckpointError, load_state_dict
from voxserve.vocoder.codecs.s3gen.speech_tokenizer_encoder import HEAD_DIM, TokenizerEncoder

SAMPLE_RATE = 16000
N_FFT = 400
HOP = 160
N_MELS = 128
FRAMES_PER_TOKEN = 4
MAX_FRAMES = 3000
"""30 s of mel frames: longer audio goes through upstream's windowed long-audio path, not built."""
MIN_SAMPLES = N_FFT // 2 + 1
"""The centred STFT reflects N_FFT / 2 samples at each end, which needs more samples than that."""
FSQ_DIM = 8
FSQ_LEVELS = 3
FSQ_SCALE = 0.9990000128746033
PREFIX = "tokenizer."
BUFFERS = ("_mel_filters", "window")
"""Deterministic buffers: loaded where the checkpoint has them (upstream loads s3gen with
strict=False and names them as optional), computed otherwise."""
CONFIG_SECTION = "tokenizer"
"""The tokenizer's settings in a pack's `s3gen.json`: {"tokenizer": {"attn_ln_eps": 1e-6}}."""
# Which `attn_ln` eps the published weights were validated against is not known: the GitHub
# S3Tokenizer has used 1e-6 since Dec 2024, the released pip `s3tokenizer` (0.3.0) 1e-5. Chatterbox
# installs the pip package, unpinned, so 1e-5 is what its users run; a pack can say otherwise.
DEFAULT_ATTN_LN_EPS = 1e-5
_F_SP = 200.0 / 3
_MIN_LOG_HZ = 1000.0
_MIN_LOG_MEL = _MIN_LOG_HZ / _F_SP
_LOG_STEP = float(np.log(6.4) / 27.0)
_BLOCK = re.compile(r"encoder\.blocks\.(\d+)\.")


def _hz_to_mel(hz: np.ndarray) -> np.ndarray:
    """Slaney's scale (librosa's default): linear below 1 kHz, logarithmic above."""
    return np.where(
        hz >= _MIN_LOG_HZ,
        _MIN_LOG_MEL + np.log(np.maximum(hz, _MIN_LOG_HZ) / _MIN_LOG_HZ) / _LOG_STEP,
        hz / _F_SP,
    )


def _mel_to_hz(mel: np.ndarray) -> np.ndarray:
    return np.where(mel >= _MIN_LOG_MEL, _MIN_LOG_HZ * np.exp(_LOG_STEP * (mel - _MIN_LOG_MEL)), _F_SP * mel)


def mel_filters(n_mels: int = N_MELS) -> torch.Tensor:
    """[n_mels, N_FFT // 2 + 1]: librosa's `filters.mel(sr=16000, n_fft=400, n_mels=n_mels)`
    (Slaney scale and area norm, 0..8 kHz), in float64 with librosa's arithmetic, stored float32."""
    fft_freqs = np.fft.rfftfreq(N_FFT, 1.0 / SAMPLE_RATE)
    low, high = _hz_to_mel(np.array([0.0, SAMPLE_RATE / 2]))
    edges = _mel_to_hz(np.linspace(low, high, n_mels + 2))
    widths = np.diff(edges)
    ramps = edges[:, None] - fft_freqs[None, :]
    rising = -ramps[:-2] / widths[:-1, None]
    falling = ramps[2:] / widths[1:, None]
    weights = np.maximum(0.0, np.minimum(rising, falling)) * (2.0 / (edges[2:] - edges[:-2]))[:, None]
    return torch.from_numpy(weights.astype(np.float32))


def token_count(samples16k: int, max_tokens: int | None = None) -> int:
    """Tokens for `samples16k` samples: frames floor(L / 160), tokens ceil(ceil(frames / 2) / 2),
    at most `max_tokens`."""
    frames = samples16k // HOP
    if max_tokens is not None:
        frames = min(frames, FRAMES_PER_TOKEN * max_tokens)
    return ((frames + 1) // 2 + 1) // 2


def fsq_ids(projected: torch.Tensor) -> torch.Tensor:
    """project_down outputs [..., 8] -> ids [...] int64: digit_i = round(tanh(z_i) · 0.999) + 1
    (torch.round: half to even), id = Σ digit_i · 3^i."""
    digits = (projected.tanh() * FSQ_SCALE).round() + 1
    powers = FSQ_LEVELS ** torch.arange(FSQ_DIM, device=projected.device)
    return (digits * powers.to(digits.dtype)).sum(dim=-1).to(torch.int64)


class FSQCodebook(nn.Module):
    def __init__(self, n_state: int) -> None:
        super().__init__()
        self.project_down = nn.Linear(n_state, FSQ_DIM)


class FSQQuantizer(nn.Module):
    """Upstream `FSQVectorQuantization` (its `_codebook` holds the projection)."""

    def __init__(self, n_state: int) -> None:
        super().__init__()
        self._codebook = FSQCodebook(n_state)

    def forward(self, hidden: torch.Tensor) -> torch.Tensor:
        return fsq_ids(self._codebook.project_down(hidden))


class SpeechTokenizer(nn.Module):
    """16 kHz audio -> S3 speech token ids. State dict = `tokenizer.*` of `s3gen.safetensors`."""

    _mel_filters: torch.Tensor
    window: torch.Tensor

    def __init__(
        self,
        n_state: int = 1280,
        n_layers: int = 6,
        *,
        attn_ln_eps: float = DEFAULT_ATTN_LN_EPS,
        n_mels: int = N_MELS,
    ) -> None:
        super().__init__()
        # Computed on the CPU even when the module is built on the meta device: a meta filterbank
        # would leave nothing to fall back on for checkpoints without the buffers.
        with torch.device("cpu"):
            self.register_buffer("_mel_filters", mel_filters(n_mels))
            self.register_buffer("window", torch.hann_window(N_FFT))
        self.encoder = TokenizerEncoder(n_mels, n_state, n_layers, attn_ln_eps)
        self.quantizer = FSQQuantizer(n_state)
        self.n_state, self.n_layers, self.attn_ln_eps = n_state, n_layers, attn_ln_eps

    @property
    def n_heads(self) -> int:
        return self.n_state // HEAD_DIM

    def log_mel(self, wave: torch.Tensor) -> torch.Tensor:
        """wave [L] float -> [n_mels, floor(L / 160)]: centred STFT without its last frame, power,
        log10, floored at the utterance's maximum minus 8, then (l + 4) / 4."""
        window = self.window
        spec = torch.stft(
            wave.to(window.device, window.dtype), N_FFT, HOP, window=window, center=True,
            pad_mode="reflect", return_complex=True,
        )  # fmt: skip
        power = spec[..., :-1].abs() ** 2
        log = (self._mel_filters @ power).clamp(min=1e-10).log10()
        log = torch.maximum(log, log.max() - 8.0)
        return (log + 4.0) / 4.0

    def forward(self, mel: torch.Tensor, mel_len: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """mel [B, n_mels, T] (right-padded), mel_len [B] -> (ids [B, T'] int64, lengths [B])."""
        hidden, lengths = self.encoder(mel, mel_len)
        return self.quantizer(hidden), lengths

    @torch.inference_mode()
    def tokens(self, wave16k: np.ndarray | torch.Tensor, max_tokens: int | None = None) -> torch.Tensor:
        """One 16 kHz wave ([L] or [1, L]) -> ids int64 [token_count(L, max_tokens)] on the CPU.

        `max_tokens` cuts the mel to 4·max_tokens frames after the log-mel of the whole wave (the
        floor at max − 8 sees all of it), as upstream's `max_len`. Raises CodecInputError naming
        `audio` for audio that is not one channel, not finite, too short for one token, or longer
        than 30 s of frames.
        """
        if max_tokens is not None and max_tokens < 1:
            raise ValueError(f"max_tokens must be at least 1, got {max_tokens}")
        wave = self._wave(wave16k)
        frames = wave.numel() // HOP
        used = frames if max_tokens is None else min(frames, FRAMES_PER_TOKEN * max_tokens)
        if used > MAX_FRAMES:
            raise CodecInputError(
                f"audio: {wave.numel() / SAMPLE_RATE:.2f} s gives {used} mel frames; the S3 tokenizer "
                f"encodes at most {MAX_FRAMES} ({MAX_FRAMES * HOP // SAMPLE_RATE} s)"
            )
        mel = self.log_mel(wave)[:, :used]
        ids, _ = self(mel[None], torch.tensor([used], device=mel.device))
        return ids[0].cpu()

    @staticmethod
    def _wave(wave16k: np.ndarray | torch.Tensor) -> torch.Tensor:
        wave = (
            torch.from_numpy(np.asarray(wave16k, dtype=np.float32))
            if isinstance(wave16k, np.ndarray)
            else wave16k.detach().float()
        )
        if wave.ndim == 2 and wave.shape[0] == 1:
            wave = wave[0]
        if wave.ndim != 1:
            raise CodecInputError(f"audio must be one channel of samples, got shape {tuple(wave.shape)}")
        if wave.numel() < MIN_SAMPLES:
            raise CodecInputError(
                f"audio holds {wave.numel()} samples; the S3 tokenizer needs at least {MIN_SAMPLES} "
                f"at {SAMPLE_RATE} Hz for one token"
            )
        if not bool(torch.isfinite(wave).all()):
            raise CodecInputError("audio holds samples that are not finite")
        return wave


def build_meta_speech_tokenizer(
    n_state: int, n_layers: int, *, attn_ln_eps: float = DEFAULT_ATTN_LN_EPS, n_mels: int = N_MELS
) -> SpeechTokenizer:
    """Parameters on the meta device, the two buffers computed on the CPU."""
    with torch.device("meta"):
        return SpeechTokenizer(n_state, n_layers, attn_ln_eps=attn_ln_eps, n_mels=n_mels)


def speech_tokenizer_shapes(n_state: int = 1280, n_layers: int = 6) -> dict[str, tuple[int, ...]]:
    """Checkpoint key (with the `tokenizer.` prefix) -> shape, the two buffers included."""
    model = build_meta_speech_tokenizer(n_state, n_layers)
    return {PREFIX + key: tuple(value.shape) for key, value in model.state_dict().items()}


def attn_ln_eps_setting(config_path: str | Path) -> float:
    """The `attn_ln` eps a pack sets in `s3gen.json` ({"tokenizer": {"attn_ln_eps": x}}); the
    default without the file, the section or the key."""
    path = Path(config_path)
    if not path.is_file():
        return DEFAULT_ATTN_LN_EPS
    section = json.loads(path.read_text()).get(CONFIG_SECTION, {})
    if not isinstance(section, dict):
        raise ValueError(f"{path}: {CONFIG_SECTION!r} must be an object")
    unknown = sorted(set(section) - {"attn_ln_eps"})
    if unknown:
        raise ValueError(f"{path}: unknown {CONFIG_SECTION} settings {', '.join(unknown)}")
    eps = section.get("attn_ln_eps", DEFAULT_ATTN_LN_EPS)
    if isinstance(eps, bool) or not isinstance(eps, int | float) or not 0 < eps < 1:
        raise ValueError(f"{path}: {CONFIG_SECTION}.attn_ln_eps must be a number in (0, 1), got {eps!r}")
    return float(eps)


def load_speech_tokenizer(
    path: str | Path, *, attn_ln_eps: float = DEFAULT_ATTN_LN_EPS, device: str | torch.device = "cpu"
) -> SpeechTokenizer:
    """The tokenizer in `s3gen.safetensors` (its `tokenizer.*` tensors; others are ignored), float32,
    eval mode, without gradients. Width and depth come from the tensors' shapes. Raises
    CheckpointError naming missing or misshapen tensors."""
    label = f"S3 tokenizer checkpoint {path}"
    conv1 = PREFIX + "encoder.conv1.weight"
    buffers: dict[str, torch.Tensor] = {}
    with safe_open(str(path), framework="pt", device="cpu") as f:
        keys = set(f.keys())
        if conv1 not in keys:
            raise CheckpointError(f"{label}: 1 missing tensor(s): {conv1} (no speech tokenizer in the file)")
        n_state, n_mels, _ = f.get_slice(conv1).get_shape()
        blocks = {
            int(m.group(1)) for k in keys if k.startswith(PREFIX) and (m := _BLOCK.match(k[len(PREFIX) :]))
        }
        for name in BUFFERS:
            if PREFIX + name in keys:
                buffers[name] = f.get_tensor(PREFIX + name).float()
    if n_state % HEAD_DIM:
        raise CheckpointError(f"{label}: {conv1} has {n_state} channels, not a multiple of {HEAD_DIM}")
    model = build_meta_speech_tokenizer(
        n_state, max(blocks, default=-1) + 1, attn_ln_eps=attn_ln_eps, n_mels=n_mels
    )
    state = load_state_dict(path, model, prefix=PREFIX, label="S3 tokenizer checkpoint")
    computed = dict(model.named_buffers())
    misshapen = [
        f"{PREFIX}{name}: expected {tuple(computed[name].shape)}, found {tuple(value.shape)}"
        for name, value in buffers.items()
        if value.shape != computed[name].shape
    ]
    if misshapen:
        raise CheckpointError(f"{label}: {len(misshapen)} shape mismatch(es): {'; '.join(misshapen)}")
    model.load_state_dict({**computed, **buffers, **state}, strict=True, assign=True)
    return model.to(device).eval().requires_grad_(False)
