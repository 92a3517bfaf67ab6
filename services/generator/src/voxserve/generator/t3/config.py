"""T3 sizes. `FULL` is Chatterbox's English T3 ("Llama_520M" backbone; tensor names and shapes in
`t3_cfg.safetensors`); `TINY` keeps every structural feature at small sizes. A pack may carry
`t3.json` with these fields; without it the full-size values apply."""

from __future__ import annotations

import dataclasses
import json
from dataclasses import dataclass
from pathlib import Path

CHECKPOINT_FILE = "t3_cfg.safetensors"
CONFIG_FILE = "t3.json"
# Per-request limits: the guidance weight and the emotion exaggeration.
MAX_GUIDANCE = 3.0
MAX_EXAGGERATION = 2.0


@dataclass(frozen=True)
class T3Config:
    layers: int = 30
    hidden: int = 1024
    intermediate: int = 4096
    heads: int = 16
    kv_heads: int = 16
    head_dim: int = 64
    rms_eps: float = 1e-5
    rope_theta: float = 500000.0
    rope_factor: float = 8.0
    rope_low_freq_factor: float = 1.0
    rope_high_freq_factor: float = 4.0
    rope_original_max_positions: int = 8192
    text_vocab: int = 704
    text_positions: int = 2050
    speech_vocab: int = 8194
    speech_positions: int = 4100
    speaker_dim: int = 256
    perceiver_queries: int = 32
    perceiver_heads: int = 4
    unused_embed_rows: int = 8
    """`tfmr.embed_tokens` rows: in the file, never used."""

    text_start: int = 255
    text_stop: int = 0
    speech_start: int = 6561
    speech_stop: int = 6562

    @property
    def cond_rows(self) -> int:
        """Conditioning rows before the text: speaker, perceiver queries, exaggeration."""
        return 1 + self.perceiver_queries + 1

    @property
    def max_text_tokens(self) -> int:
        """Text ids including the start and stop ids (one learned position each)."""
        return self.text_positions

    @property
    def max_speech_tokens(self) -> int:
        """New speech tokens the learned speech positions allow (position 0 is the start row)."""
        return self.speech_positions - 1

    def to_json(self) -> str:
        return json.dumps(dataclasses.asdict(self), indent=2)

    @classmethod
    def from_json(cls, text: str) -> T3Config:
        raw = json.loads(text)
        known = {f.name for f in dataclasses.fields(cls)}
        unknown = sorted(set(raw) - known)
        if unknown:
            raise ValueError(f"{CONFIG_FILE}: unknown fields {', '.join(unknown)}")
        return cls(**raw)

    @classmethod
    def of_pack(cls, root: Path) -> T3Config:
        path = root / CONFIG_FILE
        return cls.from_json(path.read_text()) if path.is_file() else FULL


FULL = T3Config()
TINY = T3Config(layers=2, hidden=64, intermediate=128, heads=2, kv_heads=2, head_dim=32)
