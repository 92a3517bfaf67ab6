"""Request validation in the generator servicer: every documented range, at and past its edges."""

from __future__ import annotations

import dataclasses
import math

import pytest
import torch

from voxserve.common.status import InvalidArgument
from voxserve.families.registry import family_named
from voxserve.families.spark import GLOBAL_TOKENS_PER_VOICE
from voxserve.generator.frames import Frame, GenerationResult
from voxserve.generator.generate_args import DEFAULT_SAMPLING, GenerateArgs, Sampling, Style
from voxserve.generator.servicer import (
    frame_to_proto,
    parse_generate_request,
    parse_global_ids,
    parse_sampling,
    parse_style,
)
from voxserve.generator.t3.config import MAX_EXAGGERATION, MAX_GUIDANCE
from voxserve.generator.t3.generator import T3_SAMPLING
from voxserve.generator.t3.voice import DEFAULT_EXAGGERATION, T3Voice
from voxserve.v1 import generator_pb2

SP = generator_pb2.SamplingParams
VS = generator_pb2.VoiceStyle
GR = generator_pb2.GenerateResult
LIMIT = 3000
NUM_GLOBAL = 4096


def test_unset_fields_keep_engine_defaults() -> None:
    assert parse_sampling(SP(), LIMIT) == Sampling()
    defaults = Sampling()
    assert (defaults.temperature, defaults.top_k, defaults.top_p) == (0.8, 50, 0.95)
    assert defaults.max_tokens is None and defaults.seed is None and defaults.min_tokens == 0


def test_set_field_changes_only_that_field() -> None:
    parsed = parse_sampling(SP(top_k=7), LIMIT)
    assert parsed == dataclasses.replace(Sampling(), top_k=7)


def test_all_fields_set() -> None:
    msg = SP(
        temperature=0.5, top_k=3, top_p=0.5, repetition_penalty=1.5, max_tokens=100, min_tokens=10, seed=-9
    )
    assert parse_sampling(msg, LIMIT) == Sampling(
        temperature=0.5, top_k=3, top_p=0.5, repetition_penalty=1.5, max_tokens=100, min_tokens=10, seed=-9
    )


def test_explicit_zero_is_not_unset() -> None:
    parsed = parse_sampling(SP(temperature=0.0, top_k=0, min_tokens=0, seed=0), LIMIT)
    assert parsed.temperature == 0.0
    assert parsed.top_k == 0
    assert parsed.seed == 0


@pytest.mark.parametrize(
    ("field", "value"),
    [
        ("temperature", 0.0),
        ("temperature", 2.0),
        ("top_k", 0),
        ("top_k", 10000),
        ("top_p", 1e-6),
        ("top_p", 1.0),
        ("repetition_penalty", 1e-6),
        ("repetition_penalty", 2.0),
        ("max_tokens", 1),
        ("max_tokens", LIMIT),
        ("min_tokens", 0),
        ("min_tokens", LIMIT),
        ("seed", -(2**63)),
        ("seed", 2**63 - 1),
    ],
)
def test_sampling_boundaries_accepted(field: str, value: float) -> None:
    parsed = parse_sampling(SP(**{field: value}), LIMIT)
    assert getattr(parsed, field) == pytest.approx(value)


@pytest.mark.parametrize(
    ("field", "value", "limit"),
    [
        ("temperature", -0.01, "[0, 2]"),
        ("temperature", 2.01, "[0, 2]"),
        ("temperature", math.nan, "[0, 2]"),
        ("temperature", math.inf, "[0, 2]"),
        ("top_k", -1, "[0, 10000]"),
        ("top_k", 10001, "[0, 10000]"),
        ("top_p", 0.0, "(0, 1]"),
        ("top_p", -0.5, "(0, 1]"),
        ("top_p", 1.01, "(0, 1]"),
        ("top_p", math.nan, "(0, 1]"),
        ("repetition_penalty", 0.0, "(0, 2]"),
        ("repetition_penalty", 2.01, "(0, 2]"),
        ("max_tokens", 0, f"[1, {LIMIT}]"),
        ("max_tokens", -1, f"[1, {LIMIT}]"),
        ("max_tokens", LIMIT + 1, f"[1, {LIMIT}]"),
        ("min_tokens", -1, f"[0, {LIMIT}]"),
        ("min_tokens", LIMIT + 1, f"[0, {LIMIT}]"),
    ],
)
def test_sampling_out_of_range_rejected(field: str, value: float, limit: str) -> None:
    with pytest.raises(InvalidArgument) as info:
        parse_sampling(SP(**{field: value}), LIMIT)
    message = str(info.value)
    assert f"sampling.{field}=" in message
    assert limit in message


