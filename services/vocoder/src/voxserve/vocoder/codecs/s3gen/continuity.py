"""HiFT across chunks: one stream's mel arrives a chunk at a time, its waveform must not show where.

Each chunk is vocoded with the last `HIFT_CONTEXT_FRAMES` mel frames already emitted in front
of it (their excitation reused as it was, not recomputed) and its lookahead frames behind it.
The sine generator continues from the phase the previous chunk ended on, and its noise is drawn
per absolute frame, so the excitation is one continuous signal. The samples a chunk computes
past its own end (from its lookahead) are kept and crossfaded into the next chunk's first
samples with gains that sum to exactly 1; the first sample of a chunk is therefore the very
continuation of the last one sent.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch

from voxserve.vocoder.codecs.s3gen import noise
from voxserve.vocoder.codecs.s3gen.hift import HiFT
from voxserve.vocoder.codecs.s3gen.offline import FADE_IN_SAMPLES, fade_in

# Mel frames of left context for HiFT (its convolutions reach a few frames; CosyVoice2 uses 8).
HIFT_CONTEXT_FRAMES = 8
# Length of the crossfade between a chunk's predicted continuation and the next chunk (one frame).
CROSSFADE_SAMPLES = 480


def crossfade_gains(samples: int) -> torch.Tensor:
    """Gains of the outgoing signal: a raised cosine from 1 towards 0; the incoming one gets 1 - g."""
    position = (torch.arange(samples, dtype=torch.float64) + 0.5) / samples
    return ((1 + torch.cos(torch.pi * position)) / 2).float()


@dataclass
class HiftState:
    """What one stream's next chunk needs from the chunks before it."""

    seed: int
    harmonic_phase: torch.Tensor  # [H+1]
    phase: torch.Tensor  # float64 [H+1]: accumulated cycles (mod 1) at the end of emitted audio
    mel_tail: torch.Tensor  # [80, k], k <= HIFT_CONTEXT_FRAMES: the last mel frames emitted
    source_tail: torch.Tensor  # [1, k x samples per frame]: their excitation
    wave_tail: torch.Tensor  # the samples predicted to follow the last emitted one

    @classmethod
    def start(cls, seed: int, hift: HiFT, device: torch.device, dtype: torch.dtype) -> HiftState:
        harmonics = hift.config.harmonics + 1
        return cls(
            seed=seed,
            harmonic_phase=noise.harmonic_phases(seed, harmonics).to(device),
            phase=torch.zeros(harmonics, dtype=torch.float64, device=device),
            mel_tail=torch.zeros(hift.config.mel_bins, 0, dtype=dtype, device=device),
            source_tail=torch.zeros(1, 0, dtype=dtype, device=device),
            wave_tail=torch.zeros(0, device=device),
        )


@dataclass(frozen=True)
class HiftChunk:
    """One row of HiFT work: a chunk's mel frames and the lookahead frames after it."""

    state: HiftState
    first_frame: int
    """Absolute index of the chunk's first mel frame within the stream."""
    mel: torch.Tensor  # [80, chunk frames]
    lookahead_mel: torch.Tensor  # [80, lookahead frames]; none on a stream's last chunk

    @property
    def shape_key(self) -> tuple[int, int, int]:
        return self.state.mel_tail.shape[1], self.mel.shape[1], self.lookahead_mel.shape[1]


def vocode_chunks(hift: HiFT, chunks: list[HiftChunk]) -> list[torch.Tensor]:
    """Waveforms of chunks of one shape (tail, chunk and lookahead frames), in one forward.

    Advances each chunk's stream state; returns exactly chunk frames x samples per frame samples
    per row.
    """
    c = hift.config
    spf = c.samples_per_frame
    tail, frames, ahead = chunks[0].shape_key
    if any(ch.shape_key != (tail, frames, ahead) for ch in chunks):
        raise ValueError("chunks vocoded together must have equal tail, chunk and lookahead lengths")
    device = chunks[0].mel.device
    mel = torch.stack([torch.cat([ch.state.mel_tail, ch.mel, ch.lookahead_mel], dim=1) for ch in chunks])
    f0 = hift.f0_predictor(mel).repeat_interleave(spf, dim=1)[:, tail * spf :]
    harmonics = c.harmonics + 1
    sine_noise = torch.stack(
        [noise.sine_noise(ch.state.seed, ch.first_frame, frames + ahead, harmonics, spf) for ch in chunks]
    ).to(device)
    start_phase = torch.stack([ch.state.phase for ch in chunks])
    harmonic_phase = torch.stack([ch.state.harmonic_phase for ch in chunks])
    fresh = hift.m_source(hift.m_source.sine_waves(f0, start_phase, harmonic_phase, sine_noise))
    source = torch.cat([torch.stack([ch.state.source_tail for ch in chunks]), fresh.to(mel.dtype)], dim=2)
    wave = hift.decode(mel, source)
    advance = hift.m_source.cycles(f0[:, : frames * spf]).sum(dim=-1)
    gains = crossfade_gains(CROSSFADE_SAMPLES).to(device)
    out = []
    for i, ch in enumerate(chunks):
        state = ch.state
        own = wave[i, tail * spf : (tail + frames) * spf].clone()
        overlap = min(state.wave_tail.numel(), own.numel())
        if overlap:
            g = gains[:overlap]
            own[:overlap] = g * state.wave_tail[:overlap] + (1 - g) * own[:overlap]
        if ch.first_frame * spf < 2 * FADE_IN_SAMPLES:
            head = min(own.numel(), 2 * FADE_IN_SAMPLES - ch.first_frame * spf)
            own[:head] *= fade_in(2 * FADE_IN_SAMPLES, own.dtype).to(device)[ch.first_frame * spf :][:head]
        kept = min(HIFT_CONTEXT_FRAMES, tail + frames)
        state.phase = (state.phase + advance[i]) % 1
        state.mel_tail = mel[i, :, tail + frames - kept : tail + frames]
        state.source_tail = source[i, :, (tail + frames - kept) * spf : (tail + frames) * spf]
        state.wave_tail = wave[i, (tail + frames) * spf : (tail + frames) * spf + CROSSFADE_SAMPLES].clone()
        out.append(own)
    return out
