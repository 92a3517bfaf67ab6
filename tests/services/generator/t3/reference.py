"""A plain PyTorch reference of Chatterbox T3 inference, used only by tests to prove the vLLM port.

Written from `/work/shared/specs/t3.md`, with details confirmed against the public Chatterbox code
(resemble-ai/chatterbox: t3.py, modules/cond_enc.py, modules/perceiver.py, llama_configs.py).
Nothing here is tuned for speed: every call recomputes the whole sequence from the embeddings, so
there is no KV cache that could be wrong. It works in float32 (what upstream runs) or float64 (a
ground truth for judging float32 / bfloat16 ports).

The voice is a `RefVoice` (speaker embedding, prompt speech tokens, exaggeration).

Sequence layout for both guidance branches (row 0 = conditional, row 1 = unconditional):

    [ speaker | 32 perceiver rows | exaggeration                      (cond_rows = 34)
    | text_emb(ids) + text_pos_emb(0..T-1)  (the uncond branch: 0 + text_pos_emb(0..T-1))
    | speech_emb(6561) + speech_pos_emb(0)  (twice, as upstream feeds it)
    | speech_emb(tok_i) + speech_pos_emb(i + 1) for each fed speech token i ]

RoPE positions run 0..L-1 over the whole sequence. The logits that choose speech token s are read
at the row just before speech token s is fed (the second start row for s = 0).

Upstream behaviour the spec leaves open, and what this reference does:
- Prompt of 0 tokens: upstream's T3CondEnc only skips the perceiver when the prompt is absent
  (`cond_prompt_speech_emb is None`), which gives 2 conditioning rows instead of 34 (a different
  layout); an empty-but-present prompt would run the cross-attention over zero keys. The serving
  code requires P >= 1, so this reference rejects P == 0 (ValueError).
- The perceiver's AttentionBlock2 is built with flash attention on, i.e.
  `F.scaled_dot_product_attention` with the default scale 1/sqrt(hidden / heads), no dropout in
  eval. Its residual adds the un-normalised query input. nn.LayerNorm default eps 1e-5.
- Upstream zeroes the unconditional text rows only when cfg_weight > 0; with w == 0 the
  unconditional branch does not affect the guided logits, so this reference always zeroes them
  (it matters only for `raw_logits`).
- RoPE inverse frequencies are computed exactly as HF's `_compute_llama3_parameters` does, in
  float32 (upstream and vLLM both use float32 inverse frequencies); the angles
  positions * inv_freq are then formed in float64 and cos/sin cast to the working dtype.
- The repetition penalty sees [6561] + the speech tokens generated so far; like HF's
  RepetitionPenaltyLogitsProcessor (gather / scatter) each distinct id is penalised once.
- `greedy(stop=True)` keeps the stop token in the returned tokens (upstream appends it to its
  predictions before breaking).
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass

import torch
from torch import Tensor

from voxserve.generator.t3.config import T3Config

__all__ = [
    "RefVoice",
    "ReferenceT3",
    "apply_repetition_penalty",
    "expected_shapes",
    "llama3_inv_freq",
    "random_t3_state",
]


@dataclass(frozen=True)
class RefVoice:
    """One voice: speaker embedding [speaker_dim], prompt speech tokens (>= 1), exaggeration."""

    speaker_embedding: Tensor
    prompt_tokens: Sequence[int]
    exaggeration: float = 0.5


def expected_shapes(config: T3Config) -> dict[str, tuple[int, ...]]:
    """Upstream tensor names and shapes (`t3-keys.tsv`) at `config`'s sizes."""
    c = config
    shapes: dict[str, tuple[int, ...]] = {"tfmr.embed_tokens.weight": (c.unused_embed_rows, c.hidden)}
    for i in range(c.layers):
        p = f"tfmr.layers.{i}."
        shapes[p + "self_attn.q_proj.weight"] = (c.heads * c.head_dim, c.hidden)
        shapes[p + "self_attn.k_proj.weight"] = (c.kv_heads * c.head_dim, c.hidden)
        shapes[p + "self_attn.v_proj.weight"] = (c.kv_heads * c.head_dim, c.hidden)
        shapes[p + "self_attn.o_proj.weight"] = (c.hidden, c.heads * c.head_dim)
        shapes[p + "mlp.gate_proj.weight"] = (c.intermediate, c.hidden)
        shapes[p + "mlp.up_proj.weight"] = (c.intermediate, c.hidden)
        shapes[p + "mlp.down_proj.weight"] = (c.hidden, c.intermediate)
        shapes[p + "input_layernorm.weight"] = (c.hidden,)
        shapes[p + "post_attention_layernorm.weight"] = (c.hidden,)
    shapes["tfmr.norm.weight"] = (c.hidden,)
    shapes["cond_enc.spkr_enc.weight"] = (c.hidden, c.speaker_dim)
    shapes["cond_enc.spkr_enc.bias"] = (c.hidden,)
    shapes["cond_enc.emotion_adv_fc.weight"] = (c.hidden, 1)
    shapes["cond_enc.perceiver.pre_attention_query"] = (1, c.perceiver_queries, c.hidden)
    shapes["cond_enc.perceiver.attn.norm.weight"] = (c.hidden,)
    shapes["cond_enc.perceiver.attn.norm.bias"] = (c.hidden,)
    for proj in ("to_q", "to_k", "to_v", "proj_out"):
        shapes[f"cond_enc.perceiver.attn.{proj}.weight"] = (c.hidden, c.hidden)
        shapes[f"cond_enc.perceiver.attn.{proj}.bias"] = (c.hidden,)
    shapes["text_emb.weight"] = (c.text_vocab, c.hidden)
    shapes["speech_emb.weight"] = (c.speech_vocab, c.hidden)
    shapes["text_pos_emb.emb.weight"] = (c.text_positions, c.hidden)
    shapes["speech_pos_emb.emb.weight"] = (c.speech_positions, c.hidden)
    shapes["text_head.weight"] = (c.text_vocab, c.hidden)
    shapes["speech_head.weight"] = (c.speech_vocab, c.hidden)
    return shapes


