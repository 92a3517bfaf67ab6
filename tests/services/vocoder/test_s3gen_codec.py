"""S3Gen as a streaming codec: exact sample counts, closeness to offline, seamless chunks,
padding-invariant batches, voices checked field by field."""

from __future__ import annotations

import asyncio
import dataclasses
import random
from pathlib import Path

import numpy as np
import pytest
import torch
from safetensors.torch import save_file

from bench.s3gen_stream import WHOLE_PREFIX, decode_in_chunks, seam_jumps, snr_db, voice_conditioning
from tests.services.vocoder.helpers import joined, stream_through
from voxserve.random_packs.voices import random_s3_voice
from voxserve.vocoder.batch import Batch
from voxserve.vocoder.codecs.base import CodecInputError, VoiceConditioning
from voxserve.vocoder.codecs.checkpoint import PARAMETRIZED, checkpoint_entries
from voxserve.vocoder.codecs.s3gen.checkpoint import meta_model
from voxserve.vocoder.codecs.s3gen.codec import (
    CHECKPOINT_FILE,
    CONFIG_FILE,
    S3GenCodec,
    config_to_json,
    pack_config,
)
from voxserve.vocoder.codecs.s3gen.config import TINY
from voxserve.vocoder.codecs.s3gen.continuity import CROSSFADE_SAMPLES, crossfade_gains
from voxserve.vocoder.codecs.s3gen.offline import decode_offline
from voxserve.vocoder.codecs.s3gen.voice import S3Voice
from voxserve.vocoder.scheduler import Scheduler, SchedulerLimits
from voxserve.vocoder.stream import ChunkPolicy, DecodeStream

SPT = 960
# Streamed vs offline on the tiny random pack, measured (bench s3gen): 29-33 dB, max diff
# 0.0018-0.0025 with a 25-token flow context. The bounds leave room for other seeds.
MIN_SNR_DB = 25.0
MAX_ABS_DIFF = 0.005


def policy(codec: S3GenCodec, left: int | None = None, first: int = 10, largest: int = 40) -> ChunkPolicy:
    context = codec.left_context_tokens if left is None else left
    return ChunkPolicy(first, largest, context, codec.lookahead_tokens)


def tokens(n: int, seed: int) -> list[int]:
    return torch.randint(0, 6561, (n,), generator=torch.Generator().manual_seed(seed)).tolist()


def voice(seed: int, prompt_tokens: int = 20) -> S3Voice:
    return random_s3_voice(TINY.flow, prompt_tokens, seed)


@pytest.mark.parametrize("n", [1, 3, 12, 13, 14, 57])
def test_every_token_gives_960_samples_through_the_end(s3gen_codec: S3GenCodec, n: int) -> None:
    streamed = decode_in_chunks(s3gen_codec, voice(1), tokens(n, n), seed=0, policy=policy(s3gen_codec))
    assert streamed.audio.shape == (SPT * n,)
    assert sum(c.numel() for c in streamed.chunks) == SPT * n and torch.isfinite(streamed.audio).all()


def test_streamed_is_close_to_offline_and_the_prefix_rerun_no_closer_by_much(s3gen_codec: S3GenCodec) -> None:
    t, v = tokens(150, 4), voice(2)
    reference = decode_offline(s3gen_codec.model, torch.tensor(t), v, seed=9)
    ours = decode_in_chunks(s3gen_codec, v, t, seed=9, policy=policy(s3gen_codec)).audio
    whole = decode_in_chunks(s3gen_codec, v, t, seed=9, policy=policy(s3gen_codec, left=WHOLE_PREFIX)).audio
    assert snr_db(reference, ours) >= MIN_SNR_DB
    assert float((ours - reference).abs().max()) <= MAX_ABS_DIFF
    # What the bounded context costs in fidelity is small next to the lookahead's own limit.
    assert snr_db(reference, whole) - snr_db(reference, ours) < 6.0
    # Another seed is another signal: the closeness is not the audio being silent.
    other = decode_offline(s3gen_codec.model, torch.tensor(t), v, seed=10)
    assert snr_db(reference, other) < 10.0


