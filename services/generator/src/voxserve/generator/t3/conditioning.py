"""A T3 prompt as embedding rows: the voice's conditioning rows, the text rows with their learned
positions and the doubled speech start row. The engine takes these as the request's prompt
embeddings (they depend on the voice and the request's exaggeration, so no token ids could stand
for them); `model` derives the unconditional branch's text rows itself."""

from __future__ import annotations

from pathlib import Path

import torch
from torch.nn import functional as F

from voxserve.generator.t3.checkpoint import read_t3_state
from voxserve.generator.t3.config import T3Config
from voxserve.generator.t3.voice import T3Voice

PREFIXES = ("cond_enc.", "text_emb.", "text_pos_emb.", "speech_emb.", "speech_pos_emb.")


class T3Conditioner:
    def __init__(self, tensors: dict[str, torch.Tensor], config: T3Config, device: str = "cpu") -> None:
        self.w = {name: t.to(device=device, dtype=torch.float32) for name, t in tensors.items()}
        self.config = config
        self.device = device

    @classmethod
    def load(cls, checkpoint: Path, config: T3Config, device: str = "cpu") -> T3Conditioner:
        """From the checkpoint's tensors that build prompts, after a strict check of the file."""
        return cls(read_t3_state(checkpoint, config, PREFIXES), config, device)

    def _linear(self, name: str, x: torch.Tensor) -> torch.Tensor:
        return F.linear(x, self.w[f"{name}.weight"], self.w.get(f"{name}.bias"))

    def _perceiver_block(self, queries: torch.Tensor, context: torch.Tensor) -> torch.Tensor:
        """Upstream's attention block: both inputs layer-normed, the un-normed queries residual."""
        p = "cond_enc.perceiver.attn"
        hidden = self.config.hidden
        norm_w, norm_b = self.w[f"{p}.norm.weight"], self.w[f"{p}.norm.bias"]
        q_in = F.layer_norm(queries, (hidden,), norm_w, norm_b)
        kv_in = F.layer_norm(context, (hidden,), norm_w, norm_b)
        heads = self.config.perceiver_heads

        def split(x: torch.Tensor) -> torch.Tensor:
            return x.view(x.shape[0], heads, hidden // heads).transpose(0, 1)

        q = split(self._linear(f"{p}.to_q", q_in))
        k = split(self._linear(f"{p}.to_k", kv_in))
        v = split(self._linear(f"{p}.to_v", kv_in))
        attended = F.scaled_dot_product_attention(q, k, v).transpose(0, 1).reshape(-1, hidden)
        return queries + self._linear(f"{p}.proj_out", attended)

    def conditioning(self, voice: T3Voice, exaggeration: float) -> torch.Tensor:
        """The voice's rows: speaker projection, 32 perceiver rows over the prompt speech tokens,
        the exaggeration row."""
        speaker = self._linear("cond_enc.spkr_enc", voice.speaker_embedding.to(self.device, torch.float32))
        tokens = voice.prompt_tokens.to(self.device, torch.long)
        prompt = self.w["speech_emb.weight"][tokens] + self.w["speech_pos_emb.emb.weight"][: tokens.numel()]
        queries = self.w["cond_enc.perceiver.pre_attention_query"][0]
        resampled = self._perceiver_block(queries, prompt)
        resampled = self._perceiver_block(resampled, resampled)
        emotion = self.w["cond_enc.emotion_adv_fc.weight"][:, 0] * exaggeration
        return torch.cat((speaker[None], resampled, emotion[None]))

    def prompt(self, voice: T3Voice, text_ids: list[int], exaggeration: float) -> torch.Tensor:
        """All prefill rows for `text_ids` ([start, ..., stop] text ids)."""
        ids = torch.tensor(text_ids, dtype=torch.long, device=self.device)
        text = self.w["text_emb.weight"][ids] + self.w["text_pos_emb.emb.weight"][: ids.numel()]
        start = self.w["speech_emb.weight"][self.config.speech_start] + self.w["speech_pos_emb.emb.weight"][0]
        return torch.cat((self.conditioning(voice, exaggeration), text, start[None], start[None]))
