"""Each bad input gets INVALID_ARGUMENT naming the field and the limit; the services keep serving."""

from __future__ import annotations

import grpc
import pytest

from voxserve.client import synthesize
from voxserve.stack import LocalStack
from voxserve.v1 import (
    generator_pb2,
    generator_pb2_grpc,
    speech_pb2,
    speech_pb2_grpc,
    vocoder_pb2,
    vocoder_pb2_grpc,
)

GOOD_GLOBALS = list(range(32))


def start(codec: str = "bicodec", global_ids: list[int] = GOOD_GLOBALS) -> vocoder_pb2.DecodeRequest:
    return vocoder_pb2.DecodeRequest(start=vocoder_pb2.DecodeStart(codec=codec, global_ids=global_ids))


def frame(ids: list[int]) -> vocoder_pb2.DecodeRequest:
    return vocoder_pb2.DecodeRequest(frame=vocoder_pb2.DecodeFrame(token_ids=ids))


END = vocoder_pb2.DecodeRequest(end=vocoder_pb2.DecodeEnd())


def expect_invalid(call, *needles: str) -> None:  # type: ignore[no-untyped-def]
    with pytest.raises(grpc.RpcError) as info:
        list(call())
    assert info.value.code() == grpc.StatusCode.INVALID_ARGUMENT, info.value.details()
    for needle in needles:
        assert needle in info.value.details()


@pytest.fixture(autouse=True)
def still_serving(stack: LocalStack):  # type: ignore[no-untyped-def]
    """After every bad input, a good request through all three services still works."""
    yield
    result = synthesize(
        stack.ports.address("gateway"), "Still serving.", sampling=generator_pb2.SamplingParams(max_tokens=15)
    )
    assert result.samples == 320 * result.summary.semantic_tokens > 0


@pytest.mark.parametrize(
    ("request_kwargs", "needles"),
    [
        ({"text": ""}, ["text is empty"]),
        ({"text": "   "}, ["text is empty"]),
        ({"text": "a" * 2001}, ["text", "2001", "2000"]),
        ({"text": "hi", "voice": "nobody"}, ["voice 'nobody' is unknown", "default"]),
        (
            {"text": "hi", "sampling": generator_pb2.SamplingParams(max_tokens=0)},
            ["sampling.max_tokens", "[1, 3000]"],
        ),
        ({"text": "hi", "sampling": generator_pb2.SamplingParams(top_p=1.5)}, ["sampling.top_p", "(0, 1]"]),
        (
            {"text": "hi", "voice": "female", "style": generator_pb2.VoiceStyle(speed=9)},
            ["style.speed", "[0, 4]"],
        ),
    ],
)
def test_gateway_rejects(stack: LocalStack, request_kwargs: dict, needles: list[str]) -> None:
    with grpc.insecure_channel(stack.ports.address("gateway")) as channel:
        stub = speech_pb2_grpc.SpeechStub(channel)
        expect_invalid(
            lambda: stub.Synthesize(speech_pb2.SynthesizeRequest(**request_kwargs), timeout=30), *needles
        )


@pytest.mark.parametrize(
    ("ids", "needles"),
    [
        (list(range(31)), ["global_tokens.ids", "31", "exactly 32"]),
        (list(range(33)), ["global_tokens.ids", "33", "exactly 32"]),
        ([*range(31), 4096], ["global_tokens.ids[31]=4096", "[0, 4096)"]),
        ([-1, *range(31)], ["global_tokens.ids[0]=-1", "[0, 4096)"]),
    ],
)
def test_generator_rejects_global_ids(stack: LocalStack, ids: list[int], needles: list[str]) -> None:
    with grpc.insecure_channel(stack.ports.address("generator")) as channel:
        stub = generator_pb2_grpc.GeneratorStub(channel)
        request = generator_pb2.GenerateRequest(text="hi", global_tokens=generator_pb2.GlobalTokens(ids=ids))
        expect_invalid(lambda: stub.Generate(request, timeout=30), *needles)


def test_generator_rejects_special_token_markup_in_text(stack: LocalStack) -> None:
    with grpc.insecure_channel(stack.ports.address("generator")) as channel:
        stub = generator_pb2_grpc.GeneratorStub(channel)
        request = generator_pb2.GenerateRequest(
            text="hi <|im_end|>", global_tokens=generator_pb2.GlobalTokens(ids=GOOD_GLOBALS)
        )
        expect_invalid(lambda: stub.Generate(request, timeout=30), "special-token")


@pytest.mark.parametrize(
    ("messages", "needles"),
    [
        ([start(codec="snac"), END], ["start.codec 'snac' is unknown", "bicodec"]),
        ([start(global_ids=list(range(31))), END], ["global_ids", "32"]),
        ([start(global_ids=[4096] * 32), END], ["global_ids", "4096"]),
        ([start(), frame([1, 2, 8192]), END], ["frame.token_ids[2]=8192", "[0, 8192)"]),
        ([start(), frame([-5]), END], ["frame.token_ids[0]=-5"]),
        ([frame([1, 2, 3]), END], ["first message", "start"]),
        ([start(), frame([1] * 40), END, frame([1, 2])], ["after end"]),
        ([start(), start(), END], ["start may be sent only once"]),
        ([start(), frame([1, 2])], ["closed without an end message"]),
        ([start(), frame([7] * 400), frame([7] * 201), END], ["601 tokens", "limit is 600"]),
    ],
)
def test_vocoder_rejects(
    stack: LocalStack, messages: list[vocoder_pb2.DecodeRequest], needles: list[str]
) -> None:
    with grpc.insecure_channel(stack.ports.address("vocoder")) as channel:
        stub = vocoder_pb2_grpc.VocoderStub(channel)
        expect_invalid(lambda: stub.Decode(iter(messages), timeout=30), *needles)


@pytest.mark.parametrize(
    ("service", "method", "streaming", "type_name"),
    [
        ("gateway", "/voxserve.v1.Speech/Synthesize", False, "SynthesizeRequest"),
        ("gateway", "/voxserve.v1.Speech/ListVoices", False, "ListVoicesRequest"),
        ("gateway", "/voxserve.v1.Speech/SynthesizeStream", True, "SynthesizeStreamRequest"),
        ("generator", "/voxserve.v1.Generator/Generate", False, "GenerateRequest"),
        ("vocoder", "/voxserve.v1.Vocoder/Decode", True, "DecodeRequest"),
    ],
)
def test_bytes_that_are_no_message_get_invalid_argument(
    stack: LocalStack, service: str, method: str, streaming: bool, type_name: str
) -> None:
    garbage = b"\xff\xff\xff"
    with grpc.insecure_channel(stack.ports.address(service)) as channel:

        def call() -> object:
            if streaming:
                return channel.stream_stream(method)(iter([garbage]), timeout=30)
            if method.endswith("ListVoices"):
                return [channel.unary_unary(method)(garbage, timeout=30)]
            return channel.unary_stream(method)(garbage, timeout=30)

        expect_invalid(call, f"not a valid voxserve.v1.{type_name} message")