def test_max_tokens_limit_is_the_configured_one() -> None:
    assert parse_sampling(SP(max_tokens=10), 10).max_tokens == 10
    with pytest.raises(InvalidArgument, match=r"must be in \[1, 10\]"):
        parse_sampling(SP(max_tokens=11), 10)


def test_min_tokens_limit_follows_max_tokens_when_set() -> None:
    assert parse_sampling(SP(max_tokens=100, min_tokens=100), LIMIT).min_tokens == 100
    with pytest.raises(InvalidArgument) as info:
        parse_sampling(SP(max_tokens=100, min_tokens=101), LIMIT)
    assert "sampling.min_tokens=101" in str(info.value)
    assert "[0, 100]" in str(info.value)


def test_min_tokens_limit_is_configured_max_without_max_tokens() -> None:
    assert parse_sampling(SP(min_tokens=200), 200).min_tokens == 200
    with pytest.raises(InvalidArgument, match=r"\[0, 200\]"):
        parse_sampling(SP(min_tokens=201), 200)


def test_invalid_argument_is_a_value_error() -> None:
    with pytest.raises(ValueError):
        parse_sampling(SP(top_k=-1), LIMIT)


@pytest.mark.parametrize(
    ("gender", "expected"), [(VS.GENDER_UNSPECIFIED, "female"), (VS.FEMALE, "female"), (VS.MALE, "male")]
)
def test_parse_style_genders(gender: int, expected: str) -> None:
    assert parse_style(VS(gender=gender, pitch=2, speed=2)) == Style(gender=expected, pitch=2, speed=2)


@pytest.mark.parametrize(("pitch", "speed"), [(0, 0), (4, 4), (0, 4), (4, 0)])
def test_parse_style_boundaries_accepted(pitch: int, speed: int) -> None:
    assert parse_style(VS(gender=VS.MALE, pitch=pitch, speed=speed)) == Style("male", pitch, speed)


@pytest.mark.parametrize(
    ("kwargs", "needle"),
    [
        ({"pitch": 5}, "style.pitch=5 must be in [0, 4]"),
        ({"speed": 5}, "style.speed=5 must be in [0, 4]"),
        ({"pitch": 2**32 - 1}, "style.pitch="),
        ({"gender": 3}, "style.gender=3"),
    ],
)
def test_parse_style_rejects(kwargs: dict, needle: str) -> None:
    with pytest.raises(InvalidArgument) as info:
        parse_style(VS(**kwargs))
    assert needle in str(info.value)


def test_parse_global_ids_accepts_range_edges() -> None:
    ids = [0] * 16 + [NUM_GLOBAL - 1] * 16
    result = parse_global_ids(ids, NUM_GLOBAL)
    assert result == ids
    assert result is not ids


@pytest.mark.parametrize("count", [0, GLOBAL_TOKENS_PER_VOICE - 1, GLOBAL_TOKENS_PER_VOICE + 1])
def test_parse_global_ids_requires_exactly_32(count: int) -> None:
    with pytest.raises(InvalidArgument) as info:
        parse_global_ids([1] * count, NUM_GLOBAL)
    message = str(info.value)
    assert "global_tokens.ids" in message
    assert f"has {count} ids" in message
    assert "exactly 32" in message


