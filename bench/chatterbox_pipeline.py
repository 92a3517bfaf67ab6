"""Chatterbox first audio two ways, on one running stack over a chatterbox pack:

- pipelined: the gateway's `Speech.Synthesize`, which forwards the S3 speech tokens to the vocoder
  as T3 produces them, so the flow and HiFT start on the first chunk while T3 is still generating;
- wait-all (what the original Chatterbox does: T3, then the flow): the generator's `Generate`
  called directly with the same voice and sampling, every token collected, then one vocoder
  `Decode` stream opened with the voice's S3 prompt and sent all the tokens at once.

Both speak the same texts with the same voice (the pack's `conds.pt`), the same seed and the same
fixed number of tokens (`max_tokens` = `min_tokens`), so they do the same work; runs alternate
between the two (in turn first), after one warm-up request of each. First-audio latency is
measured at the client: request sent -> first audio (pipelined: through the gateway, as a client
hears it; wait-all: from the start of the `Generate` call to the vocoder's first PCM). The
generator's own times (call arrival -> first and last token) come from its final frame
(wait-all) or its log (pipelined, found by request id).
"""

from __future__ import annotations

import json
import statistics
import time
import uuid
from collections.abc import Callable, Iterable, Sequence
from dataclasses import asdict, dataclass, replace
from pathlib import Path
from typing import Any, Protocol

import grpc

from bench.corpus import Text, load_corpus
from bench.report import git_commit, machine_facts
from bench.streamed import write_result
from voxserve import client
from voxserve.common.request_id import METADATA_KEY
from voxserve.families import chatterbox
from voxserve.families.chatterbox import read_conds_voice
from voxserve.families.pack import Pack
from voxserve.gateway.config import load as load_gateway_config
from voxserve.gateway.segmenter import split_text
from voxserve.gateway.voices import VoiceRegistry
from voxserve.stack import LocalStack, Ports
from voxserve.v1 import generator_pb2, generator_pb2_grpc, vocoder_pb2, vocoder_pb2_grpc

MODES = ("pipelined", "wait-all")
FAMILY = chatterbox.FAMILY
CODEC = FAMILY.codec
WARM_UP_TEXT = "Warm up the engine and the vocoder."
CALL_TIMEOUT = 300.0


@dataclass
class RunFigures:
    mode: str
    run: int
    """-1 for the warm-up request."""
    text_id: str
    request_id: str
    first_audio_seconds: float
    """At the client: request sent -> first audio (wait-all: `Generate` called -> first PCM)."""
    total_seconds: float
    """At the client: request sent -> last audio."""
    semantic_tokens: int
    audio_seconds: float
    generator_first_token_seconds: float | None
    """The generator's own: call arrival -> first speech token (None: not found in its log)."""
    generator_all_tokens_seconds: float | None
    """The generator's own: call arrival -> last speech token (None: not found in its log)."""
    client_all_tokens_seconds: float | None = None
    """Wait-all: `Generate` called -> its last frame received, at the client."""


def sampling_params(tokens: int, seed: int) -> generator_pb2.SamplingParams:
    """Seeded sampling of exactly `tokens` speech tokens (the end token is held off until then)."""
    return generator_pb2.SamplingParams(seed=seed, max_tokens=tokens, min_tokens=tokens)


def segment_of(text: str, max_chars: int) -> str:
    """The one segment the gateway speaks `text` in (normalized); a longer text is refused, as the
    two modes would no longer do the same work."""
    segments = split_text(text, max_chars)
    if len(segments) != 1:
        raise ValueError(f"{text!r} is {len(segments)} segments for the gateway; use a shorter text")
    return segments[0]


def _metadata(request_id: str) -> tuple[tuple[str, str], ...]:
    return ((METADATA_KEY, request_id),)


Synthesize = Callable[..., client.Synthesis]


def pipelined(
    address: str,
    text: Text,
    sampling: generator_pb2.SamplingParams,
    seed: int,
    *,
    voice: str,
    run: int,
    synthesize: Synthesize = client.synthesize,
) -> RunFigures:
    """One `Speech.Synthesize` through the gateway. The generator's times are filled in later
    from its log (`with_generator_times`)."""
    request_id = uuid.uuid4().hex[:16]
    result = synthesize(
        address,
        text.text,
        voice=voice,
        sampling=sampling,
        seed=seed,
        timeout=CALL_TIMEOUT,
        metadata=_metadata(request_id),
    )
    if not result.first_audio_seconds:
        raise RuntimeError(f"pipelined run {run} ({text.id}): no audio")
    return RunFigures(
        mode="pipelined",
        run=run,
        text_id=text.id,
        request_id=request_id,
        first_audio_seconds=result.first_audio_seconds,
        total_seconds=result.total_seconds,
        semantic_tokens=result.summary.semantic_tokens,
        audio_seconds=result.audio_seconds,
        generator_first_token_seconds=None,
        generator_all_tokens_seconds=None,
    )


class GeneratorLike(Protocol):
    def Generate(self, request: generator_pb2.GenerateRequest, **kwargs: Any) -> Iterable[Any]: ...


