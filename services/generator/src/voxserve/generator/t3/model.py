"""T3 as a vLLM model: the Llama backbone run twice per token, once for the conditioned branch and
once for the unconditional one, each branch with its own attention layer and so its own KV cache.

How a request reaches it:
- The prompt arrives as embeddings (`conditioning.T3Prompt`: conditioning rows, text rows with
  their learned positions, the doubled speech start row), computed outside the engine because they
  depend on the voice and on the per-request exaggeration.
- The unconditional branch differs only in its text rows, which are the text positions alone. The
  model rebuilds them itself from the position streams below, so one prompt serves both branches.
- Every decoded token needs its learned speech position, `speech_pos_emb(i + 1)` for step i, and
  the engine only tells a model a token's place in its sequence. The model therefore asks vLLM for
  three position streams (the M-RoPE interface, `get_mrope_input_positions`): it places each
  request's first speech step at the same rotary position, `speech_origin + 1`, so a decoded
  token's speech position is its rotary position minus `speech_origin`. Rotary attention depends
  only on differences between positions, so shifting a whole sequence leaves its attention as it
  was; the angles are computed in float64 so the shift costs no precision either.

Stream meanings (prompt row k of a prompt of L rows, delta = speech_origin + 1 - L):
    rotary   k + delta for every prompt row; decoded tokens get position + delta from vLLM
    text     the text row's index j for text rows; the rotary value for every other row
    decode   0 for prompt rows; decoded tokens carry the rotary value in all three streams

The forward returns both branches' final hidden states side by side ([tokens, 2 * hidden]) and
`compute_logits` returns both branches' logits side by side ([rows, 2 * speech_vocab]); the
`guidance` logits processor combines them with each request's own weight and masks the second half.
"""

from __future__ import annotations

import math
from collections.abc import Iterable
from typing import Any

import torch
from torch import nn
from vllm.config import VllmConfig
from vllm.model_executor.layers.activation import SiluAndMul
from vllm.model_executor.layers.attention import Attention
from vllm.model_executor.layers.layernorm import RMSNorm
from vllm.model_executor.layers.linear import (
    MergedColumnParallelLinear,
    QKVParallelLinear,
    RowParallelLinear,
)
from vllm.model_executor.models.interfaces import SupportsMRoPE

from voxserve.generator.t3.checkpoint import check_t3_tensors
from voxserve.generator.t3.config import T3Config
from voxserve.generator.t3.model_dir import max_positions, speech_origin

# Upstream tensors the engine does not use: the conditioning encoder and the text embedding run
# outside it (`conditioning`), `embed_tokens` is never used upstream and `text_head` is for training.
UNUSED_PREFIXES = ("cond_enc.", "text_emb.", "tfmr.embed_tokens.", "text_head.")

STACKED = (
    # (our parameter, upstream name, shard)
    (".qkv_proj", ".q_proj", "q"),
    (".qkv_proj", ".k_proj", "k"),
    (".qkv_proj", ".v_proj", "v"),
    (".gate_up_proj", ".gate_proj", 0),
    (".gate_up_proj", ".up_proj", 1),
)


def llama3_inverse_frequencies(config: T3Config) -> torch.Tensor:
    """Llama 3 rotary frequencies: long wavelengths slowed by `rope_factor`, short ones kept, the
    band between blended. Computed in float32 as upstream computes them, so the rotations match."""
    dims = torch.arange(0, config.head_dim, 2, dtype=torch.int64).float()
    inv = 1.0 / config.rope_theta ** (dims / config.head_dim)
    low_wavelen = config.rope_original_max_positions / config.rope_low_freq_factor
    high_wavelen = config.rope_original_max_positions / config.rope_high_freq_factor
    wavelen = 2 * math.pi / inv
    scaled = torch.where(wavelen > low_wavelen, inv / config.rope_factor, inv)
    smooth = (config.rope_original_max_positions / wavelen - config.rope_low_freq_factor) / (
        config.rope_high_freq_factor - config.rope_low_freq_factor
    )
    blended = (1 - smooth) * scaled / config.rope_factor + smooth * scaled
    middle = (wavelen <= low_wavelen) & (wavelen >= high_wavelen)
    return torch.where(middle, blended, scaled)


