"""SNAC streaming (Orpheus) against its offline decode and against the reference streamer.

`python -m bench snac [--pack DIR]` decodes random utterances (5 s and 30 s by default) three
ways, in one run, with the same position-seeded noise:

- offline: the whole utterance in one pass (the reference for quality);
- voxserve: chunks on the vocoder's chunk ladder (2 frames first, up to 12) with the decoder's
  measured reach as context on both sides;
- reference streamer (the Orpheus serving loop): each time a frame completes from the fourth on,
  decode the last 4 frames and keep the second one.

It reports the samples each emits against the utterance's, the largest difference from offline
and the SNR over what was emitted, decode seconds per audio second, the time to the first
decoded audio, and the largest sample-to-sample jump at chunk seams against the largest inside.
"""

from __future__ import annotations

import time
from dataclasses import asdict, dataclass
from pathlib import Path

import torch

from bench.streamed import seam_jumps, snr_db, stream_in_chunks, write_result
from voxserve.vocoder.codecs.base import VoiceConditioning
from voxserve.vocoder.codecs.snac.codec import CODES_PER_FRAME, SnacCodec
from voxserve.vocoder.stream import ChunkPolicy

# The reference loop: decode the last 4 frames whenever a frame completes (from the 4th on),
# emit the second of them.
REFERENCE_WINDOW_FRAMES = 4
REFERENCE_KEPT_FRAME = 1


@dataclass(frozen=True)
class ReferenceDecode:
    audio: torch.Tensor
    first_frame: int
    """The utterance frame its first sample belongs to."""
    seconds: list[float]


def reference_stream(codec: SnacCodec, frames: torch.Tensor, seed: int) -> ReferenceDecode:
    """The reference streamer on `frames` [T, 7], every decode timed."""
    spf = codec.samples_per_token
    pieces, seconds = [], []
    for count in range(REFERENCE_WINDOW_FRAMES, len(frames) + 1):
        first = count - REFERENCE_WINDOW_FRAMES
        window = frames[first:count].unsqueeze(0)
        started = time.perf_counter()
        audio = codec.decode(window, seeds=[seed], first_frames=[first])[0]
        seconds.append(time.perf_counter() - started)
        pieces.append(audio[REFERENCE_KEPT_FRAME * spf : (REFERENCE_KEPT_FRAME + 1) * spf])
    audio = torch.cat(pieces) if pieces else torch.zeros(0)
    return ReferenceDecode(audio, REFERENCE_KEPT_FRAME, seconds)


@dataclass(frozen=True)
class Figures:
    frames: int
    audio_seconds: float
    utterance_samples: int
    voxserve_samples: int
    reference_samples: int
    voxserve_max_abs_diff: float
    reference_max_abs_diff: float
    voxserve_snr_db: float
    reference_snr_db: float
    offline_seconds_per_audio_second: float
    voxserve_seconds_per_audio_second: float
    reference_seconds_per_audio_second: float
    voxserve_first_audio_frames: int
    """Frames that must have arrived before the first audio is decoded."""
    reference_first_audio_frames: int
    voxserve_seam_max_jump: float
    reference_seam_max_jump: float
    inside_max_jump: float


def measure(codec: SnacCodec, n_frames: int, policy: ChunkPolicy, seed: int = 0) -> Figures:
    generator = torch.Generator().manual_seed(n_frames)
    frames = torch.randint(0, codec.token_vocab_size, (n_frames, CODES_PER_FRAME), generator=generator)
    spf = codec.samples_per_token
    audio_seconds = n_frames * spf / codec.sample_rate
    started = time.perf_counter()
    offline = codec.decode(frames.unsqueeze(0), seeds=[seed], first_frames=[0])[0]
    offline_seconds = time.perf_counter() - started

    tokens = [tuple(int(c) for c in frame) for frame in frames]
    codec.condition(VoiceConditioning())  # SNAC takes no voice: its streams have no conditioning
    ours = stream_in_chunks(codec, None, tokens, seed, policy)
    reference = reference_stream(codec, frames, seed)
    # Compare the reference over the samples it emitted, where they belong in the utterance.
    start = reference.first_frame * spf
    covered = offline[start : start + reference.audio.numel()]
    reference_chunks = list(reference.audio.split(spf)) if reference.audio.numel() else []
    our_seam, inside = seam_jumps(ours.chunks)
    reference_seam = seam_jumps(reference_chunks)[0] if len(reference_chunks) > 1 else 0.0
    return Figures(
        frames=n_frames,
        audio_seconds=audio_seconds,
        utterance_samples=n_frames * spf,
        voxserve_samples=ours.audio.numel(),
        reference_samples=reference.audio.numel(),
        voxserve_max_abs_diff=float((ours.audio - offline).abs().max()),
        reference_max_abs_diff=float((reference.audio - covered).abs().max()),
        voxserve_snr_db=snr_db(offline, ours.audio),
        reference_snr_db=snr_db(covered, reference.audio),
        offline_seconds_per_audio_second=offline_seconds / audio_seconds,
        voxserve_seconds_per_audio_second=sum(ours.seconds) / audio_seconds,
        reference_seconds_per_audio_second=sum(reference.seconds) / audio_seconds,
        voxserve_first_audio_frames=policy.first_chunk_tokens + policy.lookahead_tokens,
        reference_first_audio_frames=REFERENCE_WINDOW_FRAMES,
        voxserve_seam_max_jump=our_seam,
        reference_seam_max_jump=reference_seam,
        inside_max_jump=inside,
    )


def run_snac_stream(
    pack: Path, out_dir: Path, durations: tuple[float, ...] = (5.0, 30.0)
) -> dict[str, object]:
    torch.set_num_threads(1)
    codec = SnacCodec.from_pack(pack)
    context = codec.receptive_field_tokens
    policy = ChunkPolicy(2, 12, context, context)
    frames_per_second = codec.sample_rate / codec.samples_per_token
    figures = {f"{d:g}s": asdict(measure(codec, round(d * frames_per_second), policy)) for d in durations}
    result: dict[str, object] = {"pack": str(pack), "policy": asdict(policy), "figures": figures}
    return write_result(out_dir, "snac-stream", result)
