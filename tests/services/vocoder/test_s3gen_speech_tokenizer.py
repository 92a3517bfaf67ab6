"""The S3 speech tokenizer v2: names against the published table, loading, lengths and
`max_tokens`, refused audio, padding masks, the attn_ln eps setting, random weights.
The float64 arithmetic checks are in test_s3gen_speech_tokenizer_spec.py."""

from __future__ import annotations

import json
import math
from pathlib import Path

import numpy as np
import pytest
import torch
from safetensors.torch import save_file

from tests.services.vocoder.key_tables import file_key_rows, shapes_sha256
from voxserve.random_packs.tiny_speech_tokenizer import speech_tokenizer_tensors
from voxserve.vocoder.codecs.base import CodecInputError
from voxserve.vocoder.codecs.checkpoint import CheckpointError
from voxserve.vocoder.codecs.s3gen.speech_tokenizer import (
    DEFAULT_ATTN_LN_EPS,
    PREFIX,
    SpeechTokenizer,
    attn_ln_eps_setting,
    load_speech_tokenizer,
    mel_filters,
    speech_tokenizer_shapes,
    token_count,
)

# sha256 of the `tokenizer.*` rows of specs/chatterbox-encode-keys.tsv (file s3gen.safetensors) as
# sorted "name<TAB>shape" rows, shapes as Python tuples.
TOKENIZER_KEYS_SHA256 = "fa339ee47c6dd712937374d12d0bfc7134bf56b89962e659af2d059e345cb99a"
KEY_TABLE = "chatterbox-encode-keys.tsv"
SR = 16000


def voiced(seconds: float, seed: int = 0, amp: float = 0.1) -> np.ndarray:
    """Harmonics of a gliding f0 in syllables, over a little noise."""
    rng = np.random.default_rng(seed)
    t = np.arange(int(seconds * SR)) / SR
    f0 = 120 + 40 * np.sin(2 * np.pi * 0.7 * t) + 20 * np.sin(2 * np.pi * 2.3 * t)
    phase = 2 * np.pi * np.cumsum(f0) / SR
    wave = sum(np.sin(k * phase) / k for k in range(1, 20))
    envelope = np.clip(np.sin(2 * np.pi * 3.1 * t), 0, None) ** 0.5
    return (amp * wave * envelope + 0.003 * rng.standard_normal(t.size)).astype(np.float32)