def test_two_chunkings_draw_each_frames_noise_from_its_position(s3gen_codec: S3GenCodec) -> None:
    """Noise per absolute frame: chunking 10/20/40 and chunking 20/40 start every frame from the
    same noise, so they agree about as well as either agrees with offline; noise per window
    would make them unrelated signals."""
    t, v = tokens(120, 5), voice(3)
    a = decode_in_chunks(s3gen_codec, v, t, seed=1, policy=policy(s3gen_codec, first=10)).audio
    b = decode_in_chunks(s3gen_codec, v, t, seed=1, policy=policy(s3gen_codec, first=20)).audio
    assert snr_db(a, b) >= MIN_SNR_DB


def test_no_jump_at_a_seam_exceeds_the_largest_inside_chunks(s3gen_codec: S3GenCodec) -> None:
    for seed in range(3):
        streamed = decode_in_chunks(
            s3gen_codec, voice(seed), tokens(200, seed), seed=seed, policy=policy(s3gen_codec)
        )
        assert len(streamed.chunks) >= 5
        seam, inside = seam_jumps(streamed.chunks)
        assert seam <= inside, (seed, seam, inside)


def test_crossfade_gains_sum_to_one_and_fall_from_the_old_signal_to_the_new() -> None:
    gains = crossfade_gains(CROSSFADE_SAMPLES)
    x = torch.randn(CROSSFADE_SAMPLES, generator=torch.Generator().manual_seed(0))
    assert torch.all(gains + (1 - gains) == 1)  # exactly, in float32 (Hamming halves sum to 1.08)
    torch.testing.assert_close(gains * x + (1 - gains) * x, x, rtol=0, atol=2.5e-7)  # rounding only
    assert gains[0] > 0.999 and gains[-1] < 0.001 and torch.all(gains[1:] <= gains[:-1])


def _open(codec: S3GenCodec, v: S3Voice, t: list[int], seed: int) -> DecodeStream:
    conditioning = codec.condition(voice_conditioning(v))
    stream = DecodeStream(conditioning, SPT, 24000, state=codec.open_stream(conditioning, seed))
    stream.append(t)
    return stream


def test_batched_rows_equal_solo_rows_with_prompts_of_different_lengths(s3gen_codec: S3GenCodec) -> None:
    """Three streams whose prompts differ in length share flow forwards (right-padded, masked)
    for two chunks in a row: every row's samples and next state match decoding it alone."""
    p = policy(s3gen_codec, first=10, largest=10)
    specs = [
        (voice(1, 8), tokens(40, 1), 1),
        (voice(2, 20), tokens(40, 2), 2),
        (voice(3, 45), tokens(40, 3), 3),
    ]
    solo = []
    for v, t, seed in specs:
        stream = _open(s3gen_codec, v, t, seed)
        out = []
        for _ in range(2):
            window = stream.next_window(p, 10)
            assert window is not None
            [samples] = s3gen_codec.decode_windows(Batch.from_requests([window], {stream.id: stream}).rows)
            stream.deliver(window, samples, 0.0)
            out.append(samples)
        solo.append(torch.cat(out))
    streams = [_open(s3gen_codec, v, t, seed) for v, t, seed in specs]
    together: list[list[torch.Tensor]] = [[] for _ in streams]
    for _ in range(2):
        windows = [s.next_window(p, 10) for s in streams]
        assert all(w is not None for w in windows)
        batch = Batch.from_requests(windows, {s.id: s for s in streams})  # type: ignore[arg-type]
        for i, (stream, window, samples) in enumerate(
            zip(streams, windows, s3gen_codec.decode_windows(batch.rows), strict=True)
        ):
            stream.deliver(window, samples, 0.0)  # type: ignore[arg-type]
            together[i].append(samples)
    for alone, batched in zip(solo, together, strict=True):
        assert float((torch.cat(batched) - alone).abs().max()) <= 1e-4