class Rotary(nn.Module):
    """Rotate-half rotary embedding over a float64-accurate cos/sin table."""

    cos: torch.Tensor
    sin: torch.Tensor

    def __init__(self, config: T3Config, max_positions: int) -> None:
        super().__init__()
        # Angles in float64: positions are shifted (see the module docstring), and a float32 angle
        # at a shifted position would round differently from upstream's at the true one.
        inverse = llama3_inverse_frequencies(config).double()
        angles = torch.outer(torch.arange(max_positions, dtype=torch.float64), inverse)
        self.register_buffer("cos", angles.cos().float(), persistent=False)
        self.register_buffer("sin", angles.sin().float(), persistent=False)
        self.head_dim = config.head_dim

    def forward(self, positions: torch.Tensor, x: torch.Tensor) -> torch.Tensor:
        shape = x.shape
        x = x.view(shape[0], -1, self.head_dim)
        cos = self.cos[positions].unsqueeze(1).to(x.dtype)
        sin = self.sin[positions].unsqueeze(1).to(x.dtype)
        first, second = x.chunk(2, dim=-1)
        rotated = torch.cat((first * cos - second * sin, second * cos + first * sin), dim=-1)
        return rotated.reshape(shape)


class T3Attention(nn.Module):
    def __init__(self, config: T3Config, vllm_config: VllmConfig, prefix: str) -> None:
        super().__init__()
        self.q_size = config.heads * config.head_dim
        self.kv_size = config.kv_heads * config.head_dim
        self.qkv_proj = QKVParallelLinear(
            config.hidden,
            config.head_dim,
            config.heads,
            config.kv_heads,
            bias=False,
            prefix=f"{prefix}.qkv_proj",
        )
        self.o_proj = RowParallelLinear(
            config.heads * config.head_dim, config.hidden, bias=False, prefix=f"{prefix}.o_proj"
        )

        def attention(name: str) -> Attention:
            return Attention(
                config.heads,
                config.head_dim,
                config.head_dim**-0.5,
                num_kv_heads=config.kv_heads,
                cache_config=vllm_config.cache_config,
                prefix=f"{prefix}.{name}",
            )

        # Two layers, two caches: the unconditional branch keeps its own attention history.
        self.attn = attention("attn")
        self.attn_uncond = attention("attn_uncond")

    def forward(self, rotary: Rotary, positions: torch.Tensor, x: torch.Tensor) -> torch.Tensor:
        tokens = positions.shape[0]
        qkv, _ = self.qkv_proj(x)
        q, k, v = qkv.split([self.q_size, self.kv_size, self.kv_size], dim=-1)
        both = torch.cat((positions, positions))
        q, k = rotary(both, q), rotary(both, k)
        cond = self.attn(q[:tokens], k[:tokens], v[:tokens])
        uncond = self.attn_uncond(q[tokens:], k[tokens:], v[tokens:])
        out, _ = self.o_proj(torch.cat((cond, uncond)))
        return out


class T3Mlp(nn.Module):
    def __init__(self, config: T3Config, prefix: str) -> None:
        super().__init__()
        self.gate_up_proj = MergedColumnParallelLinear(
            config.hidden, [config.intermediate] * 2, bias=False, prefix=f"{prefix}.gate_up_proj"
        )
        self.down_proj = RowParallelLinear(
            config.intermediate, config.hidden, bias=False, prefix=f"{prefix}.down_proj"
        )
        self.act = SiluAndMul()

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        gate_up, _ = self.gate_up_proj(x)
        out, _ = self.down_proj(self.act(gate_up))
        return out


class T3Layer(nn.Module):
    def __init__(self, config: T3Config, vllm_config: VllmConfig, prefix: str) -> None:
        super().__init__()
        self.self_attn = T3Attention(config, vllm_config, f"{prefix}.self_attn")
        self.mlp = T3Mlp(config, f"{prefix}.mlp")
        self.input_layernorm = RMSNorm(config.hidden, eps=config.rms_eps)
        self.post_attention_layernorm = RMSNorm(config.hidden, eps=config.rms_eps)

    def forward(self, rotary: Rotary, positions: torch.Tensor, x: torch.Tensor) -> torch.Tensor:
        """`x` holds both branches stacked on the token axis: conditioned rows, then unconditional."""
        x = x + self.self_attn(rotary, positions, self.input_layernorm(x))
        return x + self.mlp(self.post_attention_layernorm(x))


class T3Backbone(nn.Module):
    def __init__(self, config: T3Config, vllm_config: VllmConfig, prefix: str) -> None:
        super().__init__()
        self.layers = nn.ModuleList(
            T3Layer(config, vllm_config, f"{prefix}.layers.{i}") for i in range(config.layers)
        )
        self.norm = RMSNorm(config.hidden, eps=config.rms_eps)


class LearnedPositions(nn.Module):
    """Upstream's `LearnedPositionEmbeddings` (a table under `.emb`)."""

    def __init__(self, rows: int, hidden: int) -> None:
        super().__init__()
        self.emb = nn.Embedding(rows, hidden)