@pytest.mark.parametrize("bad", [NUM_GLOBAL, -1, 10**6])
def test_parse_global_ids_rejects_out_of_range_naming_index(bad: int) -> None:
    ids = [5] * GLOBAL_TOKENS_PER_VOICE
    ids[7] = bad
    with pytest.raises(InvalidArgument) as info:
        parse_global_ids(ids, NUM_GLOBAL)
    assert f"global_tokens.ids[7]={bad}" in str(info.value)
    assert f"[0, {NUM_GLOBAL})" in str(info.value)


def test_parse_global_ids_uses_the_given_table_size() -> None:
    assert parse_global_ids([9] * 32, 10) == [9] * 32
    with pytest.raises(InvalidArgument, match=r"\[0, 9\)"):
        parse_global_ids([9] * 32, 9)


def test_frame_to_proto_without_result() -> None:
    msg = frame_to_proto(Frame(global_ids=[1, 2], semantic_ids=[3, 4, 5]))
    assert list(msg.global_ids) == [1, 2]
    assert list(msg.semantic_ids) == [3, 4, 5]
    assert not msg.HasField("result")


@pytest.mark.parametrize(
    ("reason", "expected"),
    [("stop", GR.STOP), ("length", GR.LENGTH), ("abort", GR.FINISH_REASON_UNSPECIFIED), ("", 0)],
)
def test_frame_to_proto_maps_finish_reason(reason: str, expected: int) -> None:
    result = GenerationResult(
        finish_reason=reason,
        prompt_tokens=11,
        semantic_tokens=22,
        queue_seconds=0.25,
        first_token_seconds=0.5,
        total_seconds=1.75,
    )
    msg = frame_to_proto(Frame(semantic_ids=[9], result=result))
    assert msg.HasField("result")
    assert msg.result.finish_reason == expected
    assert (msg.result.prompt_tokens, msg.result.semantic_tokens) == (11, 22)
    assert (msg.result.queue_seconds, msg.result.first_token_seconds, msg.result.total_seconds) == (
        0.25,
        0.5,
        1.75,
    )
    assert list(msg.semantic_ids) == [9]
    assert list(msg.global_ids) == []


def _speaker_request(name: str, ids: list[int] | None = None) -> generator_pb2.GenerateRequest:
    return generator_pb2.GenerateRequest(
        text="hi", speaker=generator_pb2.Speaker(name=name, global_ids=ids or [])
    )


def test_a_speaker_is_parsed_with_its_prefilled_globals() -> None:
    args = parse_generate_request(
        _speaker_request("kabir", list(range(32))), max_text_chars=100, max_tokens=100, num_global=4096
    )
    assert args.speaker is not None
    assert args.speaker.name == "kabir" and args.speaker.global_ids == tuple(range(32))
    assert args.global_ids is None and args.style is None and args.t3_voice is None


@pytest.mark.parametrize(
    ("request_", "family", "match"),
    [
        (_speaker_request("kabir", [1] * 31), "spark", r"speaker.global_ids has 31 ids; exactly 32"),
        (
            _speaker_request("kabir", [1] * 31 + [4096]),
            "spark",
            r"speaker.global_ids\[31\]=4096 is out of range",
        ),
        (_speaker_request("ta:ra"), "spark", "speaker.name: speaker name 'ta:ra' must not hold"),
        (_speaker_request(""), "orpheus", "speaker.name: speaker name is empty"),
        (
            _speaker_request("tara", [1] * 32),
            "orpheus",
            "speaker.global_ids is not accepted: the orpheus family",
        ),
        (
            generator_pb2.GenerateRequest(text="hi", style=generator_pb2.VoiceStyle()),
            "orpheus",
            "style is not accepted: this generator's pack \\(orpheus family\\) takes a speaker name",
        ),
        (_speaker_request("tara"), "s3", "speaker is not accepted: .*s3 family"),
    ],
)
def test_bad_speakers_are_refused_naming_the_field(
    request_: generator_pb2.GenerateRequest, family: str, match: str
) -> None:
    with pytest.raises(InvalidArgument, match=match):
        parse_generate_request(
            request_, max_text_chars=100, max_tokens=100, num_global=4096, family=family_named(family)
        )


