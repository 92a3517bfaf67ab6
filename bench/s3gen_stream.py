"""S3Gen streaming against its offline decode and against the reference's whole-prefix re-run.

`python -m bench s3gen [--pack DIR]` decodes utterances of 5 s and 60 s three ways, in one run:

- offline: the whole utterance in one pass (the reference for quality);
- voxserve: chunks on the vocoder's chunk ladder, the flow seeing the prompt plus a bounded
  left context, HiFT continuing the stream's state;
- prefix re-run (the CosyVoice2 token2wav loop): the same chunks, but every chunk re-runs the
  flow over the whole prefix so far.

It reports decode seconds per audio second (and the ratios), the first chunk's decode time,
streamed vs offline SNR and largest difference, and the largest sample-to-sample jump at chunk
seams against the largest one inside chunks.
"""

from __future__ import annotations

import time
from dataclasses import asdict, dataclass
from pathlib import Path

import torch

from bench.streamed import StreamedDecode, seam_jumps, snr_db, stream_in_chunks, write_result
from voxserve.vocoder.codecs.base import VoiceConditioning
from voxserve.vocoder.codecs.s3gen.codec import S3GenCodec
from voxserve.vocoder.codecs.s3gen.offline import decode_offline
from voxserve.vocoder.codecs.s3gen.voice import S3Voice
from voxserve.vocoder.stream import ChunkPolicy

__all__ = ["StreamedDecode", "decode_in_chunks", "run_s3gen_stream", "seam_jumps", "snr_db"]

TOKENS_PER_SECOND = 25
# Left context large enough that every window starts at the utterance's first token.
WHOLE_PREFIX = 1 << 30


def voice_conditioning(voice: S3Voice) -> VoiceConditioning:
    return VoiceConditioning(
        prompt_tokens=tuple(voice.prompt_tokens.tolist()),
        prompt_mel=voice.prompt_mel.numpy(),
        xvector=tuple(voice.xvector.tolist()),
    )


def decode_in_chunks(
    codec: S3GenCodec, voice: S3Voice, tokens: list[int], seed: int, policy: ChunkPolicy
) -> StreamedDecode:
    """Decode `tokens` in `voice` as the vocoder streams them (see `stream_in_chunks`)."""
    return stream_in_chunks(codec, codec.condition(voice_conditioning(voice)), tokens, seed, policy)


@dataclass(frozen=True)
class Figures:
    audio_seconds: float
    offline_seconds_per_audio_second: float
    voxserve_seconds_per_audio_second: float
    prefix_rerun_seconds_per_audio_second: float
    voxserve_first_chunk_seconds: float
    snr_db: float
    max_abs_diff: float
    prefix_rerun_snr_db: float
    seam_max_jump: float
    inside_max_jump: float


def measure(codec: S3GenCodec, voice: S3Voice, n_tokens: int, policy: ChunkPolicy, seed: int = 0) -> Figures:
    generator = torch.Generator().manual_seed(n_tokens)
    tokens = torch.randint(0, codec.token_vocab_size, (n_tokens,), generator=generator)
    audio_seconds = n_tokens / TOKENS_PER_SECOND
    started = time.perf_counter()
    reference = decode_offline(codec.model, tokens, voice, seed)
    offline_seconds = time.perf_counter() - started
    ours = decode_in_chunks(codec, voice, tokens.tolist(), seed, policy)
    whole = ChunkPolicy(
        policy.first_chunk_tokens, policy.max_chunk_tokens, WHOLE_PREFIX, policy.lookahead_tokens
    )
    rerun = decode_in_chunks(codec, voice, tokens.tolist(), seed, whole)
    seam, inside = seam_jumps(ours.chunks)
    return Figures(
        audio_seconds=audio_seconds,
        offline_seconds_per_audio_second=offline_seconds / audio_seconds,
        voxserve_seconds_per_audio_second=sum(ours.seconds) / audio_seconds,
        prefix_rerun_seconds_per_audio_second=sum(rerun.seconds) / audio_seconds,
        voxserve_first_chunk_seconds=ours.seconds[0],
        snr_db=snr_db(reference, ours.audio),
        max_abs_diff=float((ours.audio - reference).abs().max()),
        prefix_rerun_snr_db=snr_db(reference, rerun.audio),
        seam_max_jump=seam,
        inside_max_jump=inside,
    )


def run_s3gen_stream(
    pack: Path, out_dir: Path, durations: tuple[float, ...] = (5.0, 60.0)
) -> dict[str, object]:
    torch.set_num_threads(1)
    codec = S3GenCodec.from_pack(pack)
    voice = S3Voice.load(pack / "voices" / "default.safetensors", codec.config.flow)
    policy = ChunkPolicy(10, 80, codec.left_context_tokens, codec.lookahead_tokens)
    figures = {
        f"{d:g}s": asdict(measure(codec, voice, round(d * TOKENS_PER_SECOND), policy)) for d in durations
    }
    result: dict[str, object] = {"pack": str(pack), "policy": asdict(policy), "figures": figures}
    return write_result(out_dir, "s3gen-stream", result)