@pytest.fixture(scope="module")
def tiny_file(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """Tiny tokenizer tensors inside an S3Gen-like file (other tensors must be ignored)."""
    path = tmp_path_factory.mktemp("s3tok") / "s3gen.safetensors"
    save_file({**speech_tokenizer_tensors(0, "tiny"), "flow.input_embedding.weight": torch.zeros(3, 2)}, path)
    return path


@pytest.fixture(scope="module")
def tiny(tiny_file: Path) -> SpeechTokenizer:
    return load_speech_tokenizer(tiny_file)


# --- names, sizes, loading -----------------------------------------------------------------------


def test_full_size_names_and_shapes_equal_the_published_table() -> None:
    shapes = speech_tokenizer_shapes()
    assert len(shapes) == 104 and shapes[PREFIX + "_mel_filters"] == (128, 201)
    assert shapes_sha256(shapes) == TOKENIZER_KEYS_SHA256
    published = file_key_rows(KEY_TABLE, "s3gen.safetensors", PREFIX)
    if published is not None:
        assert all(dtype == "float32" for _, dtype in published.values())
        assert shapes == {name: shape for name, (shape, _) in published.items()}


def test_sizes_come_from_the_checkpoint(tiny: SpeechTokenizer) -> None:
    assert (tiny.n_state, tiny.n_layers, tiny.n_heads) == (128, 2, 2)
    assert all(block.attn.n_head == 2 for block in tiny.encoder.blocks)
    tensors = speech_tokenizer_tensors(0, "tiny")
    assert {k: tuple(v.shape) for k, v in tensors.items()} == speech_tokenizer_shapes(128, 2)
    assert all(v.dtype == torch.float32 for v in tensors.values())
    for key, value in tiny.state_dict().items():
        assert torch.equal(value, tensors[PREFIX + key]), key


def test_missing_or_misshapen_tensors_are_named(tiny_file: Path, tmp_path: Path) -> None:
    tensors = speech_tokenizer_tensors(0, "tiny")
    del tensors[PREFIX + "encoder.blocks.1.attn.fsmn_block.weight"]
    tensors[PREFIX + "quantizer._codebook.project_down.bias"] = torch.zeros(7)
    save_file(tensors, tmp_path / "bad.safetensors")
    with pytest.raises(CheckpointError) as err:
        load_speech_tokenizer(tmp_path / "bad.safetensors")
    assert PREFIX + "encoder.blocks.1.attn.fsmn_block.weight" in str(err.value)
    assert PREFIX + "quantizer._codebook.project_down.bias" in str(err.value)

    save_file({"flow.x": torch.zeros(2)}, tmp_path / "none.safetensors")
    with pytest.raises(CheckpointError, match=r"encoder\.conv1\.weight"):
        load_speech_tokenizer(tmp_path / "none.safetensors")

    tensors = speech_tokenizer_tensors(0, "tiny")
    tensors[PREFIX + "window"] = torch.ones(512)
    save_file(tensors, tmp_path / "window.safetensors")
    with pytest.raises(CheckpointError, match=r"tokenizer\.window"):
        load_speech_tokenizer(tmp_path / "window.safetensors")


def test_buffers_come_from_the_file_or_are_computed(tiny: SpeechTokenizer, tmp_path: Path) -> None:
    tensors = speech_tokenizer_tensors(0, "tiny")
    marked = tensors[PREFIX + "_mel_filters"] * 2
    save_file({**tensors, PREFIX + "_mel_filters": marked}, tmp_path / "marked.safetensors")
    assert torch.equal(load_speech_tokenizer(tmp_path / "marked.safetensors")._mel_filters, marked)

    del tensors[PREFIX + "_mel_filters"], tensors[PREFIX + "window"]
    save_file(tensors, tmp_path / "bare.safetensors")
    bare = load_speech_tokenizer(tmp_path / "bare.safetensors")
    assert torch.equal(bare._mel_filters, mel_filters()) and torch.equal(bare.window, torch.hann_window(400))
    wave = voiced(2.0)
    assert torch.equal(bare.tokens(wave), tiny.tokens(wave))


# --- lengths ------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("samples", "tokens"),
    [
        (201, 1),
        (319, 1),
        (320, 1),
        (640, 1),
        (800, 2),
        (96000, 150),
        (96159, 150),
        (96160, 151),
        (160000, 250),
    ],
)
def test_frames_and_tokens_follow_the_spec(tiny: SpeechTokenizer, samples: int, tokens: int) -> None:
    frames = samples // 160
    assert token_count(samples) == tokens == math.ceil(math.ceil(frames / 2) / 2)
    wave = torch.from_numpy(np.resize(voiced(1.0), samples))
    assert tiny.log_mel(wave).shape == (128, frames)
    ids = tiny.tokens(wave)
    assert ids.shape == (tokens,) and ids.dtype == torch.int64
    assert 0 <= int(ids.min()) and int(ids.max()) < 3**8


def test_max_tokens_cuts_the_mel_after_the_whole_waves_log_mel(tiny: SpeechTokenizer) -> None:
    wave = torch.from_numpy(voiced(8.0, seed=2))
    ids = tiny.tokens(wave, max_tokens=150)
    assert ids.shape == (150,) and token_count(wave.numel(), 150) == 150
    mel = tiny.log_mel(wave)[:, :600]
    expected, lengths = tiny(mel[None], torch.tensor([600]))
    assert torch.equal(ids, expected[0]) and lengths.tolist() == [150]
    assert torch.equal(tiny.tokens(wave, max_tokens=1000), tiny.tokens(wave))
    assert tiny.tokens(wave[:1000], max_tokens=150).shape == (token_count(1000),)
    with pytest.raises(ValueError, match="max_tokens"):
        tiny.tokens(wave, max_tokens=0)


def test_unusable_audio_is_refused_naming_audio(tiny: SpeechTokenizer) -> None:
    with pytest.raises(CodecInputError, match="audio holds 200 samples"):
        tiny.tokens(np.zeros(200, np.float32))
    assert tiny.tokens(np.full(201, 0.1, np.float32)).shape == (1,)
    with pytest.raises(CodecInputError, match="audio"):
        tiny.tokens(np.zeros((2, 16000), np.float32))
    with pytest.raises(CodecInputError, match="audio"):
        tiny.tokens(np.full(16000, np.nan, np.float32))
    long = np.resize(voiced(1.0), 30 * SR + 160)
    with pytest.raises(CodecInputError, match=r"audio: 30\.01 s gives 3001 mel frames"):
        tiny.tokens(long)
    assert tiny.tokens(long, max_tokens=150).shape == (150,)
    assert tiny.tokens(long[None, : 30 * SR]).shape == (750,)


