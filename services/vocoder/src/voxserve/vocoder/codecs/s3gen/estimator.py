"""The flow's velocity estimator: a one-level 1-D U-Net of causal ResNet blocks and transformer
blocks, conditioned on the time step (and, for meanflow, the target time)."""

from __future__ import annotations

import math
from typing import cast

import torch
import torch.nn.functional as F
from torch import nn

from voxserve.vocoder.codecs.s3gen.config import FlowConfig


def time_embedding(t: torch.Tensor, dim: int, scale: float = 1000.0) -> torch.Tensor:
    """[B] -> [B, dim]: sin | cos of scale x t at geometric frequencies."""
    half = dim // 2
    freqs = torch.exp(
        torch.arange(half, device=t.device, dtype=torch.float32) * -(math.log(10000.0) / (half - 1))
    )
    angles = scale * t.float()[:, None] * freqs[None, :]
    return torch.cat([torch.sin(angles), torch.cos(angles)], dim=-1).to(t.dtype)


class TimestepMLP(nn.Module):
    def __init__(self, dim: int, hidden: int):
        super().__init__()
        self.linear_1 = nn.Linear(dim, hidden)
        self.linear_2 = nn.Linear(hidden, hidden)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.linear_2(F.silu(self.linear_1(x)))


class CausalConv1d(nn.Conv1d):
    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return super().forward(F.pad(x, (self.kernel_size[0] - 1, 0)))


class ChannelsLast(nn.Module):
    """Swap channels and time (LayerNorm normalises the last dimension)."""

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return x.transpose(1, 2)


