"""The S3Gen decode modules: upstream names and shapes, both weight-norm namings, and the
shapes, padding invariance and guidance of a forward on a small configuration."""

from __future__ import annotations

import dataclasses
from pathlib import Path

import torch
from safetensors.torch import load_file, save_file

from tests.services.vocoder.helpers import assert_equals_published_table
from voxserve.vocoder.codecs.checkpoint import LEGACY, PARAMETRIZED, checkpoint_entries, load_state_dict
from voxserve.vocoder.codecs.s3gen.checkpoint import meta_model
from voxserve.vocoder.codecs.s3gen.config import FULL, TINY
from voxserve.vocoder.codecs.s3gen.flow import S3Gen

# sha256 of the published decode-path table's sorted "name<TAB>shape" rows.
DECODE_KEYS_SHA256 = "b39b3b4af133fb261a2d8b468cfae1bffbcd146e1a1693c7dc943a6077408a3e"


def test_full_size_names_and_shapes_equal_the_published_table() -> None:
    ours = {key: shape for key, _, shape in checkpoint_entries(meta_model(FULL), PARAMETRIZED)}
    assert len(ours) == 1449
    assert_equals_published_table(ours, DECODE_KEYS_SHA256, "s3gen-decode-keys.tsv")


def test_turbo_adds_only_the_time_embedding_mixer() -> None:
    turbo = dataclasses.replace(FULL, flow=dataclasses.replace(FULL.flow, meanflow=True, steps=2))
    standard = {key for key, _, _ in checkpoint_entries(meta_model(FULL), PARAMETRIZED)}
    extra = {key: shape for key, _, shape in checkpoint_entries(meta_model(turbo), PARAMETRIZED)}
    assert set(extra) - standard == {"flow.decoder.estimator.time_embed_mixer.weight"}
    assert extra["flow.decoder.estimator.time_embed_mixer.weight"] == (1024, 2048)


def _random_checkpoint(path: Path, naming: tuple[str, str], seed: int = 0) -> None:
    generator = torch.Generator().manual_seed(seed)
    tensors = {
        key: torch.randn(shape, generator=generator) * 0.05
        for key, _, shape in checkpoint_entries(meta_model(TINY), naming)
    }
    save_file(tensors, str(path))


def test_both_weight_norm_namings_load_to_the_same_weights(tmp_path: Path) -> None:
    _random_checkpoint(tmp_path / "new.safetensors", PARAMETRIZED)
    _random_checkpoint(tmp_path / "old.safetensors", LEGACY)
    new = load_state_dict(tmp_path / "new.safetensors", meta_model(TINY), naming=PARAMETRIZED)
    old = load_state_dict(tmp_path / "old.safetensors", meta_model(TINY), naming=PARAMETRIZED)
    assert new.keys() == old.keys()
    assert all(torch.equal(new[k], old[k]) for k in new)
    S3Gen(TINY).load_state_dict(new)  # every parameter, no extras
    # A weight-normed conv holds g * v / |v|: each output channel's norm is |g|.
    g = load_file(str(tmp_path / "new.safetensors"))["mel2wav.conv_pre.parametrizations.weight.original0"]
    norms = torch.linalg.vector_norm(new["mel2wav.conv_pre.weight"].double(), dim=(1, 2))
    assert torch.allclose(norms, g.double().abs().flatten(), rtol=1e-5)


def _inputs(tokens: int, prompt: int, seed: int) -> dict[str, torch.Tensor]:
    g = torch.Generator().manual_seed(seed)
    total = prompt + tokens
    return {
        "tokens": torch.randint(0, 6561, (1, total), generator=g),
        "lengths": torch.tensor([total]),
        "prompt_mel": torch.randn(1, 2 * prompt, 80, generator=g),
        "xvector": torch.randn(1, 192, generator=g),
        "noise": torch.randn(1, 80, 2 * total, generator=g),
    }


@torch.inference_mode()
def test_tokens_give_two_mel_frames_each_and_960_samples_per_token(tiny_s3gen: S3Gen) -> None:
    x = _inputs(tokens=12, prompt=5, seed=1)
    mel = tiny_s3gen.flow(**x)
    assert mel.shape == (1, 80, 2 * 17) and torch.isfinite(mel).all()
    new = mel[:, :, 2 * 5 :]
    hift = tiny_s3gen.mel2wav
    harmonics = TINY.hift.harmonics + 1
    length = new.shape[-1] * 480
    source = hift.source(
        new, torch.zeros(1, harmonics), torch.zeros(1, harmonics), torch.randn(1, harmonics, length)
    )
    wave = hift.decode(new, source)
    assert wave.shape == (1, 960 * 12)
    assert wave.abs().max() <= TINY.hift.audio_limit


@torch.inference_mode()
def test_a_right_padded_row_equals_the_same_row_alone(tiny_s3gen: S3Gen) -> None:
    short, long = _inputs(tokens=9, prompt=4, seed=2), _inputs(tokens=20, prompt=4, seed=3)
    pad = long["tokens"].shape[1] - short["tokens"].shape[1]
    batch = {
        "tokens": torch.cat([torch.nn.functional.pad(short["tokens"], (0, pad)), long["tokens"]]),
        "lengths": torch.cat([short["lengths"], long["lengths"]]),
        "prompt_mel": torch.cat([short["prompt_mel"], long["prompt_mel"]]),
        "xvector": torch.cat([short["xvector"], long["xvector"]]),
        "noise": torch.cat([torch.nn.functional.pad(short["noise"], (0, 2 * pad)), long["noise"]]),
    }
    together = tiny_s3gen.flow(**batch)
    alone = tiny_s3gen.flow(**short)
    frames = alone.shape[-1]
    assert torch.max(torch.abs(together[0, :, :frames] - alone[0])) <= 1e-4
    assert torch.max(torch.abs(together[1] - tiny_s3gen.flow(**long)[0])) <= 1e-4


@torch.inference_mode()
def test_guidance_changes_the_mel(tiny_s3gen: S3Gen) -> None:
    x = _inputs(tokens=8, prompt=3, seed=4)
    guided = tiny_s3gen.flow(**x)
    tiny_s3gen.flow.decoder.config = dataclasses.replace(TINY.flow, guidance_rate=0.0)
    try:
        unguided = tiny_s3gen.flow(**x)
    finally:
        tiny_s3gen.flow.decoder.config = TINY.flow
    assert torch.max(torch.abs(guided - unguided)) > 1e-3
