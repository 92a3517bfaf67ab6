"""The random `ve.safetensors`: real names and shapes, seeded, and voices that differ."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import torch
from safetensors.torch import load_file

from tests.services.vocoder.test_s3gen_voice_encoder import voice
from voxserve.random_packs.tiny_voice_encoder import write_voice_encoder
from voxserve.vocoder.codecs.s3gen.voice_encoder import load_voice_encoder, voice_encoder_shapes


def test_real_shapes_float32_and_seeded(tmp_path: Path) -> None:
    for name, seed in (("a", 1), ("b", 1), ("c", 2)):
        write_voice_encoder(tmp_path / name / "ve.safetensors", seed)
    a, b, c = (load_file(tmp_path / name / "ve.safetensors") for name in "abc")
    assert {k: tuple(v.shape) for k, v in a.items()} == voice_encoder_shapes()
    assert all(v.dtype == torch.float32 for v in a.values())
    assert all(torch.equal(a[k], b[k]) for k in a)
    assert not torch.equal(a["lstm.weight_hh_l1"], c["lstm.weight_hh_l1"])
    assert float(a["similarity_weight"]) == 10.0 and float(a["similarity_bias"]) == -5.0


def test_voices_differ_more_than_one_voice_at_two_levels(tmp_path: Path) -> None:
    write_voice_encoder(tmp_path / "ve.safetensors", seed=3)
    encoder = load_voice_encoder(tmp_path)
    low = voice(110, (700, 1200, 2600), amp=0.1)
    louder = voice(110, (700, 1200, 2600), amp=0.5, seed=1)
    high = voice(220, (300, 2300, 3000), amp=0.1)
    a, b, c = (encoder.speaker_embedding(w) for w in (low, louder, high))
    assert float(a @ c) < 0.8 and float(b @ c) < 0.8
    assert float(a @ b) > float(a @ c) + 0.1
    # Two seconds of digital silence inside the reference: its all-zero partials still embed.
    gap = np.concatenate([low, np.zeros(32000, dtype=np.float32), low])
    assert np.isfinite(encoder.speaker_embedding(gap)).all()
