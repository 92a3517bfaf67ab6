"""Chatterbox's voice encoder: a 16 kHz reference -> `t3.speaker_emb` [256], unit L2 norm.

Upstream (`VoiceEncoder.embeds_from_wavs`, rate 1.3, min coverage 0.8): trim silence as
`librosa.effects.trim(top_db=20)` does, take a 40-bin power mel (no log), cut it into 160-frame
partials 77 frames apart, run each through a 3-layer LSTM and a ReLU projection, L2-normalise
each partial's embedding, average and normalise again. The signal steps run in numpy (float64,
cast to float32 where upstream hands float32 to the network); the network in float32.
"""

from __future__ import annotations

from functools import cache
from pathlib import Path

import numpy as np
import torch
import torch.nn.functional as F
import torchaudio
from torch import nn

from voxserve.vocoder.codecs.base import CodecInputError
from voxserve.vocoder.codecs.checkpoint import load_state_dict

WEIGHTS_FILE = "ve.safetensors"
SAMPLE_RATE = 16000
TRIM_TOP_DB = 20.0
TRIM_FRAME = 2048
TRIM_HOP = 512
TRIM_AMIN = 1e-5
"""librosa's amplitude floor: frames at or below it are at -100 dB whatever the reference."""
N_FFT = 400
HOP = 160
N_MELS = 40
FMAX = 8000.0
PARTIAL_FRAMES = 160
RATE = 1.3
FRAME_STEP = round((SAMPLE_RATE / RATE) / HOP)
"""77 frames between partial starts (upstream rounds with numpy: half to even, not at play here)."""
MIN_COVERAGE = 0.8
HIDDEN = 256
EMBED = 256
LSTM_LAYERS = 3
STFT_BLOCK = 2048
PARTIAL_BATCH = 32
"""Upstream's batch of partials; it also bounds the LSTM's memory on long references."""


