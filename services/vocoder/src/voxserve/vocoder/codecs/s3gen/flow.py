"""Tokens -> mel: speaker affine, token embedding, upsampling conformer encoder, then conditional
flow matching (Euler steps of the estimator's velocity, with classifier-free guidance).

The starting noise is an argument: the caller draws it (per absolute frame position, from the
stream's seed) so the same frame always starts from the same noise.
"""

from __future__ import annotations

import itertools
import math

import torch
import torch.nn.functional as F
from torch import nn

from voxserve.vocoder.codecs.s3gen.config import FlowConfig, S3GenConfig
from voxserve.vocoder.codecs.s3gen.encoder import UpsampleConformerEncoder, frame_mask
from voxserve.vocoder.codecs.s3gen.estimator import ConditionalDecoder
from voxserve.vocoder.codecs.s3gen.hift import HiFT


def time_steps(config: FlowConfig, device: torch.device) -> torch.Tensor:
    """t_0 = 0 .. t_N = 1: cosine-spaced (standard) or evenly spaced (meanflow)."""
    t = torch.linspace(0, 1, config.steps + 1, device=device)
    return t if config.meanflow else 1 - torch.cos(t * 0.5 * math.pi)


class ConditionalFlowMatching(nn.Module):
    def __init__(self, config: FlowConfig):
        super().__init__()
        self.config = config
        self.estimator = ConditionalDecoder(config)

    def forward(
        self,
        noise: torch.Tensor,
        mask: torch.Tensor,
        mu: torch.Tensor,
        spks: torch.Tensor,
        cond: torch.Tensor,
    ) -> torch.Tensor:
        """Integrate from `noise` [B, 80, T] to a mel [B, 80, T]."""
        c = self.config
        x = noise.to(mu.dtype)
        steps = time_steps(c, mu.device)
        b = x.shape[0]
        if c.meanflow:
            for t, r in itertools.pairwise(steps):
                v = self.estimator(x, mask, mu, t.expand(b), spks, cond, r.expand(b))
                x = x + (r - t) * v
            return x
        # Guidance: the unconditional half sees zeros for mu, speaker and prompt condition.
        mask2, mu2 = torch.cat([mask, mask]), torch.cat([mu, torch.zeros_like(mu)])
        spks2, cond2 = torch.cat([spks, torch.zeros_like(spks)]), torch.cat([cond, torch.zeros_like(cond)])
        for t, r in itertools.pairwise(steps):
            v_both = self.estimator(torch.cat([x, x]), mask2, mu2, t.expand(2 * b), spks2, cond2)
            v, v_uncond = v_both[:b], v_both[b:]
            x = x + (r - t) * ((1.0 + c.guidance_rate) * v - c.guidance_rate * v_uncond)
        return x


class Flow(nn.Module):
    def __init__(self, config: FlowConfig):
        super().__init__()
        self.config = config
        self.input_embedding = nn.Embedding(config.vocab_size, config.model_dim)
        self.spk_embed_affine_layer = nn.Linear(config.speaker_dim, config.mel_bins)
        self.encoder = UpsampleConformerEncoder(config)
        self.encoder_proj = nn.Linear(config.model_dim, config.mel_bins)
        self.decoder = ConditionalFlowMatching(config)

    def encode(self, tokens: torch.Tensor, lengths: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """Tokens [B, T] (prompt first) -> mu [B, 80, 2T] and its mask [B, 1, 2T]."""
        mask = frame_mask(lengths, tokens.shape[1]).transpose(1, 2)  # [B, T, 1]
        h = self.input_embedding(tokens) * mask
        h, frames = self.encoder(h, lengths)
        return self.encoder_proj(h).transpose(1, 2), frames

    def speaker(self, xvector: torch.Tensor) -> torch.Tensor:
        """x-vectors [B, 192] -> [B, 80]."""
        return self.spk_embed_affine_layer(F.normalize(xvector, dim=1))

    def forward(
        self,
        tokens: torch.Tensor,
        lengths: torch.Tensor,
        prompt_mel: torch.Tensor,
        xvector: torch.Tensor,
        noise: torch.Tensor,
    ) -> torch.Tensor:
        """tokens [B, T] = prompt tokens then new tokens (right-padded to T), lengths [B];
        prompt_mel [B, P2, 80] (2 frames per prompt token); xvector [B, 192]; noise [B, 80, 2T].
        Returns the mel of every frame [B, 80, 2T], prompt frames included."""
        mu, mask = self.encode(tokens, lengths)
        cond = torch.zeros_like(mu)
        cond[:, :, : prompt_mel.shape[1]] = prompt_mel.transpose(1, 2).to(mu.dtype)
        return self.decoder(noise, mask.to(mu.dtype), mu, self.speaker(xvector.to(mu.dtype)), cond)


class S3Gen(nn.Module):
    """The decode path of `s3gen.safetensors`: `flow.*` and `mel2wav.*`."""

    def __init__(self, config: S3GenConfig):
        super().__init__()
        self.config = config
        self.flow = Flow(config.flow)
        self.mel2wav = HiFT(config.hift)
