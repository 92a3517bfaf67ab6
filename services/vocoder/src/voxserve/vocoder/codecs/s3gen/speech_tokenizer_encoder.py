"""The S3 tokenizer v2 encoder: log-mel [B, 128, T] -> hidden states [B, ceil(ceil(T/2)/2), n_state].

Two stride-2 convolutions, then residual blocks of RoPE attention with an FSMN memory on the
values, and an MLP; no absolute positions and no final norm. Module names are upstream's
(`AudioEncoderV2`), so the state dict is the `tokenizer.encoder.*` part of `s3gen.safetensors`.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn

HEAD_DIM = 64
"""RoPE is built for 64 dimensions upstream, so every head is 64 wide: heads = n_state / 64."""
ROPE_THETA = 10000.0
FSMN_KERNEL = 31
MLP_RATIO = 4
MLP_LN_EPS = 1e-5
MASK_BIAS = -1.0e10
"""Added to the attention logits of padded keys, as upstream's `mask_to_bias`."""


def rope_tables(length: int, dtype: torch.dtype, device: torch.device) -> tuple[torch.Tensor, torch.Tensor]:
    """(cos, sin), each [length, HEAD_DIM]: frequency j serves dims j and j + 32.

    In float32 this is upstream's `precompute_freqs_cis` bit for bit (float32 angles, torch.polar).
    """
    freqs = 1.0 / ROPE_THETA ** (torch.arange(0, HEAD_DIM, 2, device=device).to(dtype) / HEAD_DIM)
    angles = torch.outer(torch.arange(length, device=device).to(dtype), freqs)
    table = torch.view_as_real(torch.polar(torch.ones_like(angles), angles))
    cos, sin = table[..., 0], table[..., 1]
    return torch.cat([cos, cos], dim=-1), torch.cat([sin, sin], dim=-1)


def apply_rope(x: torch.Tensor, cos: torch.Tensor, sin: torch.Tensor) -> torch.Tensor:
    """x [B, T, H, 64] -> x·cos + [-x2, x1]·sin (rotate-half layout)."""
    half = x.shape[-1] // 2
    rotated = torch.cat([-x[..., half:], x[..., :half]], dim=-1)
    return x * cos[None, :, None, :] + rotated * sin[None, :, None, :]


class FSMNAttention(nn.Module):
    """Multi-head RoPE attention (key without bias) plus a depthwise-convolution memory on v."""

    def __init__(self, n_state: int) -> None:
        super().__init__()
        self.n_head = n_state // HEAD_DIM
        self.query = nn.Linear(n_state, n_state)
        self.key = nn.Linear(n_state, n_state, bias=False)
        self.value = nn.Linear(n_state, n_state)
        self.out = nn.Linear(n_state, n_state)
        self.fsmn_block = nn.Conv1d(
            n_state, n_state, FSMN_KERNEL, padding=(FSMN_KERNEL - 1) // 2, groups=n_state, bias=False
        )

    def fsmn(self, v: torch.Tensor, keep: torch.Tensor) -> torch.Tensor:
        """v [B, T, n_state], keep [B, T, 1] (1 for real frames) -> memory [B, T, n_state]."""
        v = v * keep
        return (self.fsmn_block(v.transpose(1, 2)).transpose(1, 2) + v) * keep

    def forward(
        self, x: torch.Tensor, bias: torch.Tensor, keep: torch.Tensor, cos: torch.Tensor, sin: torch.Tensor
    ) -> torch.Tensor:
        """x [B, T, n_state]; bias [B, 1, 1, T] (0 or MASK_BIAS per key); keep [B, T, 1]."""
        b, t, n_state = x.shape
        q = self.query(x).view(b, t, self.n_head, HEAD_DIM)
        k = self.key(x).view(b, t, self.n_head, HEAD_DIM)
        v = self.value(x)
        q, k = apply_rope(q, cos, sin), apply_rope(k, cos, sin)
        # Upstream scales q and k by 64^-0.25 each (not the product once); kept for its rounding.
        scale = HEAD_DIM**-0.25
        q = q.permute(0, 2, 1, 3) * scale
        k = k.permute(0, 2, 3, 1) * scale
        logits = q @ k + bias
        logits = logits.to(torch.promote_types(logits.dtype, torch.float32))  # softmax in >= float32
        weights = logits.softmax(dim=-1).to(q.dtype)
        heads = weights @ v.view(b, t, self.n_head, HEAD_DIM).permute(0, 2, 1, 3)
        return self.out(heads.permute(0, 2, 1, 3).reshape(b, t, n_state)) + self.fsmn(v, keep)