class VocoderLike(Protocol):
    def Decode(self, requests: Iterable[vocoder_pb2.DecodeRequest], **kwargs: Any) -> Iterable[Any]: ...


def wait_all(
    generator: GeneratorLike,
    vocoder: VocoderLike,
    request: generator_pb2.GenerateRequest,
    s3_prompt: vocoder_pb2.S3Prompt,
    seed: int,
    *,
    text_id: str,
    run: int,
    sample_rate: int = FAMILY.sample_rate,
) -> RunFigures:
    """T3 then the flow: every token of `Generate`, then one `Decode` stream sent them all at
    once; first audio is timed from the `Generate` call to the first PCM."""
    request_id = uuid.uuid4().hex[:16]
    metadata = _metadata(request_id)
    started = time.perf_counter()
    tokens: list[int] = []
    result = generator_pb2.GenerateResult()
    for frame in generator.Generate(request, metadata=metadata, timeout=CALL_TIMEOUT):
        tokens.extend(frame.semantic_ids)
        if frame.HasField("result"):
            result.CopyFrom(frame.result)
    all_tokens = time.perf_counter() - started
    messages = [
        vocoder_pb2.DecodeRequest(start=vocoder_pb2.DecodeStart(codec=CODEC, seed=seed, s3_prompt=s3_prompt)),
        vocoder_pb2.DecodeRequest(frame=vocoder_pb2.DecodeFrame(token_ids=tokens)),
        vocoder_pb2.DecodeRequest(end=vocoder_pb2.DecodeEnd()),
    ]
    first_audio: float | None = None
    samples = 0
    for chunk in vocoder.Decode(iter(messages), metadata=metadata, timeout=CALL_TIMEOUT):
        count = len(chunk.pcm_f32) // 4
        if count and first_audio is None:
            first_audio = time.perf_counter() - started
        samples += count
    total = time.perf_counter() - started
    if first_audio is None:
        raise RuntimeError(f"wait-all run {run} ({text_id}): no audio")
    return RunFigures(
        mode="wait-all",
        run=run,
        text_id=text_id,
        request_id=request_id,
        first_audio_seconds=first_audio,
        total_seconds=total,
        semantic_tokens=len(tokens),
        audio_seconds=samples / sample_rate,
        generator_first_token_seconds=result.first_token_seconds,
        generator_all_tokens_seconds=result.total_seconds,
        client_all_tokens_seconds=all_tokens,
    )


def interleave(
    texts: Sequence[Text], runs: int, measure: Callable[[str, Text, int], RunFigures]
) -> list[RunFigures]:
    """`runs` runs of each mode, run k speaking texts[k % len(texts)] in both; the two modes take
    turns going first, so neither always follows the other's work."""
    figures = []
    for run in range(runs):
        text = texts[run % len(texts)]
        order = MODES if run % 2 == 0 else MODES[::-1]
        figures += [measure(mode, text, run) for mode in order]
    return figures


def generator_times(log: Path) -> dict[str, tuple[float, float]]:
    """Request id -> (first token, last token) seconds after the call's arrival, from the
    generator's "generated" log lines."""
    times: dict[str, tuple[float, float]] = {}
    if not log.is_file():
        return times
    for line in log.read_text(errors="replace").splitlines():
        if '"generated"' not in line:
            continue
        try:
            entry = json.loads(line)
        except ValueError:
            continue
        if entry.get("event") == "generated" and "request_id" in entry:
            times[entry["request_id"]] = (float(entry["first_token_seconds"]), float(entry["total_seconds"]))
    return times


def with_generator_times(figures: RunFigures, times: dict[str, tuple[float, float]]) -> RunFigures:
    """Pipelined figures with the generator's times filled in from its log, where found."""
    if figures.generator_all_tokens_seconds is not None or figures.request_id not in times:
        return figures
    first, last = times[figures.request_id]
    return replace(figures, generator_first_token_seconds=first, generator_all_tokens_seconds=last)


def _stats(values: Sequence[float | None]) -> dict[str, float | None]:
    known = [v for v in values if v is not None]
    if not known:
        return {"median": None, "min": None, "max": None}
    return {
        "median": round(statistics.median(known), 4),
        "min": round(min(known), 4),
        "max": round(max(known), 4),
    }


def summarize(figures: Sequence[RunFigures]) -> dict[str, Any]:
    """Per mode: first audio, the generator's time to all tokens and total time (median, min,
    max over the measured runs; the warm-up is left out), and wait-all / pipelined ratios."""
    measured = [f for f in figures if f.run >= 0]
    modes: dict[str, Any] = {}
    for mode in MODES:
        runs = [f for f in measured if f.mode == mode]
        modes[mode] = {
            "runs": len(runs),
            "first_audio_seconds": _stats([f.first_audio_seconds for f in runs]),
            "generator_first_token_seconds": _stats([f.generator_first_token_seconds for f in runs]),
            "generator_all_tokens_seconds": _stats([f.generator_all_tokens_seconds for f in runs]),
            "total_seconds": _stats([f.total_seconds for f in runs]),
            "semantic_tokens": sorted({f.semantic_tokens for f in runs}),
            "audio_seconds": sorted({round(f.audio_seconds, 4) for f in runs}),
        }

    def ratio(key: str) -> float | None:
        wait, pipe = modes["wait-all"][key]["median"], modes["pipelined"][key]["median"]
        return round(wait / pipe, 2) if wait is not None and pipe else None

    return {
        "modes": modes,
        "wait_all_over_pipelined": {
            "first_audio": ratio("first_audio_seconds"),
            "total": ratio("total_seconds"),
        },
    }