def chatterbox_sampling(msg: generator_pb2.SamplingParams) -> Sampling:
    return parse_sampling(msg, LIMIT, T3_SAMPLING, family_named("chatterbox"))


def test_unset_fields_keep_the_chatterbox_defaults() -> None:
    parsed = chatterbox_sampling(SP())
    assert parsed == T3_SAMPLING
    assert (parsed.temperature, parsed.top_p, parsed.top_k) == (0.8, 1.0, 0)
    assert (parsed.repetition_penalty, parsed.min_p, parsed.guidance) == (1.2, 0.05, 0.5)
    assert parsed.exaggeration is None and parsed.max_tokens is None and parsed.seed is None


def test_unset_fields_keep_the_spark_defaults_without_chatterbox_ones() -> None:
    parsed = parse_sampling(SP(), LIMIT, DEFAULT_SAMPLING, family_named("spark"))
    assert parsed == DEFAULT_SAMPLING
    assert parsed.min_p == 0.0 and parsed.guidance is None and parsed.exaggeration is None


def test_a_set_field_changes_only_that_field_of_the_family_defaults() -> None:
    assert chatterbox_sampling(SP(top_k=7)) == dataclasses.replace(T3_SAMPLING, top_k=7)
    parsed = chatterbox_sampling(SP(guidance=0.0, min_p=0.0, exaggeration=0.0))
    assert parsed == dataclasses.replace(T3_SAMPLING, guidance=0.0, min_p=0.0, exaggeration=0.0)


def test_min_p_is_accepted_for_every_family() -> None:
    assert parse_sampling(SP(min_p=0.25), LIMIT).min_p == 0.25
    assert chatterbox_sampling(SP(min_p=0.25)).min_p == 0.25


@pytest.mark.parametrize(
    ("field", "value"),
    [
        ("min_p", 0.0),
        ("min_p", 0.99),
        ("guidance", 0.0),
        ("guidance", MAX_GUIDANCE),
        ("exaggeration", 0.0),
        ("exaggeration", MAX_EXAGGERATION),
    ],
)
def test_chatterbox_boundaries_accepted(field: str, value: float) -> None:
    assert getattr(chatterbox_sampling(SP(**{field: value})), field) == pytest.approx(value)


@pytest.mark.parametrize(
    ("field", "value", "limit"),
    [
        ("min_p", -0.01, "[0, 1)"),
        ("min_p", 1.0, "[0, 1)"),
        ("min_p", math.nan, "[0, 1)"),
        ("guidance", -0.01, f"[0, {MAX_GUIDANCE:g}]"),
        ("guidance", MAX_GUIDANCE + 0.01, f"[0, {MAX_GUIDANCE:g}]"),
        ("guidance", math.nan, f"[0, {MAX_GUIDANCE:g}]"),
        ("guidance", math.inf, f"[0, {MAX_GUIDANCE:g}]"),
        ("exaggeration", -0.01, f"[0, {MAX_EXAGGERATION:g}]"),
        ("exaggeration", MAX_EXAGGERATION + 0.01, f"[0, {MAX_EXAGGERATION:g}]"),
        ("exaggeration", math.nan, f"[0, {MAX_EXAGGERATION:g}]"),
    ],
)
def test_chatterbox_sampling_out_of_range_rejected(field: str, value: float, limit: str) -> None:
    with pytest.raises(InvalidArgument) as info:
        chatterbox_sampling(SP(**{field: value}))
    message = str(info.value)
    assert f"sampling.{field}=" in message
    assert limit in message