def t3_config_of(vllm_config: VllmConfig) -> T3Config:
    return T3Config(**vllm_config.model_config.hf_config.t3)


class T3ForSpeechTokens(nn.Module, SupportsMRoPE):
    def __init__(self, *, vllm_config: VllmConfig, prefix: str = "") -> None:
        super().__init__()
        config = t3_config_of(vllm_config)
        self.t3 = config
        self.origin = speech_origin(config)
        self.tfmr = T3Backbone(config, vllm_config, "tfmr")
        self.speech_emb = nn.Embedding(config.speech_vocab, config.hidden)
        self.speech_pos_emb = LearnedPositions(config.speech_positions, config.hidden)
        self.text_pos_emb = LearnedPositions(config.text_positions, config.hidden)
        self.speech_head = nn.Linear(config.hidden, config.speech_vocab, bias=False)
        self.rotary = Rotary(config, max_positions(config))

    # vLLM interface -------------------------------------------------------------------------

    def get_mrope_input_positions(
        self, input_tokens: list[int], mm_features: list[Any]
    ) -> tuple[torch.Tensor, int]:
        rows = len(input_tokens)
        text = rows - self.t3.cond_rows - 2
        if text < 1 or rows > self.origin + 1:
            raise ValueError(
                f"a T3 prompt is {self.t3.cond_rows} conditioning rows, 1 to {self.t3.text_positions} "
                f"text rows and 2 speech start rows; got {rows} rows"
            )
        delta = self.origin + 1 - rows
        rotary = torch.arange(rows, dtype=torch.int64) + delta
        text_stream = rotary.clone()
        text_stream[self.t3.cond_rows : self.t3.cond_rows + text] = torch.arange(text)
        return torch.stack((rotary, text_stream, torch.zeros(rows, dtype=torch.int64))), delta

    def embed_input_ids(self, input_ids: torch.Tensor) -> torch.Tensor:
        # Only decoded speech tokens arrive as ids; their speech position is added in `forward`.
        return self.speech_emb(input_ids)

    def forward(
        self,
        input_ids: torch.Tensor | None,
        positions: torch.Tensor,
        intermediate_tensors: Any = None,
        inputs_embeds: torch.Tensor | None = None,
        **_: Any,
    ) -> torch.Tensor:
        if inputs_embeds is None:
            assert input_ids is not None
            inputs_embeds = self.embed_input_ids(input_ids)
        rotary, text_index, decode_mark = positions[0], positions[1], positions[2]
        decoded = (decode_mark == rotary).unsqueeze(-1)
        speech_index = (rotary - self.origin).clamp(0, self.t3.speech_positions - 1)
        cond = torch.where(decoded, inputs_embeds + self.speech_pos_emb.emb(speech_index), inputs_embeds)
        is_text = (text_index != rotary).unsqueeze(-1)
        text_rows = self.text_pos_emb.emb(text_index.clamp(0, self.t3.text_positions - 1))
        uncond = torch.where(is_text, text_rows, cond)
        x = torch.cat((cond, uncond))
        for layer in self.tfmr.layers:
            x = layer(self.rotary, rotary, x)
        x = self.tfmr.norm(x)
        tokens = rotary.shape[0]
        return torch.cat((x[:tokens], x[tokens:]), dim=-1)

    def compute_logits(self, hidden_states: torch.Tensor) -> torch.Tensor:
        cond, uncond = hidden_states.chunk(2, dim=-1)
        return torch.cat((self.speech_head(cond), self.speech_head(uncond)), dim=-1)

    def load_weights(self, weights: Iterable[tuple[str, torch.Tensor]]) -> set[str]:
        params = dict(self.named_parameters())
        shapes: dict[str, tuple[int, ...]] = {}
        loaded: set[str] = set()
        for name, tensor in weights:
            shapes[name] = tuple(tensor.shape)
            if name.startswith(UNUSED_PREFIXES):
                continue
            for ours, theirs, shard in STACKED:
                if theirs in name:
                    target = name.replace(theirs, ours)
                    param = params[target]
                    param.weight_loader(param, tensor, shard)  # type: ignore[attr-defined]
                    break
            else:
                target = name
                param = params[target]
                loader = getattr(param, "weight_loader", None)
                if loader is not None:
                    loader(param, tensor)
                else:
                    param.data.copy_(tensor)
            loaded.add(target)
        check_t3_tensors(shapes, self.t3, source="the T3 checkpoint")
        missing = sorted(set(params) - loaded)
        if missing:
            raise ValueError(f"the T3 checkpoint left parameters unset: {', '.join(missing[:5])}")
        return loaded
