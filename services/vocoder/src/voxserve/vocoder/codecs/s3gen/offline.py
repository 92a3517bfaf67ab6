"""Decoding a whole utterance in one pass: tokens + voice + seed -> 24 kHz samples.

This is what streamed decoding is measured against; its randomness comes from `noise.py`, so it
is a pure function of (tokens, voice, seed).
"""

from __future__ import annotations

import torch

from voxserve.vocoder.codecs.s3gen import noise
from voxserve.vocoder.codecs.s3gen.flow import S3Gen
from voxserve.vocoder.codecs.s3gen.voice import S3Voice

# Chatterbox silences the first 480 samples of an utterance and fades in the next 480
# (raised cosine), hiding the vocoder's start-up transient.
FADE_IN_SAMPLES = 480


def fade_in(samples: int, dtype: torch.dtype = torch.float32) -> torch.Tensor:
    """Gains for the first 2 x FADE_IN_SAMPLES samples: zeros, then a raised cosine from 0 to 1."""
    ramp = (torch.cos(torch.linspace(torch.pi, 0.0, FADE_IN_SAMPLES, dtype=torch.float64)) + 1) / 2
    return torch.cat([torch.zeros(FADE_IN_SAMPLES, dtype=torch.float64), ramp]).to(dtype)[:samples]


@torch.inference_mode()
def decode_offline(model: S3Gen, tokens: torch.Tensor, voice: S3Voice, seed: int) -> torch.Tensor:
    """Speech tokens [N] -> waveform [960 N] (float32)."""
    flow, hift = model.config.flow, model.config.hift
    device = next(model.parameters()).device
    prompt = voice.prompt_tokens.to(device)
    all_tokens = torch.cat([prompt, tokens.to(device)])[None]
    frames = flow.token_mel_ratio * all_tokens.shape[1]
    prompt_frames = flow.token_mel_ratio * prompt.numel()
    mel = model.flow(
        all_tokens,
        torch.tensor([all_tokens.shape[1]], device=device),
        voice.prompt_mel[None].to(device),
        voice.xvector[None].to(device),
        noise.flow_noise(seed, 0, frames, flow.mel_bins)[None].to(device),
    )[:, :, prompt_frames:]
    new_frames = mel.shape[-1]
    harmonics = hift.harmonics + 1
    excitation_noise = noise.sine_noise(seed, 0, new_frames, harmonics, hift.samples_per_frame)
    source = model.mel2wav.source(
        mel,
        torch.zeros(1, harmonics, device=device),
        noise.harmonic_phases(seed, harmonics)[None].to(device),
        excitation_noise[None].to(device),
    )
    wave = model.mel2wav.decode(mel, source)[0].float().cpu()
    head = min(wave.numel(), 2 * FADE_IN_SAMPLES)
    wave[:head] *= fade_in(head)
    return wave
