"""Every codec decodes in every dtype the vocoder config accepts: batches of windows through
`decode_windows` and streams through the scheduler, float32 samples out, within a measured
distance of the float32 decode (DEVELOPERS.md, "Reduced precision")."""

from __future__ import annotations

import asyncio
import dataclasses
import itertools
import random
from collections.abc import Callable
from pathlib import Path
from typing import Any, Protocol

import pytest
import torch

from bench.s3gen_stream import voice_conditioning
from bench.streamed import snr_db
from tests.services.vocoder.helpers import joined, stream_through
from voxserve.random_packs.s3gen_checkpoint import write_random_s3gen
from voxserve.random_packs.tiny_snac import write_snac
from voxserve.random_packs.voices import random_s3_voice
from voxserve.vocoder.batch import Batch
from voxserve.vocoder.codecs.base import Codec, VoiceConditioning
from voxserve.vocoder.codecs.bicodec import BiCodec
from voxserve.vocoder.codecs.s3gen.codec import CHECKPOINT_FILE, CONFIG_FILE, S3GenCodec, config_to_json
from voxserve.vocoder.codecs.s3gen.config import TINY as TINY_S3GEN
from voxserve.vocoder.codecs.snac import SnacCodec
from voxserve.vocoder.config import DTYPES
from voxserve.vocoder.scheduler import Scheduler, SchedulerLimits
from voxserve.vocoder.stream import ChunkPolicy, DecodeStream

REDUCED = [name for name in DTYPES if name != "float32"]

# Largest |sample - float32 sample| and smallest SNR against float32 (dB), per codec and dtype,
# for the streams below. Measured on these tiny packs (torch 2.13, CPU), worst stream:
#   bicodec      bf16 0.063   28.9 dB   fp16 0.0093  46.4 dB
#   s3gen        bf16 2.0e-4  44.6 dB   fp16 2.4e-5  62.1 dB   (random S3Gen peaks near 0.02)
#   s3gen turbo  bf16 2.7e-4  43.9 dB   fp16 3.4e-5  62.0 dB
#   snac         bf16 0.0095  47.9 dB   fp16 0.0018  62.7 dB
# The bounds leave 2x (6 dB) for other builds of torch and other CPUs.
BOUNDS: dict[tuple[str, str], tuple[float, float]] = {
    ("bicodec", "bfloat16"): (0.13, 23.0),
    ("bicodec", "float16"): (0.02, 40.0),
    ("s3gen", "bfloat16"): (4e-4, 38.0),
    ("s3gen", "float16"): (5e-5, 56.0),
    ("s3gen-turbo", "bfloat16"): (6e-4, 38.0),
    ("s3gen-turbo", "float16"): (7e-5, 56.0),
    ("snac", "bfloat16"): (0.02, 42.0),
    ("snac", "float16"): (0.0035, 56.0),
}


class LoadedCodec(Codec, Protocol):
    dtype: torch.dtype
    """The dtype it was loaded in."""


CODECS = sorted({codec for codec, _ in BOUNDS})
STREAMS = 2
TOKENS = 24


@pytest.fixture(scope="module")
def packs(
    tiny_bicodec_pack: Path, tiny_s3gen_pack: Path, tmp_path_factory: pytest.TempPathFactory
) -> dict[str, Path]:
    turbo = tmp_path_factory.mktemp("tiny-s3gen-turbo-pack")
    config = dataclasses.replace(
        TINY_S3GEN, flow=dataclasses.replace(TINY_S3GEN.flow, meanflow=True, steps=2)
    )
    write_random_s3gen(turbo / CHECKPOINT_FILE, config, seed=3)
    (turbo / CONFIG_FILE).write_text(config_to_json(config))
    snac = tmp_path_factory.mktemp("tiny-snac-pack")
    write_snac(snac)
    return {"bicodec": tiny_bicodec_pack, "s3gen": tiny_s3gen_pack, "s3gen-turbo": turbo, "snac": snac}


@pytest.fixture(scope="module")
def load(packs: dict[str, Path]) -> Callable[[str, str], LoadedCodec]:
    """(codec, dtype name) -> the codec loaded from its tiny pack in that dtype, once."""
    loaded: dict[tuple[str, str], LoadedCodec] = {}
    classes: dict[str, Any] = {
        "bicodec": BiCodec,
        "s3gen": S3GenCodec,
        "s3gen-turbo": S3GenCodec,
        "snac": SnacCodec,
    }

    def get(codec: str, dtype: str) -> LoadedCodec:
        if (codec, dtype) not in loaded:
            loaded[codec, dtype] = classes[codec].from_pack(packs[codec], dtype=DTYPES[dtype])
        return loaded[codec, dtype]

    return get


def voices(codec: Codec) -> list[VoiceConditioning]:
    """S3Gen prompts of different lengths, so rows are right-padded and masked."""
    if isinstance(codec, S3GenCodec):
        return [voice_conditioning(random_s3_voice(codec.config.flow, 8 + 12 * i, i)) for i in range(STREAMS)]
    return [codec.warmup_voice(i) for i in range(STREAMS)]


def tokens(codec: Codec, seed: int) -> list[Any]:
    shape = (TOKENS,) if codec.codes_per_token == 1 else (TOKENS, codec.codes_per_token)
    generator = torch.Generator().manual_seed(seed)
    return torch.randint(0, codec.token_vocab_size, shape, generator=generator).tolist()


def policy(codec: Codec) -> ChunkPolicy:
    """A set context (the same windows in every dtype, none measured); chunks of 4, 8, then 12."""
    return ChunkPolicy(4, 12, *codec.chunk_context(4, 5e-5))