class CausalBlock(nn.Module):
    def __init__(self, dim_in: int, dim_out: int):
        super().__init__()
        self.block = nn.Sequential(
            CausalConv1d(dim_in, dim_out, 3), ChannelsLast(), nn.LayerNorm(dim_out), ChannelsLast(), nn.Mish()
        )

    def forward(self, x: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
        return self.block(x * mask) * mask


class CausalResnetBlock(nn.Module):
    def __init__(self, dim_in: int, dim_out: int, time_dim: int):
        super().__init__()
        self.block1 = CausalBlock(dim_in, dim_out)
        self.block2 = CausalBlock(dim_out, dim_out)
        self.mlp = nn.Sequential(nn.Mish(), nn.Linear(time_dim, dim_out))
        self.res_conv = nn.Conv1d(dim_in, dim_out, 1)

    def forward(self, x: torch.Tensor, mask: torch.Tensor, t: torch.Tensor) -> torch.Tensor:
        h = self.block1(x, mask) + self.mlp(t)[:, :, None]
        return self.block2(h, mask) + self.res_conv(x * mask)


class Attention(nn.Module):
    def __init__(self, dim: int, heads: int, head_dim: int):
        super().__init__()
        self.heads, self.head_dim = heads, head_dim
        inner = heads * head_dim
        self.to_q = nn.Linear(dim, inner, bias=False)
        self.to_k = nn.Linear(dim, inner, bias=False)
        self.to_v = nn.Linear(dim, inner, bias=False)
        self.to_out = nn.ModuleList([nn.Linear(inner, dim), nn.Dropout(0.0)])

    def forward(self, x: torch.Tensor, bias: torch.Tensor) -> torch.Tensor:
        """x [B, T, C]; bias [B, 1, 1, T] added to the scores (-1e10 on padded keys)."""
        b, t, _ = x.shape

        def heads(y: torch.Tensor) -> torch.Tensor:
            return y.view(b, t, self.heads, self.head_dim).transpose(1, 2)

        out = F.scaled_dot_product_attention(
            heads(self.to_q(x)), heads(self.to_k(x)), heads(self.to_v(x)), bias
        )
        return self.to_out[0](out.transpose(1, 2).reshape(b, t, -1))


class GeluProjection(nn.Module):
    def __init__(self, dim: int, hidden: int):
        super().__init__()
        self.proj = nn.Linear(dim, hidden)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return F.gelu(self.proj(x))


class FeedForward(nn.Module):
    def __init__(self, dim: int, mult: int = 4):
        super().__init__()
        self.net = nn.ModuleList(
            [GeluProjection(dim, dim * mult), nn.Dropout(0.0), nn.Linear(dim * mult, dim)]
        )

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.net[2](self.net[0](x))


class TransformerBlock(nn.Module):
    def __init__(self, dim: int, heads: int, head_dim: int):
        super().__init__()
        self.norm1 = nn.LayerNorm(dim)
        self.attn1 = Attention(dim, heads, head_dim)
        self.norm3 = nn.LayerNorm(dim)
        self.ff = FeedForward(dim)

    def forward(self, x: torch.Tensor, bias: torch.Tensor) -> torch.Tensor:
        x = x + self.attn1(self.norm1(x), bias)
        return x + self.ff(self.norm3(x))


class ConditionalDecoder(nn.Module):
    def __init__(self, config: FlowConfig):
        super().__init__()
        c = config
        ch, td = c.estimator_channels, c.time_mlp_dim
        self.time_embed_dim = c.time_embed_dim
        self.time_mlp = TimestepMLP(c.time_embed_dim, td)
        if c.meanflow:
            self.time_embed_mixer = nn.Linear(2 * td, td, bias=False)

        def transformers() -> nn.ModuleList:
            return nn.ModuleList(
                TransformerBlock(ch, c.estimator_heads, c.estimator_head_dim)
                for _ in range(c.transformer_blocks)
            )

        self.down_blocks = nn.ModuleList(
            [
                nn.ModuleList(
                    [
                        CausalResnetBlock(c.estimator_in_channels, ch, td),
                        transformers(),
                        CausalConv1d(ch, ch, 3),
                    ]
                )
            ]
        )
        self.mid_blocks = nn.ModuleList(
            nn.ModuleList([CausalResnetBlock(ch, ch, td), transformers()]) for _ in range(c.mid_blocks)
        )
        self.up_blocks = nn.ModuleList(
            [nn.ModuleList([CausalResnetBlock(2 * ch, ch, td), transformers(), CausalConv1d(ch, ch, 3)])]
        )
        self.final_block = CausalBlock(ch, ch)
        self.final_proj = nn.Conv1d(ch, c.mel_bins, 1)

    def _time(self, t: torch.Tensor, r: torch.Tensor | None) -> torch.Tensor:
        # Time steps stay float32 (their embedding is computed in float32) whatever the weights.
        dtype = self.time_mlp.linear_1.weight.dtype
        emb = self.time_mlp(time_embedding(t, self.time_embed_dim).to(dtype))
        if hasattr(self, "time_embed_mixer"):
            if r is None:
                raise ValueError("a meanflow estimator needs the target time r")
            other = self.time_mlp(time_embedding(r, self.time_embed_dim).to(dtype))
            emb = self.time_embed_mixer(torch.cat([emb, other], dim=1))
        return emb

    @staticmethod
    def _transformers(blocks: nn.ModuleList, x: torch.Tensor, bias: torch.Tensor) -> torch.Tensor:
        h = x.transpose(1, 2)
        for block in blocks:
            h = block(h, bias)
        return h.transpose(1, 2)

    def forward(
        self,
        x: torch.Tensor,
        mask: torch.Tensor,
        mu: torch.Tensor,
        t: torch.Tensor,
        spks: torch.Tensor,
        cond: torch.Tensor,
        r: torch.Tensor | None = None,
    ) -> torch.Tensor:
        """x, mu, cond [B, 80, T]; mask [B, 1, T]; t [B]; spks [B, 80] -> velocity [B, 80, T]."""
        temb = self._time(t, r)
        h = torch.cat([x, mu, spks[:, :, None].expand(-1, -1, x.shape[-1]), cond], dim=1)
        bias = ((1.0 - mask.to(h.dtype)) * -1.0e10)[:, None, :, :]  # [B, 1, 1, T]
        # Each stage is [resnet, transformer blocks, (down/up-sampling conv)].
        down = cast(nn.ModuleList, self.down_blocks[0])
        h = self._transformers(cast(nn.ModuleList, down[1]), down[0](h, mask, temb), bias)
        skip = h
        h = down[2](h * mask)
        for stage in self.mid_blocks:
            mid = cast(nn.ModuleList, stage)
            h = self._transformers(cast(nn.ModuleList, mid[1]), mid[0](h, mask, temb), bias)
        up = cast(nn.ModuleList, self.up_blocks[0])
        h = self._transformers(
            cast(nn.ModuleList, up[1]), up[0](torch.cat([h, skip], dim=1), mask, temb), bias
        )
        h = up[2](h * mask)
        h = self.final_block(h, mask)
        return self.final_proj(h * mask) * mask