def random_t3_state(config: T3Config, seed: int) -> dict[str, Tensor]:
    """A seeded float32 state with upstream names: linear weights N(0, 1/fan_in), biases N(0, 0.02),
    norm weights 1 + N(0, 0.1) (norm biases N(0, 0.1)), embeddings and queries N(0, 0.5)."""
    gen = torch.Generator().manual_seed(seed)
    state: dict[str, Tensor] = {}
    for name, shape in expected_shapes(config).items():
        noise = torch.randn(shape, generator=gen, dtype=torch.float32)
        if "norm" in name:
            state[name] = (1.0 + 0.1 * noise) if name.endswith("weight") else 0.1 * noise
        elif name.endswith(".bias"):
            state[name] = 0.02 * noise
        elif "emb" in name.split(".")[0] or name.endswith("pre_attention_query"):
            state[name] = 0.5 * noise
        else:  # a Linear weight (out, in)
            state[name] = noise / math.sqrt(shape[1])
    return state


def llama3_inv_freq(config: T3Config) -> Tensor:
    """RoPE inverse frequencies [head_dim / 2] with llama3 scaling, as HF computes them (float32)."""
    dim = config.head_dim
    inv_freq = 1.0 / (config.rope_theta ** (torch.arange(0, dim, 2, dtype=torch.int64).float() / dim))
    factor = config.rope_factor
    low, high = config.rope_low_freq_factor, config.rope_high_freq_factor
    old_len = config.rope_original_max_positions
    low_freq_wavelen = old_len / low
    high_freq_wavelen = old_len / high
    wavelen = 2 * math.pi / inv_freq
    # Long wavelengths are slowed down by `factor`, short ones kept, the band between interpolated.
    scaled = torch.where(wavelen > low_freq_wavelen, inv_freq / factor, inv_freq)
    smooth = (old_len / wavelen - low) / (high - low)
    smoothed = (1 - smooth) * scaled / factor + smooth * scaled
    medium = (wavelen >= high_freq_wavelen) & (wavelen <= low_freq_wavelen)
    return torch.where(medium, smoothed, scaled)


def apply_repetition_penalty(logits: Tensor, ids: Sequence[int], penalty: float) -> Tensor:
    """HF RepetitionPenaltyLogitsProcessor on one row: each distinct id in `ids` gets
    score * penalty where score < 0, else score / penalty. Returns a new tensor."""
    out = logits.clone()
    if not ids:
        return out
    index = torch.tensor(sorted(set(ids)), dtype=torch.long)
    score = out[index]
    out[index] = torch.where(score < 0, score * penalty, score / penalty)
    return out


def _rms_norm(x: Tensor, weight: Tensor, eps: float) -> Tensor:
    return x * torch.rsqrt(x.pow(2).mean(-1, keepdim=True) + eps) * weight


