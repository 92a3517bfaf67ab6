"""`voxserve.v1.Generator`: validates a request and streams the engine's token frames."""

from __future__ import annotations

import dataclasses
from collections.abc import AsyncIterator
from contextlib import aclosing
from typing import Any

import grpc
import torch

from voxserve.common.admission import Admission
from voxserve.common.logging import get_logger
from voxserve.common.request_id import current_request_id
from voxserve.common.status import InvalidArgument, call_outcome
from voxserve.families.family import Family
from voxserve.families.registry import DEFAULT_FAMILY, FAMILIES
from voxserve.families.spark import GLOBAL_TOKENS_PER_VOICE
from voxserve.families.speakers import check_speaker_name
from voxserve.generator import metrics
from voxserve.generator.frames import Frame
from voxserve.generator.generate_args import (
    DEFAULT_SAMPLING,
    MAX_REFERENCE_SEMANTIC_IDS,
    GenerateArgs,
    Reference,
    Sampling,
    Speaker,
    Style,
)
from voxserve.generator.prompts import Gender
from voxserve.generator.t3.config import MAX_EXAGGERATION, MAX_GUIDANCE
from voxserve.generator.t3.voice import DEFAULT_EXAGGERATION, T3Voice
from voxserve.generator.token_source import TokenSource
from voxserve.v1 import generator_pb2, generator_pb2_grpc

log = get_logger(__name__)

_GENDERS: dict[int, Gender] = {
    generator_pb2.VoiceStyle.GENDER_UNSPECIFIED: "female",
    generator_pb2.VoiceStyle.FEMALE: "female",
    generator_pb2.VoiceStyle.MALE: "male",
}
_FINISH = {"stop": generator_pb2.GenerateResult.STOP, "length": generator_pb2.GenerateResult.LENGTH}


def _check(ok: bool, message: str) -> None:
    if not ok:
        raise InvalidArgument(message)


def parse_sampling(
    msg: generator_pb2.SamplingParams,
    max_tokens: int,
    defaults: Sampling = DEFAULT_SAMPLING,
    family: Family = DEFAULT_FAMILY,
) -> Sampling:
    """Sampling from a request, every field checked against its documented range; unset fields
    keep the family's `defaults`."""
    values: dict[str, Any] = {}
    if msg.HasField("temperature"):
        _check(0 <= msg.temperature <= 2, f"sampling.temperature={msg.temperature:g} must be in [0, 2]")
        values["temperature"] = msg.temperature
    if msg.HasField("top_k"):
        _check(0 <= msg.top_k <= 10000, f"sampling.top_k={msg.top_k} must be in [0, 10000]")
        values["top_k"] = msg.top_k
    if msg.HasField("top_p"):
        _check(0 < msg.top_p <= 1, f"sampling.top_p={msg.top_p:g} must be in (0, 1]")
        values["top_p"] = msg.top_p
    if msg.HasField("repetition_penalty"):
        rp = msg.repetition_penalty
        _check(0 < rp <= 2, f"sampling.repetition_penalty={rp:g} must be in (0, 2]")
        values["repetition_penalty"] = rp
    if msg.HasField("max_tokens"):
        _check(
            1 <= msg.max_tokens <= max_tokens,
            f"sampling.max_tokens={msg.max_tokens} must be in [1, {max_tokens}]",
        )
        values["max_tokens"] = msg.max_tokens
    if msg.HasField("min_tokens"):
        limit = values.get("max_tokens", max_tokens)
        _check(0 <= msg.min_tokens <= limit, f"sampling.min_tokens={msg.min_tokens} must be in [0, {limit}]")
        values["min_tokens"] = msg.min_tokens
    if msg.HasField("seed"):
        values["seed"] = msg.seed
    if msg.HasField("min_p"):
        _check(0 <= msg.min_p < 1, f"sampling.min_p={msg.min_p:g} must be in [0, 1)")
        values["min_p"] = msg.min_p
    for name, limit in (("guidance", MAX_GUIDANCE), ("exaggeration", MAX_EXAGGERATION)):
        if msg.HasField(name):  # type: ignore[arg-type]
            value = getattr(msg, name)
            _check(
                name in family.sampling_fields,
                f"sampling.{name} is not accepted: it is for the {_families_taking(name)} family only",
            )
            _check(0 <= value <= limit, f"sampling.{name}={value:g} must be in [0, {limit:g}]")
            values[name] = value
    return dataclasses.replace(defaults, **values)


