"""`voxserve.v1.Generator`: validates a request and streams the engine's token frames."""

from __future__ import annotations

import dataclasses
from collections.abc import AsyncIterator
from typing import Any

import grpc
import torch

from voxserve.common.admission import Admission, Overloaded, refuse_overloaded
from voxserve.common.logging import get_logger
from voxserve.common.request_id import current_request_id
from voxserve.common.status import InvalidArgument, abort_invalid
from voxserve.families.speakers import check_speaker_name
from voxserve.generator import metrics
from voxserve.generator.engine import (
    NUM_GLOBAL_TOKENS,
    SPARK_SAMPLING,
    Frame,
    Sampling,
    Speaker,
    Style,
    TokenGenerator,
)
from voxserve.generator.prompts import Gender
from voxserve.generator.t3.config import MAX_EXAGGERATION, MAX_GUIDANCE
from voxserve.generator.t3.generator import T3Generator
from voxserve.generator.t3.voice import DEFAULT_EXAGGERATION, T3Voice
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
    defaults: Sampling = SPARK_SAMPLING,
    family: str = "spark",
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
                family == "chatterbox",
                f"sampling.{name} is not accepted: it is for the chatterbox family only",
            )
            _check(0 <= value <= limit, f"sampling.{name}={value:g} must be in [0, {limit:g}]")
            values[name] = value
    return dataclasses.replace(defaults, **values)


def parse_style(msg: generator_pb2.VoiceStyle) -> Style:
    _check(msg.gender in _GENDERS, f"style.gender={msg.gender} is not a known gender")
    _check(msg.pitch <= 4, f"style.pitch={msg.pitch} must be in [0, 4]")
    _check(msg.speed <= 4, f"style.speed={msg.speed} must be in [0, 4]")
    return Style(gender=_GENDERS[msg.gender], pitch=msg.pitch, speed=msg.speed)


def parse_global_ids(ids: list[int], num_global: int, field: str = "global_tokens.ids") -> list[int]:
    _check(
        len(ids) == NUM_GLOBAL_TOKENS,
        f"{field} has {len(ids)} ids; exactly {NUM_GLOBAL_TOKENS} are required",
    )
    bad = next((i for i, g in enumerate(ids) if not 0 <= g < num_global), None)
    _check(
        bad is None,
        f"{field}[{bad}]={ids[bad] if bad is not None else 0} is out of range [0, {num_global})",
    )
    return list(ids)


def parse_speaker(msg: generator_pb2.Speaker, family: str, num_global: int) -> Speaker:
    try:
        check_speaker_name(msg.name)
    except ValueError as exc:
        raise InvalidArgument(f"speaker.name: {exc}") from exc
    ids: list[int] = []
    if msg.global_ids:
        _check(
            family == "spark",
            f"speaker.global_ids is not accepted: the {family} family's voice is its speaker name alone",
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


# Which voice fields each family's prompt can use.
VOICES_OF_FAMILY = {
    "spark": ("global_tokens", "style", "speaker"),
    "s3": (),
    "orpheus": ("speaker",),
    "chatterbox": ("chatterbox",),
}
_NO_VOICE_REASON = {
    "spark": "this generator's pack (spark family) takes global tokens, a style or a speaker",
    "s3": "this generator's pack (s3 family) has no voice tokens; its voice is the vocoder's prompt",
    "orpheus": "this generator's pack (orpheus family) takes a speaker name",
    "chatterbox": "this generator's pack (chatterbox family) takes a chatterbox voice",
}


def parse_generate_request(
    request: generator_pb2.GenerateRequest,
    *,
    max_text_chars: int,
    max_tokens: int,
    num_global: int,
    family: str = "spark",
    defaults: Sampling = SPARK_SAMPLING,
) -> dict[str, Any]:
    """The keyword arguments of `TokenGenerator.generate` for a request, every field checked."""
    text = request.text.strip()
    _check(bool(text), "text is empty")
    _check(len(text) <= max_text_chars, f"text has {len(text)} characters; the limit is {max_text_chars}")
    voice = request.WhichOneof("voice")
    _check(
        voice is None or voice in VOICES_OF_FAMILY[family],
        f"{voice} is not accepted: {_NO_VOICE_REASON.get(family, '')}",
    )
    if family == "chatterbox":
        voice_args = {"chatterbox": parse_chatterbox_voice(request.chatterbox)} if voice else {}
        return {
            "text": text,
            **voice_args,
            "sampling": parse_sampling(request.sampling, max_tokens, defaults, family),
        }
    return {
        "text": text,
        "global_ids": parse_global_ids(list(request.global_tokens.ids), num_global)
        if voice == "global_tokens"
        else None,
        "style": parse_style(request.style) if voice == "style" else None,
        "speaker": parse_speaker(request.speaker, family, num_global) if voice == "speaker" else None,
        "sampling": parse_sampling(request.sampling, max_tokens, defaults, family),
    }


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
        generator: TokenGenerator | T3Generator,
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
        try:
            args = parse_generate_request(
                request,
                max_text_chars=self.max_text_chars,
                max_tokens=self.max_tokens,
                num_global=self.generator.num_global,
                family=self.generator.family,
                defaults=self.generator.default_sampling,
            )
        except InvalidArgument as exc:
            metrics.REQUESTS.labels("invalid").inc()
            await abort_invalid(context, str(exc))
        try:
            with self.admission.enter():
                async for frame in self._generate(args):
                    yield frame
        except Overloaded as exc:
            metrics.REQUESTS.labels("refused").inc()
            await refuse_overloaded(context, exc)
        except InvalidArgument as exc:
            await abort_invalid(context, str(exc))  # cut short: it may quote the text (markup)

    async def _generate(self, args: dict[str, Any]) -> AsyncIterator[generator_pb2.TokenFrame]:
        metrics.ACTIVE_REQUESTS.inc()
        outcome = "cancelled"
        try:
            async for frame in self.generator.generate(**args, request_id=current_request_id() or "req"):
                if frame.result is not None:
                    outcome = "completed"
                    metrics.FIRST_TOKEN_SECONDS.observe(frame.result.first_token_seconds)
                    metrics.SEMANTIC_TOKENS.inc(frame.result.semantic_tokens)
                    log.info("generated", **frame.result.__dict__)
                yield frame_to_proto(frame)
        except InvalidArgument:
            outcome = "invalid"
            raise
        finally:
            metrics.ACTIVE_REQUESTS.dec()
            metrics.REQUESTS.labels(outcome).inc()