def test_the_chatterbox_limits_are_the_documented_ones() -> None:
    assert (MAX_GUIDANCE, MAX_EXAGGERATION) == (3.0, 2.0)
    with pytest.raises(InvalidArgument, match=r"sampling.guidance=3.5 must be in \[0, 3\]"):
        chatterbox_sampling(SP(guidance=3.5))
    with pytest.raises(InvalidArgument, match=r"sampling.exaggeration=2.5 must be in \[0, 2\]"):
        chatterbox_sampling(SP(exaggeration=2.5))


@pytest.mark.parametrize("family", ["spark", "orpheus", "s3"])
@pytest.mark.parametrize("field", ["guidance", "exaggeration"])
def test_chatterbox_only_fields_are_refused_for_other_families(family: str, field: str) -> None:
    with pytest.raises(InvalidArgument) as info:
        parse_sampling(SP(**{field: 0.5}), LIMIT, DEFAULT_SAMPLING, family_named(family))
    message = str(info.value)
    assert message == f"sampling.{field} is not accepted: it is for the chatterbox family only"


def test_chatterbox_only_fields_are_refused_for_spark_through_the_request() -> None:
    request = generator_pb2.GenerateRequest(text="hi", sampling=SP(guidance=0.5))
    with pytest.raises(InvalidArgument, match=r"sampling\.guidance is not accepted"):
        parse_generate_request(request, max_text_chars=100, max_tokens=100, num_global=4096)


EMBEDDING = [0.0625 * (i % 16) for i in range(256)]
CV = generator_pb2.ChatterboxVoice


def chatterbox_request(
    voice: generator_pb2.ChatterboxVoice | None = None, sampling: generator_pb2.SamplingParams | None = None
) -> generator_pb2.GenerateRequest:
    request = generator_pb2.GenerateRequest(text="  hello there  ", sampling=sampling)
    if voice is not None:
        request.chatterbox.CopyFrom(voice)
    return request


def parse_chatterbox(request: generator_pb2.GenerateRequest, family: str = "chatterbox") -> GenerateArgs:
    return parse_generate_request(
        request,
        max_text_chars=100,
        max_tokens=LIMIT,
        num_global=0,
        family=family_named(family),
        defaults=T3_SAMPLING if family == "chatterbox" else DEFAULT_SAMPLING,
    )


def test_a_chatterbox_voice_is_parsed_into_a_t3_voice() -> None:
    tokens = [0, 6560, 17, 4000]
    args = parse_chatterbox(chatterbox_request(CV(speaker_embedding=EMBEDDING, prompt_tokens=tokens)))
    assert args.text == "hello there"
    assert args.sampling == T3_SAMPLING
    assert args.global_ids is None and args.style is None and args.speaker is None
    voice = args.t3_voice
    assert isinstance(voice, T3Voice)
    assert voice.speaker_embedding.dtype == torch.float32 and voice.prompt_tokens.dtype == torch.int64
    assert voice.speaker_embedding.tolist() == EMBEDDING
    assert voice.prompt_tokens.tolist() == tokens
    assert voice.exaggeration == DEFAULT_EXAGGERATION


def test_a_chatterbox_voice_keeps_its_own_exaggeration_and_the_request_sampling() -> None:
    voice = CV(speaker_embedding=EMBEDDING, prompt_tokens=[1] * 150, exaggeration=2.0)
    args = parse_chatterbox(chatterbox_request(voice, SP(guidance=1.5, exaggeration=0.25)))
    assert args.t3_voice is not None
    assert args.t3_voice.exaggeration == 2.0
    assert args.t3_voice.prompt_tokens.numel() == 150
    assert args.sampling == dataclasses.replace(T3_SAMPLING, guidance=1.5, exaggeration=0.25)


def test_a_chatterbox_pack_without_a_voice_uses_its_own() -> None:
    args = parse_chatterbox(chatterbox_request(sampling=SP(exaggeration=0.0)))
    assert args == GenerateArgs(
        text="hello there", sampling=dataclasses.replace(T3_SAMPLING, exaggeration=0.0)
    )