def frame_rms(wave: np.ndarray) -> np.ndarray:
    """float64 [1 + L // 512]: RMS over 2048-sample frames every 512 samples, centred, zero-padded
    (`librosa.feature.rms`'s defaults)."""
    n = len(wave)
    padded = np.pad(
        wave.astype(np.float64), (TRIM_FRAME // 2, -(n + TRIM_FRAME) % TRIM_HOP + TRIM_FRAME // 2)
    )
    # A frame is four whole hops: sum the squares per hop once, then four neighbouring sums.
    hops = (padded.reshape(-1, TRIM_HOP) ** 2).sum(axis=1)
    count = 1 + n // TRIM_HOP
    energy = np.convolve(hops, np.ones(TRIM_FRAME // TRIM_HOP), mode="valid")[:count]
    return np.sqrt(energy / TRIM_FRAME)


def trim_bounds(wave: np.ndarray, top_db: float = TRIM_TOP_DB) -> tuple[int, int]:
    """[start, end) of `librosa.effects.trim(wave, top_db)`: a frame is kept when its RMS level is
    within `top_db` of the loudest frame's (both floored at 1e-5); samples from the first kept
    frame's start to the end of the last kept frame's hop."""
    floored = np.maximum(frame_rms(wave), TRIM_AMIN)
    db = 20.0 * np.log10(floored) - 20.0 * np.log10(floored.max())
    kept = np.flatnonzero(db > -top_db)
    if kept.size == 0:
        return 0, 0
    return int(kept[0]) * TRIM_HOP, min(len(wave), (int(kept[-1]) + 1) * TRIM_HOP)


@cache
def mel_basis() -> np.ndarray:
    """librosa's `filters.mel(sr=16000, n_fft=400, n_mels=40, fmin=0, fmax=8000)`: Slaney scale
    and area normalisation, float64 [40, 201]."""
    fb = torchaudio.functional.melscale_fbanks(
        n_freqs=N_FFT // 2 + 1,
        f_min=0.0,
        f_max=FMAX,
        n_mels=N_MELS,
        sample_rate=SAMPLE_RATE,
        norm="slaney",
        mel_scale="slaney",
    )
    basis = fb.T.double().numpy()
    basis.flags.writeable = False
    return basis


def mel_spectrogram(wave: np.ndarray) -> np.ndarray:
    """float32 [1 + L // 160, 40]: |STFT|^2 (n_fft 400, periodic Hann 400, hop 160, centred with
    reflect padding) through the mel basis; no log, no normalisation."""
    padded = np.pad(wave.astype(np.float64), N_FFT // 2, mode="reflect")
    frames = np.lib.stride_tricks.sliding_window_view(padded, N_FFT)[::HOP]
    window = 0.5 - 0.5 * np.cos(2.0 * np.pi * np.arange(N_FFT) / N_FFT)
    basis = mel_basis().T
    # In blocks of frames, so a long reference's spectrum is never held whole.
    blocks = [
        np.abs(np.fft.rfft(frames[i : i + STFT_BLOCK] * window, axis=1)) ** 2 @ basis
        for i in range(0, len(frames), STFT_BLOCK)
    ]
    return np.concatenate(blocks).astype(np.float32)


def partial_layout(n_frames: int) -> tuple[int, int]:
    """(partials, frames they span) for a mel of `n_frames` (upstream's `get_num_wins`): a last,
    partly padded partial counts when at least 80 % of it is real frames, and there is always one."""
    n, remainder = divmod(max(n_frames - PARTIAL_FRAMES + FRAME_STEP, 0), FRAME_STEP)
    if n == 0 or (remainder + PARTIAL_FRAMES - FRAME_STEP) / PARTIAL_FRAMES >= MIN_COVERAGE:
        n += 1
    return n, PARTIAL_FRAMES + FRAME_STEP * (n - 1)


def partials(mel: np.ndarray) -> np.ndarray:
    """mel [T, 40] -> [n, 160, 40]: zero-padded up to the frames the partials span, frames past
    them dropped."""
    n, target = partial_layout(len(mel))
    spanned = np.zeros((target, mel.shape[1]), dtype=np.float32)
    kept = min(target, len(mel))
    spanned[:kept] = mel[:kept]
    starts = np.arange(n) * FRAME_STEP
    return spanned[starts[:, None] + np.arange(PARTIAL_FRAMES)]


class VoiceEncoder(nn.Module):
    """Module names equal `ve.safetensors`'; `similarity_weight/bias` are stored (they scaled
    training's similarity matrix) but not used."""

    def __init__(self) -> None:
        super().__init__()
        self.lstm = nn.LSTM(N_MELS, HIDDEN, num_layers=LSTM_LAYERS, batch_first=True)
        self.proj = nn.Linear(HIDDEN, EMBED)
        self.similarity_weight = nn.Parameter(torch.tensor([10.0]))
        self.similarity_bias = nn.Parameter(torch.tensor([-5.0]))

    def forward(self, mels: torch.Tensor) -> torch.Tensor:
        """Partials [B, 160, 40] -> L2-normalised embeddings [B, 256]."""
        _, (hidden, _) = self.lstm(mels)
        raw = F.relu(self.proj(hidden[-1]))
        return raw / torch.linalg.vector_norm(raw, dim=1, keepdim=True)

    def speaker_embedding(self, wave16k: np.ndarray) -> np.ndarray:
        """A mono 16 kHz reference (all of it) -> float32 [256], unit L2 norm. Raises
        CodecInputError naming `audio` for input it cannot embed."""
        wave = np.asarray(wave16k)
        if wave.ndim != 1:
            raise CodecInputError(f"audio must be mono (1-D samples), got shape {wave.shape}")
        if wave.size == 0:
            raise CodecInputError("audio is empty")
        if not np.issubdtype(wave.dtype, np.floating):
            # Integer PCM would need a scale this function cannot know.
            raise CodecInputError(f"audio must be float samples, got dtype {wave.dtype}")
        # Upstream hands librosa float32 samples.
        wave = wave.astype(np.float32)
        if not np.isfinite(wave).all():
            raise CodecInputError("audio holds NaN or infinite samples")
        start, end = trim_bounds(wave)
        wave = wave[start:end]
        # Every frame at librosa's floor counts as "loud" there, so digital silence would pass the
        # trim whole; it has no voice to embed.
        if end <= start or frame_rms(wave).max() <= TRIM_AMIN:
            raise CodecInputError("audio is silent: nothing is left to embed after trimming silence")
        windows = torch.from_numpy(partials(mel_spectrogram(wave)))
        param = self.proj.weight
        with torch.inference_mode():
            embeds = torch.cat(
                [self(b.to(device=param.device, dtype=torch.float32)) for b in windows.split(PARTIAL_BATCH)]
            )
            mean = embeds.mean(dim=0)
            embedding = (mean / torch.linalg.vector_norm(mean)).cpu().numpy()
        if not np.isfinite(embedding).all():
            # A partial whose projection the ReLU zeroed has no direction; upstream gives NaN.
            raise CodecInputError("audio gives no speaker embedding (a partial's projection is all zero)")
        return embedding.astype(np.float32)


def meta_voice_encoder() -> VoiceEncoder:
    with torch.device("meta"):
        return VoiceEncoder()


def voice_encoder_shapes() -> dict[str, tuple[int, ...]]:
    """`ve.safetensors` name -> shape."""
    return {name: tuple(t.shape) for name, t in meta_voice_encoder().state_dict().items()}


def load_voice_encoder(path: str | Path, device: str | torch.device = "cpu") -> VoiceEncoder:
    """The encoder from `ve.safetensors` (or a pack directory holding it), float32, in eval mode.
    Raises CheckpointError naming missing or misshapen tensors."""
    path = Path(path)
    if path.is_dir():
        path = path / WEIGHTS_FILE
    state = load_state_dict(path, meta_voice_encoder(), dtype=torch.float32, label="voice encoder checkpoint")
    model = VoiceEncoder()
    model.load_state_dict(state, strict=True)
    return model.to(device).eval().requires_grad_(False)