# --- padding ------------------------------------------------------------------------------------


def test_padding_does_not_change_the_unpadded_rows(tiny: SpeechTokenizer) -> None:
    short = tiny.log_mel(torch.from_numpy(voiced(3.97, seed=7)))  # 397 frames, odd
    long = tiny.log_mel(torch.from_numpy(voiced(6.0, seed=8)))
    batch = torch.zeros(2, 128, 600)
    batch[0, :, :397], batch[1] = short, long
    # Garbage in the padding must not leak into the valid frames either.
    batch[0, :, 397:] = 50.0
    lengths = torch.tensor([397, 600])
    with torch.inference_mode():
        hidden, out_lengths = tiny.encoder(batch, lengths)
        ids, _ = tiny(batch, lengths)
        alone_short, _ = tiny.encoder(short[None], torch.tensor([397]))
        alone_long, _ = tiny.encoder(long[None], torch.tensor([600]))
    assert out_lengths.tolist() == [token_count(397 * 160), 150] == [100, 150]
    torch.testing.assert_close(hidden[0, :100], alone_short[0], rtol=0, atol=1e-4)
    torch.testing.assert_close(hidden[1], alone_long[0], rtol=0, atol=1e-4)
    assert torch.equal(ids[0, :100], tiny.quantizer(alone_short[0]))
    assert torch.equal(ids[1], tiny.quantizer(alone_long[0]))


# --- settings, determinism, random weights -------------------------------------------------------


def test_attn_ln_eps_is_wired_and_settable_from_the_pack(tiny_file: Path, tmp_path: Path) -> None:
    assert DEFAULT_ATTN_LN_EPS == 1e-5
    other = load_speech_tokenizer(tiny_file, attn_ln_eps=1e-6)
    default = load_speech_tokenizer(tiny_file)
    assert [b.attn_ln.eps for b in other.encoder.blocks] == [1e-6, 1e-6]
    assert [b.mlp_ln.eps for b in other.encoder.blocks] == [1e-5, 1e-5]
    mel = default.log_mel(torch.from_numpy(voiced(2.0)))[None]
    with torch.inference_mode():
        a, _ = default.encoder(mel, torch.tensor([200]))
        b, _ = other.encoder(mel, torch.tensor([200]))
    assert 0 < float((a - b).abs().max()) < 1e-2

    config = tmp_path / "s3gen.json"
    assert attn_ln_eps_setting(config) == DEFAULT_ATTN_LN_EPS
    config.write_text(json.dumps({"flow": {}, "hift": {}}))
    assert attn_ln_eps_setting(config) == DEFAULT_ATTN_LN_EPS
    config.write_text(json.dumps({"tokenizer": {"attn_ln_eps": 1e-6}}))
    assert attn_ln_eps_setting(config) == 1e-6
    for bad in [{"attn_ln_eps": "small"}, {"attn_ln_eps": 0}, {"attn_eps": 1e-6}]:
        config.write_text(json.dumps({"tokenizer": bad}))
        with pytest.raises(ValueError, match="tokenizer"):
            attn_ln_eps_setting(config)


def test_tokens_are_deterministic(tiny_file: Path, tiny: SpeechTokenizer) -> None:
    wave = voiced(3.0, seed=9)
    first = tiny.tokens(wave)
    assert torch.equal(first, tiny.tokens(torch.from_numpy(wave)[None]))
    assert torch.equal(first, load_speech_tokenizer(tiny_file).tokens(wave.astype(np.float64)))


@pytest.mark.parametrize("size", ["tiny", "full"])
def test_random_weights_give_ids_that_follow_the_audio(size: str) -> None:
    n_state, n_layers = (128, 2) if size == "tiny" else (1280, 6)
    tokenizer = SpeechTokenizer(n_state, n_layers)
    state = speech_tokenizer_tensors(1, size)
    tokenizer.load_state_dict({k.removeprefix(PREFIX): v for k, v in state.items()})
    ids = tokenizer.eval().tokens(voiced(4.0, seed=10))
    assert ids.shape == (100,)
    assert len(set(ids.tolist())) > 30 and int((ids[1:] != ids[:-1]).sum()) > 60
    with pytest.raises(ValueError, match="size"):
        speech_tokenizer_tensors(1, "huge")