def test_sampling_errors_are_reported_with_a_chatterbox_voice() -> None:
    voice = CV(speaker_embedding=EMBEDDING, prompt_tokens=[1])
    with pytest.raises(InvalidArgument, match=r"sampling.min_p=1 must be in \[0, 1\)"):
        parse_chatterbox(chatterbox_request(voice, SP(min_p=1.0)))


@pytest.mark.parametrize(
    ("voice", "match"),
    [
        (
            CV(speaker_embedding=EMBEDDING[:255], prompt_tokens=[1]),
            r"chatterbox.speaker_embedding must be 256",
        ),
        (
            CV(speaker_embedding=[*EMBEDDING, 0.0], prompt_tokens=[1]),
            r"chatterbox.speaker_embedding must be 256",
        ),
        (CV(prompt_tokens=[1]), r"chatterbox.speaker_embedding must be 256 floats, got \(0,\)"),
        (
            CV(speaker_embedding=[*EMBEDDING[:-1], math.nan], prompt_tokens=[1]),
            "chatterbox.speaker_embedding must be finite",
        ),
        (
            CV(speaker_embedding=[math.inf, *EMBEDDING[1:]], prompt_tokens=[1]),
            "chatterbox.speaker_embedding must be finite",
        ),
        (CV(speaker_embedding=EMBEDDING), "chatterbox.prompt_tokens has 0 tokens; it needs 1 to 150"),
        (
            CV(speaker_embedding=EMBEDDING, prompt_tokens=[1] * 151),
            "chatterbox.prompt_tokens has 151 tokens; it needs 1 to 150",
        ),
        (
            CV(speaker_embedding=EMBEDDING, prompt_tokens=[1, 6561]),
            r"chatterbox.prompt_tokens must lie in \[0, 6561\)",
        ),
        (
            CV(speaker_embedding=EMBEDDING, prompt_tokens=[-1, 1]),
            r"chatterbox.prompt_tokens must lie in \[0, 6561\)",
        ),
        (
            CV(speaker_embedding=EMBEDDING, prompt_tokens=[1], exaggeration=2.5),
            r"chatterbox.exaggeration must be a finite number in \[0, 2\], got 2.5",
        ),
        (
            CV(speaker_embedding=EMBEDDING, prompt_tokens=[1], exaggeration=-0.5),
            "chatterbox.exaggeration must be a finite number",
        ),
        (
            CV(speaker_embedding=EMBEDDING, prompt_tokens=[1], exaggeration=math.nan),
            "chatterbox.exaggeration must be a finite number",
        ),
    ],
)
def test_bad_chatterbox_voices_are_refused_naming_the_field(
    voice: generator_pb2.ChatterboxVoice, match: str
) -> None:
    with pytest.raises(InvalidArgument, match=match):
        parse_chatterbox(chatterbox_request(voice))


@pytest.mark.parametrize(
    ("request_", "field"),
    [
        (
            generator_pb2.GenerateRequest(text="hi", global_tokens=generator_pb2.GlobalTokens(ids=[1] * 32)),
            "global_tokens",
        ),
        (generator_pb2.GenerateRequest(text="hi", style=generator_pb2.VoiceStyle()), "style"),
        (_speaker_request("tara"), "speaker"),
    ],
)
def test_other_voices_are_refused_on_a_chatterbox_pack(
    request_: generator_pb2.GenerateRequest, field: str
) -> None:
    with pytest.raises(InvalidArgument) as info:
        parse_chatterbox(request_)
    message = str(info.value)
    assert message.startswith(f"{field} is not accepted")
    assert "chatterbox family) takes a chatterbox voice" in message


@pytest.mark.parametrize("family", ["spark", "orpheus", "s3"])
def test_a_chatterbox_voice_is_refused_on_other_packs(family: str) -> None:
    voice = CV(speaker_embedding=EMBEDDING, prompt_tokens=[1])
    with pytest.raises(InvalidArgument) as info:
        parse_chatterbox(chatterbox_request(voice), family=family)
    message = str(info.value)
    assert message.startswith("chatterbox is not accepted")
    assert f"({family} family)" in message