def _families_taking(sampling_field: str) -> str:
    return " and ".join(f.name for f in FAMILIES.values() if sampling_field in f.sampling_fields)


def parse_style(msg: generator_pb2.VoiceStyle) -> Style:
    _check(msg.gender in _GENDERS, f"style.gender={msg.gender} is not a known gender")
    _check(msg.pitch <= 4, f"style.pitch={msg.pitch} must be in [0, 4]")
    _check(msg.speed <= 4, f"style.speed={msg.speed} must be in [0, 4]")
    return Style(gender=_GENDERS[msg.gender], pitch=msg.pitch, speed=msg.speed)


def parse_global_ids(ids: list[int], num_global: int, field: str = "global_tokens.ids") -> list[int]:
    _check(
        len(ids) == GLOBAL_TOKENS_PER_VOICE,
        f"{field} has {len(ids)} ids; exactly {GLOBAL_TOKENS_PER_VOICE} are required",
    )
    bad = next((i for i, g in enumerate(ids) if not 0 <= g < num_global), None)
    _check(
        bad is None,
        f"{field}[{bad}]={ids[bad] if bad is not None else 0} is out of range [0, {num_global})",
    )
    return list(ids)


def parse_reference(msg: generator_pb2.GlobalTokens, text: str, max_text_chars: int) -> Reference | None:
    """The voice's reference, if it carries one: its transcript (verbatim) and semantic ids, set
    both or neither. The transcript counts with `text` against `max_text_chars`: the prompt holds
    the two joined. The ids' range and markup in the transcript are the prompt's checks."""
    reference_text, ids = msg.reference_text, list(msg.reference_semantic_ids)
    if not reference_text and not ids:
        return None
    _check(
        bool(ids),
        "global_tokens.reference_text is set without global_tokens.reference_semantic_ids; "
        "set both or neither",
    )
    _check(
        bool(reference_text.strip()),
        "global_tokens.reference_semantic_ids needs global_tokens.reference_text (the reference's "
        "transcript), which is empty; set both or neither",
    )
    _check(
        len(ids) <= MAX_REFERENCE_SEMANTIC_IDS,
        f"global_tokens.reference_semantic_ids has {len(ids)} ids; the limit is {MAX_REFERENCE_SEMANTIC_IDS}",
    )
    total = len(text) + len(reference_text)
    _check(
        total <= max_text_chars,
        f"text and global_tokens.reference_text have {total} characters together "
        f"({len(text)} + {len(reference_text)}); the limit is {max_text_chars}",
    )
    return Reference(reference_text, tuple(ids))


def parse_speaker(msg: generator_pb2.Speaker, family: Family, num_global: int) -> Speaker:
    try:
        check_speaker_name(msg.name)
    except ValueError as exc:
        raise InvalidArgument(f"speaker.name: {exc}") from exc
    ids: list[int] = []
    if msg.global_ids:
        # A speaker's globals prefill what a voice of global tokens would.
        _check(
            "global_tokens" in family.generator_voice_fields,
            f"speaker.global_ids is not accepted: the {family.name} family's voice is its speaker name alone",
        )
        ids = parse_global_ids(list(msg.global_ids), num_global, "speaker.global_ids")
    return Speaker(msg.name, tuple(ids))


def parse_chatterbox_voice(msg: generator_pb2.ChatterboxVoice) -> T3Voice:
    voice = T3Voice(
        speaker_embedding=torch.tensor(list(msg.speaker_embedding), dtype=torch.float32),
        prompt_tokens=torch.tensor(list(msg.prompt_tokens), dtype=torch.int64),
        exaggeration=msg.exaggeration if msg.HasField("exaggeration") else DEFAULT_EXAGGERATION,
    )
    try:
        voice.validate(label="chatterbox.")
    except ValueError as exc:
        raise InvalidArgument(str(exc)) from exc
    return voice