def _layer_norm(x: Tensor, weight: Tensor, bias: Tensor, eps: float = 1e-5) -> Tensor:
    mean = x.mean(-1, keepdim=True)
    var = (x - mean).pow(2).mean(-1, keepdim=True)
    return (x - mean) * torch.rsqrt(var + eps) * weight + bias


def _rotate_half(x: Tensor) -> Tensor:
    half = x.shape[-1] // 2
    return torch.cat((-x[..., half:], x[..., :half]), dim=-1)


def _split_heads(x: Tensor, heads: int) -> Tensor:
    """[..., L, heads * d] -> [..., heads, L, d]."""
    *lead, length, width = x.shape
    return x.reshape(*lead, length, heads, width // heads).transpose(-3, -2)


def _merge_heads(x: Tensor) -> Tensor:
    """[..., heads, L, d] -> [..., L, heads * d]."""
    x = x.transpose(-3, -2)
    return x.reshape(*x.shape[:-2], x.shape[-2] * x.shape[-1])


def _attend(q: Tensor, k: Tensor, v: Tensor, mask: Tensor | None = None) -> Tensor:
    """Softmax(q k^T / sqrt(d) + mask) v over [..., heads, L, d]."""
    scores = q @ k.transpose(-1, -2) / math.sqrt(q.shape[-1])
    if mask is not None:
        scores = scores + mask
    return torch.softmax(scores, dim=-1) @ v


class ReferenceT3:
    """T3 inference from an upstream-named state dict (strict: every tensor, the right shapes)."""

    def __init__(self, state: dict[str, Tensor], config: T3Config, dtype: torch.dtype = torch.float32):
        if dtype not in (torch.float32, torch.float64):
            raise ValueError(f"dtype must be float32 or float64, not {dtype}")
        expected = expected_shapes(config)
        missing = sorted(set(expected) - set(state))
        unexpected = sorted(set(state) - set(expected))
        if missing or unexpected:
            raise ValueError(f"state: missing {missing[:5]}, unexpected {unexpected[:5]}")
        for name, shape in expected.items():
            if tuple(state[name].shape) != shape:
                raise ValueError(f"state: {name} is {tuple(state[name].shape)}, expected {shape}")
        if config.hidden % config.perceiver_heads or config.heads % config.kv_heads:
            raise ValueError("hidden % perceiver_heads and heads % kv_heads must be 0")
        self.config = config
        self.dtype = dtype
        self.w = {name: t.detach().to(device="cpu", dtype=dtype) for name, t in state.items()}
        self.inv_freq = llama3_inv_freq(config)

    # ---- conditioning -------------------------------------------------------------------------

    def _perceiver_block(self, x1: Tensor, x2: Tensor) -> Tensor:
        """AttentionBlock2: LayerNorm both inputs, q from x1, k/v from x2, x1 + proj_out(attn)."""
        p = "cond_enc.perceiver.attn."
        w = self.w
        n1 = _layer_norm(x1, w[p + "norm.weight"], w[p + "norm.bias"])
        n2 = _layer_norm(x2, w[p + "norm.weight"], w[p + "norm.bias"])
        heads = self.config.perceiver_heads
        q = _split_heads(n1 @ w[p + "to_q.weight"].T + w[p + "to_q.bias"], heads)
        k = _split_heads(n2 @ w[p + "to_k.weight"].T + w[p + "to_k.bias"], heads)
        v = _split_heads(n2 @ w[p + "to_v.weight"].T + w[p + "to_v.bias"], heads)
        h = _merge_heads(_attend(q, k, v))
        return x1 + h @ w[p + "proj_out.weight"].T + w[p + "proj_out.bias"]

    def perceiver(self, prompt: Tensor) -> Tensor:
        """[P, hidden] prompt embedding -> [perceiver_queries, hidden]: the same block twice,
        cross-attention from the learned queries, then self-attention."""
        query = self.w["cond_enc.perceiver.pre_attention_query"][0]
        first = self._perceiver_block(query, prompt)
        return self._perceiver_block(first, first)

    def prompt_embedding(self, prompt_tokens: Sequence[int]) -> Tensor:
        """speech_emb(tokens) + speech_pos_emb(0..P-1): [P, hidden]."""
        c = self.config
        if not 1 <= len(prompt_tokens) <= c.speech_positions:
            raise ValueError(f"prompt tokens: need 1..{c.speech_positions}, got {len(prompt_tokens)}")
        ids = self._ids(prompt_tokens, c.speech_vocab, "prompt token")
        return self.w["speech_emb.weight"][ids] + self.w["speech_pos_emb.emb.weight"][: len(ids)]

    @torch.no_grad()
    def conditioning(
        self, speaker_embedding: Tensor, prompt_tokens: Sequence[int], exaggeration: float
    ) -> Tensor:
        """[cond_rows, hidden]: speaker row, perceiver rows, exaggeration row."""
        c, w = self.config, self.w
        spk = speaker_embedding.to(self.dtype).reshape(c.speaker_dim)
        speaker_row = spk @ w["cond_enc.spkr_enc.weight"].T + w["cond_enc.spkr_enc.bias"]
        resampled = self.perceiver(self.prompt_embedding(prompt_tokens))
        emotion = torch.tensor([exaggeration], dtype=self.dtype)
        emotion_row = emotion @ w["cond_enc.emotion_adv_fc.weight"].T
        return torch.cat((speaker_row[None], resampled, emotion_row[None]), dim=0)

    # ---- input rows ---------------------------------------------------------------------------

    def _ids(self, ids: Sequence[int], vocab: int, what: str) -> Tensor:
        t = torch.tensor(list(ids), dtype=torch.long)
        if t.numel() and (int(t.min()) < 0 or int(t.max()) >= vocab):
            raise ValueError(f"{what} ids must be in [0, {vocab})")
        return t

    def speech_rows(self, tokens: Sequence[int], first_position: int) -> Tensor:
        """speech_emb(tokens) + speech_pos_emb(first_position, first_position + 1, ...)."""
        ids = self._ids(tokens, self.config.speech_vocab, "speech")
        end = first_position + len(ids)
        if end > self.config.speech_positions:
            raise ValueError(f"speech positions run past {self.config.speech_positions}")
        return self.w["speech_emb.weight"][ids] + self.w["speech_pos_emb.emb.weight"][first_position:end]

    def prefill_embeds(self, text_ids: Sequence[int], voice: RefVoice) -> Tensor:
        """[2, cond_rows + T + 2, hidden]: the conditional and unconditional prompt rows."""
        c = self.config
        if not 1 <= len(text_ids) <= c.text_positions:
            raise ValueError(f"text ids: need 1..{c.text_positions}, got {len(text_ids)}")
        ids = self._ids(text_ids, c.text_vocab, "text")
        cond = self.conditioning(voice.speaker_embedding, voice.prompt_tokens, voice.exaggeration)
        text_pos = self.w["text_pos_emb.emb.weight"][: len(ids)]
        text_cond = self.w["text_emb.weight"][ids] + text_pos
        text_uncond = torch.zeros_like(text_cond) + text_pos
        start = self.speech_rows([c.speech_start], 0)
        branches = [torch.cat((cond, text, start, start), dim=0) for text in (text_cond, text_uncond)]
        return torch.stack(branches)

    def sequence_embeds(
        self, text_ids: Sequence[int], voice: RefVoice, speech_tokens: Sequence[int]
    ) -> Tensor:
        """Prefill rows followed by one row per fed speech token (step i at speech position i + 1)."""
        prefill = self.prefill_embeds(text_ids, voice)
        fed = self.speech_rows(speech_tokens, 1)
        return torch.cat((prefill, fed[None].expand(2, -1, -1)), dim=1)

    # ---- backbone -----------------------------------------------------------------------------

    def rope(self, length: int) -> tuple[Tensor, Tensor]:
        """cos, sin [length, head_dim] for positions 0..length-1 (rotate_half layout)."""
        positions = torch.arange(length, dtype=torch.float64)
        angles = positions[:, None] * self.inv_freq.to(torch.float64)[None, :]
        angles = torch.cat((angles, angles), dim=-1)
        return angles.cos().to(self.dtype), angles.sin().to(self.dtype)

    def _self_attention(self, h: Tensor, prefix: str, cos: Tensor, sin: Tensor, mask: Tensor) -> Tensor:
        c, w = self.config, self.w
        q = _split_heads(h @ w[prefix + "q_proj.weight"].T, c.heads)
        k = _split_heads(h @ w[prefix + "k_proj.weight"].T, c.kv_heads)
        v = _split_heads(h @ w[prefix + "v_proj.weight"].T, c.kv_heads)
        q = q * cos + _rotate_half(q) * sin
        k = k * cos + _rotate_half(k) * sin
        group = c.heads // c.kv_heads  # query head j reads kv head j // group (HF repeat_kv)
        k = k.repeat_interleave(group, dim=-3)
        v = v.repeat_interleave(group, dim=-3)
        return _merge_heads(_attend(q, k, v, mask)) @ w[prefix + "o_proj.weight"].T

    def _mlp(self, h: Tensor, prefix: str) -> Tensor:
        w = self.w
        gate = torch.nn.functional.silu(h @ w[prefix + "gate_proj.weight"].T)
        return (gate * (h @ w[prefix + "up_proj.weight"].T)) @ w[prefix + "down_proj.weight"].T

    @torch.no_grad()
    def backbone(self, embeds: Tensor) -> Tensor:
        """Llama over [B, L, hidden] input embeddings, causal, RoPE positions 0..L-1; returns the
        final-normed hidden states [B, L, hidden]."""
        c, w = self.config, self.w
        x = embeds.to(self.dtype)
        length = x.shape[-2]
        cos, sin = self.rope(length)
        mask = torch.full((length, length), float("-inf"), dtype=self.dtype).triu(1)
        for i in range(c.layers):
            p = f"tfmr.layers.{i}."
            h = _rms_norm(x, w[p + "input_layernorm.weight"], c.rms_eps)
            x = x + self._self_attention(h, p + "self_attn.", cos, sin, mask)
            h = _rms_norm(x, w[p + "post_attention_layernorm.weight"], c.rms_eps)
            x = x + self._mlp(h, p + "mlp.")
        return _rms_norm(x, w["tfmr.norm.weight"], c.rms_eps)

    # ---- logits -------------------------------------------------------------------------------

    def prefill_length(self, text_ids: Sequence[int]) -> int:
        return self.config.cond_rows + len(text_ids) + 2

    @torch.no_grad()
    def raw_logits(
        self, text_ids: Sequence[int], voice: RefVoice, speech_tokens: Sequence[int]
    ) -> tuple[Tensor, Tensor]:
        """(cond, uncond), each [len(speech_tokens) + 1, speech_vocab]: row s scores speech token s
        after speech_tokens[:s] were fed (one causal forward, teacher forcing)."""
        hidden = self.backbone(self.sequence_embeds(text_ids, voice, speech_tokens))
        rows = hidden[:, self.prefill_length(text_ids) - 1 :]
        logits = rows @ self.w["speech_head.weight"].T
        return logits[0], logits[1]

    def _process(
        self, cond: Tensor, uncond: Tensor, generated: Sequence[int], guidance: float, penalty: float
    ) -> Tensor:
        guided = cond + guidance * (cond - uncond)
        return apply_repetition_penalty(guided, [self.config.speech_start, *generated], penalty)

    @torch.no_grad()
    def guided_logits(
        self,
        text_ids: Sequence[int],
        voice: RefVoice,
        speech_tokens: Sequence[int],
        guidance: float = 0.5,
        repetition_penalty: float = 1.2,
    ) -> Tensor:
        """[len(speech_tokens) + 1, speech_vocab]: guided, repetition-penalised logits; row s chooses
        speech token s given speech_tokens[:s] (and the start token) as the generated ids."""
        cond, uncond = self.raw_logits(text_ids, voice, speech_tokens)
        rows = [
            self._process(cond[s], uncond[s], speech_tokens[:s], guidance, repetition_penalty)
            for s in range(len(speech_tokens) + 1)
        ]
        return torch.stack(rows)

    @torch.no_grad()
    def greedy(
        self,
        text_ids: Sequence[int],
        voice: RefVoice,
        steps: int,
        guidance: float = 0.5,
        repetition_penalty: float = 1.2,
        stop: bool = False,
    ) -> tuple[list[int], Tensor]:
        """Argmax decoding, recomputing the whole sequence every step. Runs `steps` steps; with
        `stop`, ends after choosing speech_stop (kept in the tokens). Returns the tokens and the
        processed logits [len(tokens), speech_vocab] each choice was made from."""
        if not 0 <= steps <= self.config.max_speech_tokens:
            raise ValueError(f"steps: need 0..{self.config.max_speech_tokens}, got {steps}")
        tokens: list[int] = []
        chosen: list[Tensor] = []
        for _ in range(steps):
            hidden = self.backbone(self.sequence_embeds(text_ids, voice, tokens))
            cond, uncond = hidden[:, -1] @ self.w["speech_head.weight"].T
            row = self._process(cond, uncond, tokens, guidance, repetition_penalty)
            token = int(torch.argmax(row))
            tokens.append(token)
            chosen.append(row)
            if stop and token == self.config.speech_stop:
                break
        logits = torch.stack(chosen) if chosen else torch.empty(0, self.config.speech_vocab, dtype=self.dtype)
        return tokens, logits
