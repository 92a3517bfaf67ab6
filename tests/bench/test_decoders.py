"""`bench decoders` on tiny codecs: the figures it writes, and that upstream SNAC given voxserve's
weights decodes the same audio as voxserve's offline SNAC decode.

The `snac` package is required, not optional here: the vocoder depends on it, so without it these
tests fail on import rather than skip."""

from __future__ import annotations

import importlib.metadata
import json
from pathlib import Path
from typing import Any

import pytest
import torch

from bench.__main__ import main
from bench.decoders import CODECS, DecoderSettings, Subject, snac_subject
from bench.upstream_decoders import snac_model
from voxserve.random_packs.tiny_snac import TINY

# Upstream and voxserve run the same SNAC modules in the same order, so with the same noise their
# samples agree exactly on this CPU (measured: 0.0 at tiny and at full size); the bound leaves room
# for another BLAS only.
SAME_AUDIO_TOLERANCE = 1e-6


def test_the_bench_writes_every_codec_three_ways(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    argv = ["decoders", "--size", "tiny", "--seconds", "1", "--repeats", "2", "--out", str(tmp_path)]
    assert main(argv) == 0
    [written] = tmp_path.glob("decoders-*.json")
    assert f"written: {written}" in capsys.readouterr().out
    result = json.loads(written.read_text())
    assert result["machine"]["cpu_count"] >= 1 and result["settings"]["size"] == "tiny"
    assert set(result["codecs"]) == set(CODECS)
    for name, figures in result["codecs"].items():
        for way in ("voxserve_offline", "voxserve_streamed"):
            assert figures[f"{way}_s_per_audio_s"] > 0, name
            assert len(figures["timings_s"][way]) == 2, name
        assert figures["streamed_windows"] > 1, f"{name}: one second streams in several chunks"
        # Every way yields the whole utterance's samples.
        assert set(figures["samples"].values()) == {figures["tokens"] * figures["samples_per_token"]}
    snac_figures = result["codecs"]["snac"]
    assert snac_figures["upstream_offline_s_per_audio_s"] > 0
    assert snac_figures["upstream_package"] == f"snac {importlib.metadata.version('snac')}"
    assert isinstance(snac_figures["streamed_no_slower_than_upstream"], bool)
    for name, why in (("bicodec", "not published on PyPI"), ("s3gen", "chatterbox-tts")):
        figures = result["codecs"][name]
        assert figures["upstream_offline_s_per_audio_s"] is None and figures["upstream_package"] is None
        assert why in figures["upstream_reason"], name
        assert figures["streamed_no_slower_than_upstream"] is None


def _decode_with_noise(model: Any, subject: Subject, tokens: list[Any], noise: list[torch.Tensor]) -> Any:
    """Upstream's decode with its noise blocks' draws replaced, in order, by `noise`."""
    queue = list(noise)
    real = torch.randn

    def drawn(shape: Any, *args: Any, device: Any = None, dtype: Any = None, **kwargs: Any) -> torch.Tensor:
        value = queue.pop(0)
        assert tuple(value.shape) == tuple(shape), "the noise blocks run in the order voxserve lists them"
        return value.to(dtype=dtype)

    with pytest.MonkeyPatch.context() as patch, torch.inference_mode():
        patch.setattr(torch, "randn", drawn)
        audio = model.decode(subject.codec.codes(torch.tensor(tokens)[None]))[0, 0]
    assert not queue and torch.randn is real
    return audio


def test_upstream_snac_decodes_voxserve_weights_to_the_same_audio(tmp_path: Path) -> None:
    subject = snac_subject(tmp_path / "snac", DecoderSettings(size="tiny", seconds=1))
    tokens = subject.random_tokens(20, torch.Generator().manual_seed(3))
    ours = subject.offline(tokens, 7)
    noise = [block.noise.clone() for block in subject.codec.noise_blocks if block.noise is not None]
    assert len(noise) == len(subject.codec.noise_blocks) == 4

    upstream = _decode_with_noise(snac_model(subject.codec, TINY), subject, tokens, noise)
    assert upstream.shape == ours.shape == (20 * 2048,)
    assert float((upstream - ours).abs().max()) <= SAME_AUDIO_TOLERANCE

    # The comparison can fail: upstream's own noise, or other weights, give other audio.
    with torch.inference_mode():
        own_noise = snac_model(subject.codec, TINY).decode(subject.codec.codes(torch.tensor(tokens)[None]))
    assert float((own_noise[0, 0] - ours).abs().max()) > 1e-3
    other = snac_subject(tmp_path / "other", DecoderSettings(size="tiny", seconds=1, seed=1))
    other_weights = _decode_with_noise(snac_model(other.codec, TINY), subject, tokens, noise)
    assert float((other_weights - ours).abs().max()) > 1e-3


def test_settings_refuse_unknown_codecs_and_sizes() -> None:
    with pytest.raises(ValueError, match="unknown codecs"):
        DecoderSettings(codecs=("bicodec", "hifigan"))
    with pytest.raises(ValueError, match="size"):
        DecoderSettings(size="medium")