async def test_concurrent_streams_through_the_scheduler_keep_every_sample(s3gen_codec: S3GenCodec) -> None:
    scheduler = Scheduler(s3gen_codec, policy(s3gen_codec), SchedulerLimits(max_batch_tokens=4096))
    scheduler.start()
    try:
        rng = random.Random(0)
        lengths = [0, 1, 17, 60, 95]
        runs = [
            stream_through(
                scheduler, voice_conditioning(voice(i)), tokens(n, i), frame=rng.randint(1, 7), rng=rng
            )
            for i, n in enumerate(lengths)
        ]
        results = await asyncio.gather(*runs)
    finally:
        await scheduler.stop()
    for n, chunks in zip(lengths, results, strict=True):
        assert joined(chunks).numel() == SPT * n
        assert [c.sample_offset for c in chunks] == list(
            np.cumsum([0] + [c.samples.numel() for c in chunks])[:-1]
        )
        assert chunks[-1].final and not any(c.final for c in chunks[:-1])


def test_cost_per_chunk_is_bounded_whatever_the_utterance_length(s3gen_codec: S3GenCodec) -> None:
    """The flow of a late chunk sees the prompt and a bounded window, never the whole prefix."""
    p = policy(s3gen_codec, first=10, largest=40)
    stream = _open(s3gen_codec, voice(1), tokens(1500, 1), seed=0)
    lengths = []
    while (window := stream.next_window(p, 40)) is not None:
        lengths.append(window.length)
        stream.deliver(window, torch.zeros(0), 0.0)
    assert max(lengths) == p.left_context_tokens + 40 + p.lookahead_tokens
    assert len(lengths) > 30


def test_voice_fields_are_checked_by_name(s3gen_codec: S3GenCodec) -> None:
    good = voice_conditioning(voice(1))
    with pytest.raises(CodecInputError, match="s3_prompt is required"):
        s3gen_codec.condition(VoiceConditioning(global_ids=(1, 2)))
    flat = np.asarray(good.prompt_mel).reshape(-1)
    with pytest.raises(CodecInputError, match=r"s3_prompt.prompt_mel_f32 holds 79 floats"):
        s3gen_codec.condition(dataclasses.replace(good, prompt_mel=flat[:79]))
    with pytest.raises(
        CodecInputError, match=r"s3_prompt.prompt_mel has shape \(38, 80\); expected \(40, 80\)"
    ):
        s3gen_codec.condition(dataclasses.replace(good, prompt_mel=flat[: 38 * 80]))
    with pytest.raises(CodecInputError, match=r"s3_prompt.xvector has shape \(3,\); expected \(192,\)"):
        s3gen_codec.condition(dataclasses.replace(good, xvector=(1.0, 2.0, 3.0)))
    with pytest.raises(CodecInputError, match=r"s3_prompt.prompt_tokens has 1501 tokens; the limit is 1500"):
        s3gen_codec.condition(
            dataclasses.replace(good, prompt_tokens=(0,) * 1501, prompt_mel=np.zeros((3002, 80), np.float32))
        )
    with pytest.raises(CodecInputError, match=r"s3_prompt.prompt_tokens must lie in \[0, 6561\)"):
        s3gen_codec.condition(dataclasses.replace(good, prompt_tokens=(6561,) * 20))


def test_a_checkpoint_with_the_mixer_is_turbo(tmp_path: Path) -> None:
    turbo = dataclasses.replace(TINY, flow=dataclasses.replace(TINY.flow, meanflow=True, steps=2))
    generator = torch.Generator().manual_seed(0)
    save_file(
        {
            k: torch.randn(s, generator=generator) * 0.05
            for k, _, s in checkpoint_entries(meta_model(turbo), PARAMETRIZED)
        },
        str(tmp_path / CHECKPOINT_FILE),
    )
    (tmp_path / CONFIG_FILE).write_text(config_to_json(TINY))  # the sizes say nothing of turbo
    config = pack_config(tmp_path)
    assert config.flow.meanflow and config.flow.steps == 2
    codec = S3GenCodec.from_pack(tmp_path)
    streamed = decode_in_chunks(codec, voice(1), tokens(23, 0), seed=0, policy=policy(codec))
    assert streamed.audio.shape == (SPT * 23,) and torch.isfinite(streamed.audio).all()