class ResidualAttentionBlock(nn.Module):
    def __init__(self, n_state: int, attn_ln_eps: float) -> None:
        super().__init__()
        self.attn = FSMNAttention(n_state)
        self.attn_ln = nn.LayerNorm(n_state, eps=attn_ln_eps)
        self.mlp = nn.Sequential(
            nn.Linear(n_state, MLP_RATIO * n_state), nn.GELU(), nn.Linear(MLP_RATIO * n_state, n_state)
        )
        self.mlp_ln = nn.LayerNorm(n_state, eps=MLP_LN_EPS)

    def forward(
        self, x: torch.Tensor, bias: torch.Tensor, keep: torch.Tensor, cos: torch.Tensor, sin: torch.Tensor
    ) -> torch.Tensor:
        x = x + self.attn(self.attn_ln(x), bias, keep, cos, sin)
        return x + self.mlp(self.mlp_ln(x))


def frames_after_conv(lengths: torch.Tensor) -> torch.Tensor:
    """Valid frames after a k3, stride-2, pad-1 convolution: ceil(n / 2)."""
    return (lengths - 1) // 2 + 1


def valid(lengths: torch.Tensor, total: int) -> torch.Tensor:
    """[B, total] bool: position < length."""
    return torch.arange(total, device=lengths.device)[None, :] < lengths[:, None]


class TokenizerEncoder(nn.Module):
    """Upstream `AudioEncoderV2` (stride 2): mel [B, n_mels, T] -> [B, T/4, n_state]."""

    def __init__(self, n_mels: int, n_state: int, n_layers: int, attn_ln_eps: float) -> None:
        super().__init__()
        if n_state % HEAD_DIM:
            raise ValueError(f"n_state must be a multiple of {HEAD_DIM}, got {n_state}")
        self.conv1 = nn.Conv1d(n_mels, n_state, kernel_size=3, stride=2, padding=1)
        self.conv2 = nn.Conv1d(n_state, n_state, kernel_size=3, stride=2, padding=1)
        self.blocks = nn.ModuleList(ResidualAttentionBlock(n_state, attn_ln_eps) for _ in range(n_layers))

    def forward(self, mel: torch.Tensor, mel_len: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """mel [B, n_mels, T], mel_len [B] -> (hidden [B, T', n_state], lengths [B]); rows past
        their length are padding, and padding never reaches the valid rows."""
        lengths = mel_len.to(device=mel.device, dtype=torch.int64)
        x = mel * valid(lengths, mel.shape[-1])[:, None, :].to(mel.dtype)
        x = F.gelu(self.conv1(x))
        lengths = frames_after_conv(lengths)
        x = x * valid(lengths, x.shape[-1])[:, None, :].to(x.dtype)
        x = F.gelu(self.conv2(x))
        lengths = frames_after_conv(lengths)
        keep_bool = valid(lengths, x.shape[-1])
        x = x.transpose(1, 2)
        keep = keep_bool[:, :, None].to(x.dtype)
        bias = ((1.0 - keep_bool.to(x.dtype)) * MASK_BIAS)[:, None, None, :]
        cos, sin = rope_tables(x.shape[1], x.dtype, x.device)
        for block in self.blocks:
            x = block(x, bias, keep, cos, sin)
        return x, lengths