def decode_in_batches(codec: Codec) -> list[torch.Tensor]:
    """Every stream's audio, its windows decoded together, one batch per chunk."""
    p = policy(codec)
    streams = []
    for i, voice in enumerate(voices(codec)):
        conditioning = codec.condition(voice)
        stream = DecodeStream(
            conditioning, codec.samples_per_token, codec.sample_rate, state=codec.open_stream(conditioning, i)
        )
        stream.append(tokens(codec, i))
        stream.end()
        streams.append(stream)
    audio: list[list[torch.Tensor]] = [[] for _ in streams]
    for size in itertools.chain(p.sizes, itertools.repeat(p.max_chunk_tokens)):
        if all(s.finished for s in streams):
            break
        windows = [s.next_window(p, size) for s in streams]
        assert all(w is not None for w in windows)
        batch = Batch.from_requests(windows, {s.id: s for s in streams})  # type: ignore[arg-type]
        for i, (window, samples) in enumerate(
            zip(batch.windows, codec.decode_windows(batch.rows), strict=True)
        ):
            assert samples.dtype == torch.float32
            assert samples.shape == (window.chunk_tokens * codec.samples_per_token,)
            streams[i].deliver(window, samples, 0.0)
            audio[i].append(samples)
    return [torch.cat(a) for a in audio]


@pytest.fixture(scope="module")
def reference(load: Callable[[str, str], LoadedCodec]) -> Callable[[str], list[torch.Tensor]]:
    cache: dict[str, list[torch.Tensor]] = {}

    def get(codec: str) -> list[torch.Tensor]:
        if codec not in cache:
            cache[codec] = decode_in_batches(load(codec, "float32"))
        return cache[codec]

    return get


def test_every_accepted_reduced_dtype_has_a_measured_bound() -> None:
    assert REDUCED and {(c, d) for c in CODECS for d in REDUCED} == set(BOUNDS)


@pytest.mark.parametrize("dtype", REDUCED)
@pytest.mark.parametrize("codec_name", CODECS)
def test_batched_windows_decode_close_to_float32(
    codec_name: str,
    dtype: str,
    load: Callable[[str, str], LoadedCodec],
    reference: Callable[[str], list[torch.Tensor]],
) -> None:
    codec = load(codec_name, dtype)
    assert codec.dtype == DTYPES[dtype]
    max_abs, min_snr = BOUNDS[codec_name, dtype]
    for ours, theirs in zip(decode_in_batches(codec), reference(codec_name), strict=True):
        assert ours.shape == theirs.shape == (TOKENS * codec.samples_per_token,)
        assert torch.isfinite(ours).all()
        difference = float((ours - theirs).abs().max())
        assert 0 < difference <= max_abs, "0 would mean the weights were not in the reduced dtype"
        assert snr_db(theirs, ours) >= min_snr


def test_s3gen_keeps_its_f0_predictor_in_float32(load: Callable[[str, str], LoadedCodec]) -> None:
    """The excitation's phase integrates f0 over a stream, so f0 is never rounded to 8 or 11
    bits; everything else runs in the reduced dtype."""
    codec = load("s3gen", "bfloat16")
    assert isinstance(codec, S3GenCodec)
    hift = codec.model.mel2wav
    assert {p.dtype for p in hift.f0_predictor.parameters()} == {torch.float32}
    assert {p.dtype for n, p in codec.model.named_parameters() if ".f0_predictor." not in n} == {
        torch.bfloat16
    }
    mel = torch.randn(1, codec.config.flow.mel_bins, 6, dtype=torch.bfloat16)
    assert hift.f0_predictor(mel).dtype == torch.float32


def test_bicodec_measures_its_context_on_a_float32_twin(load: Callable[[str, str], LoadedCodec]) -> None:
    codec = load("bicodec", "float16")
    assert isinstance(codec, BiCodec)
    twin = codec.float32_twin()
    assert twin.dtype == torch.float32 and codec.dtype == torch.float16
    assert twin.receptive_field_tokens == codec.receptive_field_tokens
    conditioning = codec.condition(codec.warmup_voice())[None]
    ids = torch.randint(0, codec.token_vocab_size, (1, 12), generator=torch.Generator().manual_seed(0))
    exact = twin.decode(ids, conditioning.float())
    assert float((codec.decode(ids, conditioning) - exact).abs().max()) <= BOUNDS["bicodec", "float16"][0]


@pytest.mark.parametrize("dtype", REDUCED)
@pytest.mark.parametrize("codec_name", CODECS)
async def test_streams_through_the_scheduler_keep_every_sample(
    codec_name: str, dtype: str, load: Callable[[str, str], LoadedCodec]
) -> None:
    codec = load(codec_name, dtype)
    scheduler = Scheduler(codec, policy(codec), SchedulerLimits(max_batch_tokens=1024))
    assert await asyncio.to_thread(scheduler.warm_up, codec.warmup_voice()) > 0
    scheduler.start()
    try:
        rng = random.Random(0)
        runs = [
            stream_through(scheduler, voice, tokens(codec, i), frame=rng.randint(1, 5), rng=rng)
            for i, voice in enumerate(voices(codec))
        ]
        results = await asyncio.gather(*runs)
    finally:
        await scheduler.stop()
    for chunks in results:
        audio = joined(chunks)
        assert audio.dtype == torch.float32 and audio.shape == (TOKENS * codec.samples_per_token,)
        assert torch.isfinite(audio).all() and float(audio.abs().max()) > 0
        assert chunks[-1].final