def parse_generate_request(
    request: generator_pb2.GenerateRequest,
    *,
    max_text_chars: int,
    max_tokens: int,
    num_global: int,
    family: Family = DEFAULT_FAMILY,
    defaults: Sampling = DEFAULT_SAMPLING,
) -> GenerateArgs:
    """A request's arguments for a token source of `family`, every field checked."""
    text = request.text.strip()
    _check(bool(text), "text is empty")
    _check(len(text) <= max_text_chars, f"text has {len(text)} characters; the limit is {max_text_chars}")
    voice = request.WhichOneof("voice")
    _check(
        voice is None or voice in family.generator_voice_fields,
        f"{voice} is not accepted: {family.generator_voice_hint}",
    )
    fixed = voice == "global_tokens"
    return GenerateArgs(
        text=text,
        global_ids=tuple(parse_global_ids(list(request.global_tokens.ids), num_global)) if fixed else None,
        reference=parse_reference(request.global_tokens, text, max_text_chars) if fixed else None,
        style=parse_style(request.style) if voice == "style" else None,
        speaker=parse_speaker(request.speaker, family, num_global) if voice == "speaker" else None,
        t3_voice=parse_chatterbox_voice(request.chatterbox) if voice == "chatterbox" else None,
        sampling=parse_sampling(request.sampling, max_tokens, defaults, family),
    )


def frame_to_proto(frame: Frame) -> generator_pb2.TokenFrame:
    msg = generator_pb2.TokenFrame(global_ids=frame.global_ids, semantic_ids=frame.semantic_ids)
    if frame.result is not None:
        r = frame.result
        msg.result.CopyFrom(
            generator_pb2.GenerateResult(
                finish_reason=_FINISH.get(
                    r.finish_reason, generator_pb2.GenerateResult.FINISH_REASON_UNSPECIFIED
                ),
                prompt_tokens=r.prompt_tokens,
                semantic_tokens=r.semantic_tokens,
                queue_seconds=r.queue_seconds,
                first_token_seconds=r.first_token_seconds,
                total_seconds=r.total_seconds,
            )
        )
    return msg


class GeneratorServicer(generator_pb2_grpc.GeneratorServicer):
    def __init__(
        self,
        generator: TokenSource,
        *,
        max_text_chars: int,
        max_tokens: int,
        max_streams: int = 256,
    ):
        self.generator = generator
        self.admission = Admission(max_streams, "Generate calls")
        self.max_text_chars = max_text_chars
        self.max_tokens = max_tokens

    async def Generate(
        self, request: generator_pb2.GenerateRequest, context: grpc.aio.ServicerContext
    ) -> AsyncIterator[generator_pb2.TokenFrame]:
        async with call_outcome(context, metrics.REQUESTS) as outcome:
            args = parse_generate_request(
                request,
                max_text_chars=self.max_text_chars,
                max_tokens=self.max_tokens,
                num_global=self.generator.num_global,
                family=self.generator.family,
                defaults=self.generator.default_sampling,
            )
            with self.admission.enter():
                metrics.ACTIVE_REQUESTS.inc()
                frames = self.generator.generate(args, current_request_id() or "req")
                try:
                    # Closed as this handler unwinds, so the engine request is aborted before the
                    # call's outcome is counted, whatever ends the call.
                    async with aclosing(frames):  # type: ignore[type-var]
                        async for frame in frames:
                            if frame.result is not None:
                                outcome.value = "completed"
                                metrics.FIRST_TOKEN_SECONDS.observe(frame.result.first_token_seconds)
                                metrics.SEMANTIC_TOKENS.inc(frame.result.semantic_tokens)
                                log.info("generated", **dataclasses.asdict(frame.result))
                            yield frame_to_proto(frame)
                finally:
                    metrics.ACTIVE_REQUESTS.dec()
