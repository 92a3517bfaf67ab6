"""The flow's token encoder: a conformer (relative-position self-attention, no convolution
module) with a 3-token lookahead convolution and a x2 upsampling to the 50 Hz mel rate."""

from __future__ import annotations

import math

import torch
import torch.nn.functional as F
from torch import nn

from voxserve.vocoder.codecs.s3gen.config import FlowConfig


def relative_positions(length: int, dim: int, dtype: torch.dtype, device: torch.device) -> torch.Tensor:
    """Sinusoidal encodings of relative positions +(T-1) .. -(T-1): [1, 2T-1, dim]."""
    positions = torch.arange(length - 1, -length, -1, dtype=torch.float32, device=device)
    freqs = torch.exp(
        torch.arange(0, dim, 2, dtype=torch.float32, device=device) * -(math.log(10000.0) / dim)
    )
    angles = positions[:, None] * freqs[None, :]
    pe = torch.zeros(2 * length - 1, dim, device=device)
    pe[:, 0::2] = torch.sin(angles)
    pe[:, 1::2] = torch.cos(angles)
    return pe[None].to(dtype)


class LinearEmbed(nn.Module):
    """Linear + LayerNorm, scaled by sqrt(dim); also returns the relative position encodings."""

    def __init__(self, dim: int):
        super().__init__()
        self.dim = dim
        self.out = nn.Sequential(nn.Linear(dim, dim), nn.LayerNorm(dim, eps=1e-5))

    def forward(self, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        x = self.out(x) * math.sqrt(self.dim)
        return x, relative_positions(x.shape[1], self.dim, x.dtype, x.device)


class RelPositionAttention(nn.Module):
    def __init__(self, dim: int, heads: int):
        super().__init__()
        self.heads, self.head_dim = heads, dim // heads
        self.linear_q = nn.Linear(dim, dim)
        self.linear_k = nn.Linear(dim, dim)
        self.linear_v = nn.Linear(dim, dim)
        self.linear_out = nn.Linear(dim, dim)
        self.linear_pos = nn.Linear(dim, dim, bias=False)
        self.pos_bias_u = nn.Parameter(torch.zeros(heads, self.head_dim))
        self.pos_bias_v = nn.Parameter(torch.zeros(heads, self.head_dim))

    def forward(self, x: torch.Tensor, mask: torch.Tensor, pos: torch.Tensor) -> torch.Tensor:
        """x [B, T, D], mask [B, 1, T] (True = real frame), pos [1, 2T-1, D]."""
        b, t, _ = x.shape
        q = self.linear_q(x).view(b, t, self.heads, self.head_dim)
        k = self.linear_k(x).view(b, t, self.heads, self.head_dim).transpose(1, 2)
        v = self.linear_v(x).view(b, t, self.heads, self.head_dim).transpose(1, 2)
        p = self.linear_pos(pos).view(1, -1, self.heads, self.head_dim).transpose(1, 2)
        content = (q + self.pos_bias_u).transpose(1, 2) @ k.transpose(-2, -1)
        position = (q + self.pos_bias_v).transpose(1, 2) @ p.transpose(-2, -1)  # [B, h, T, 2T-1]
        # Column T-1-i+j of row i holds relative position i-j.
        index = (t - 1 - torch.arange(t, device=x.device))[:, None] + torch.arange(t, device=x.device)[
            None, :
        ]
        position = position.gather(-1, index[None, None].expand(b, self.heads, t, t))
        scores = (content + position) / math.sqrt(self.head_dim)
        padded = ~mask[:, None, :, :].bool()  # [B, 1, 1, T]
        attn = torch.softmax(scores.masked_fill(padded, float("-inf")), dim=-1).masked_fill(padded, 0.0)
        out = (attn @ v).transpose(1, 2).reshape(b, t, -1)
        return self.linear_out(out)


class FeedForward(nn.Module):
    def __init__(self, dim: int, hidden: int):
        super().__init__()
        self.w_1 = nn.Linear(dim, hidden)
        self.w_2 = nn.Linear(hidden, dim)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.w_2(F.silu(self.w_1(x)))


class ConformerLayer(nn.Module):
    def __init__(self, dim: int, heads: int, ffn_dim: int):
        super().__init__()
        self.self_attn = RelPositionAttention(dim, heads)
        self.feed_forward = FeedForward(dim, ffn_dim)
        self.norm_mha = nn.LayerNorm(dim, eps=1e-12)
        self.norm_ff = nn.LayerNorm(dim, eps=1e-12)

    def forward(self, x: torch.Tensor, mask: torch.Tensor, pos: torch.Tensor) -> torch.Tensor:
        x = x + self.self_attn(self.norm_mha(x), mask, pos)
        return x + self.feed_forward(self.norm_ff(x))


class PreLookahead(nn.Module):
    """Each frame sees the next `lookahead` frames: conv k=lookahead+1 over right padding, then
    a causal conv k=3, residual."""

    def __init__(self, dim: int, lookahead: int):
        super().__init__()
        self.lookahead = lookahead
        self.conv1 = nn.Conv1d(dim, dim, lookahead + 1)
        self.conv2 = nn.Conv1d(dim, dim, 3)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        h = F.pad(x.transpose(1, 2), (0, self.lookahead))
        h = F.leaky_relu(self.conv1(h))
        h = self.conv2(F.pad(h, (2, 0)))
        return x + h.transpose(1, 2)


class Upsample(nn.Module):
    """Nearest x2, then a causal conv k=5 (left padding 4)."""

    def __init__(self, dim: int, stride: int):
        super().__init__()
        self.stride = stride
        self.conv = nn.Conv1d(dim, dim, 5)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """[B, C, T] -> [B, C, stride x T]."""
        x = F.interpolate(x, scale_factor=float(self.stride), mode="nearest")
        return self.conv(F.pad(x, (4, 0)))


def frame_mask(lengths: torch.Tensor, total: int) -> torch.Tensor:
    """[B] lengths -> [B, 1, total], True on real frames."""
    return (torch.arange(total, device=lengths.device)[None, :] < lengths[:, None])[:, None, :]


class UpsampleConformerEncoder(nn.Module):
    def __init__(self, config: FlowConfig):
        super().__init__()
        d = config.model_dim
        self.ratio = config.token_mel_ratio
        self.embed = LinearEmbed(d)
        self.pre_lookahead_layer = PreLookahead(d, config.lookahead_tokens)
        self.encoders = nn.ModuleList(
            ConformerLayer(d, config.attention_heads, config.ffn_dim) for _ in range(config.blocks)
        )
        self.up_layer = Upsample(d, config.token_mel_ratio)
        self.up_embed = LinearEmbed(d)
        self.up_encoders = nn.ModuleList(
            ConformerLayer(d, config.attention_heads, config.ffn_dim) for _ in range(config.up_blocks)
        )
        self.after_norm = nn.LayerNorm(d, eps=1e-5)

    def forward(self, x: torch.Tensor, lengths: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """Token embeddings [B, T, D] -> frames [B, 2T, D] and their mask [B, 1, 2T].

        Padded frames are zeroed after `embed`: the lookahead convolution would otherwise read
        them, and a right-padded row would differ from the same row decoded alone.
        """
        mask = frame_mask(lengths, x.shape[1])
        x, pos = self.embed(x)
        x = x * mask.transpose(1, 2)
        x = self.pre_lookahead_layer(x)
        for layer in self.encoders:
            x = layer(x, mask, pos)
        x = self.up_layer(x.transpose(1, 2)).transpose(1, 2)
        lengths = lengths * self.ratio
        mask = frame_mask(lengths, x.shape[1])
        x, pos = self.up_embed(x)
        for layer in self.up_encoders:
            x = layer(x, mask, pos)
        return self.after_norm(x), mask