def table(summary: dict[str, Any]) -> str:
    """A short Markdown table of `summarize`'s figures, in milliseconds."""

    def ms(value: float | None) -> str:
        return "–" if value is None else f"{value * 1000:.0f}"

    lines = [
        "| mode | runs | first audio median (ms) | first audio min-max (ms) "
        "| generator, all tokens (ms) | total median (ms) |",
        "| --- | --- | --- | --- | --- | --- |",
    ]
    for mode, m in summary["modes"].items():
        first, total = m["first_audio_seconds"], m["total_seconds"]
        lines.append(
            f"| {mode} | {m['runs']} | {ms(first['median'])} | {ms(first['min'])}-{ms(first['max'])} "
            f"| {ms(m['generator_all_tokens_seconds']['median'])} | {ms(total['median'])} |"
        )
    ratios = summary["wait_all_over_pipelined"]
    lines.append("")
    lines.append(f"wait-all / pipelined: first audio {ratios['first_audio']}x, total {ratios['total']}x")
    return "\n".join(lines)


def chatterbox_voice(pack: Pack, voice_id: str) -> tuple[generator_pb2.ChatterboxVoice, vocoder_pb2.S3Prompt]:
    """The pack's `conds.pt` as the generator's voice and the vocoder's prompt, checked to be the
    voice the gateway speaks `voice_id` in, so that both modes use the same one."""
    t3, s3 = read_conds_voice(pack.root / "conds.pt")
    registry = VoiceRegistry.from_file(pack.voices_file) if pack.voices_file else None
    gateway_voice = registry.get(voice_id) if registry else None
    if gateway_voice is None or gateway_voice.parts.chatterbox != t3 or gateway_voice.parts.s3_prompt != s3:
        raise ValueError(f"{pack.root}: the gateway's voice {voice_id!r} is not the pack's conds.pt")
    return t3, s3


def run_chatterbox_pipeline(
    pack_root: Path,
    out_dir: Path,
    *,
    runs: int = 5,
    tokens: int = 100,
    seed: int = 0,
    kind: str = "medium",
    voice: str = "default",
) -> dict[str, Any]:
    pack = Pack.open(pack_root)
    if pack.family != FAMILY:
        raise ValueError(f"{pack.root} is a {pack.family.name} pack; this benchmark needs a chatterbox pack")
    t3, s3 = chatterbox_voice(pack, voice)
    texts = [t for t in load_corpus() if t.kind == kind]
    if not texts:
        raise ValueError(f"the corpus has no {kind!r} texts")
    max_chars = load_gateway_config().segment_max_chars
    segments = {t.id: segment_of(t.text, max_chars) for t in texts}
    warm_up = Text("warm-up", "warm-up", WARM_UP_TEXT)
    segments[warm_up.id] = segment_of(warm_up.text, max_chars)
    sampling = sampling_params(tokens, seed)
    log_dir = out_dir / "logs" / "chatterbox"
    with (
        LocalStack(pack.root, Ports.free(), log_dir=log_dir) as stack,
        grpc.insecure_channel(stack.ports.address("generator")) as gen_channel,
        grpc.insecure_channel(stack.ports.address("vocoder")) as voc_channel,
    ):
        generator = generator_pb2_grpc.GeneratorStub(gen_channel)
        vocoder = vocoder_pb2_grpc.VocoderStub(voc_channel)

        def measure(mode: str, text: Text, run: int) -> RunFigures:
            if mode == "pipelined":
                return pipelined(stack.ports.address("gateway"), text, sampling, seed, voice=voice, run=run)
            request = generator_pb2.GenerateRequest(text=segments[text.id], sampling=sampling, chatterbox=t3)
            return wait_all(generator, vocoder, request, s3, seed, text_id=text.id, run=run)

        figures = [measure(mode, warm_up, -1) for mode in MODES]
        figures += interleave(texts, runs, measure)
    # The generator's log is complete once it has stopped.
    times = generator_times(log_dir / "generator.log")
    figures = [with_generator_times(f, times) for f in figures]
    summary = summarize(figures)
    result: dict[str, Any] = {
        "machine": machine_facts(),
        "git_commit": git_commit(),
        "pack": {"path": str(pack.root), "family": pack.family.name},
        "settings": {
            "runs": runs,
            "tokens": tokens,
            "audio_seconds_per_request": tokens * FAMILY.samples_per_token / FAMILY.sample_rate,
            "seed": seed,
            "voice": voice,
            "texts": [t.id for t in texts],
        },
        **summary,
        "runs": [asdict(f) for f in figures],
    }
    return write_result(out_dir, "chatterbox-pipeline", result)
