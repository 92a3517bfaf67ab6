"""A replica that dies mid-stream: the vocoder's stream moves to another replica without a seam;
a generator that fails before audio is retried elsewhere, after audio the call says so.

Each test starts its own replicas (processes on free ports) so that killing one disturbs no other
test; the session stack's generator serves where a test needs a healthy one.
"""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import grpc
import numpy as np
import pytest

from voxserve.client import synthesize
from voxserve.families.pack import Pack
from voxserve.scrape import scrape
from voxserve.stack import LocalStack, Ports, free_port, wait_serving
from voxserve.v1 import generator_pb2, speech_pb2, speech_pb2_grpc

SAMPLES_PER_TOKEN = 320
TOKENS = 300


def sampling() -> generator_pb2.SamplingParams:
    return generator_pb2.SamplingParams(max_tokens=TOKENS, min_tokens=TOKENS, seed=17)


def start(pack: Pack, logs: Path, service: str, env: dict[str, str] | None = None) -> LocalStack:
    """One service process on its own free ports."""
    local = LocalStack(pack.root, Ports.free(), env=env or {}, log_dir=logs / f"{service}-{free_port()}")
    process = local.start_service(service)
    wait_serving(local.ports.address(service), 300, process)
    return local


@pytest.fixture
def two_vocoders(
    stack: LocalStack, tiny_pack: Pack, tmp_path: Path
) -> Iterator[tuple[str, list[LocalStack]]]:
    # Chunks of one size make the chunking a function of the token count alone, so an
    # uninterrupted run is a fixed reference (adaptive chunks follow timing: two uninterrupted
    # runs then differ by up to the context tolerance, and so does a failover).
    fixed_chunks = {"VOXSERVE_VOCODER_FIRST_CHUNK_TOKENS": "10", "VOXSERVE_VOCODER_MAX_CHUNK_TOKENS": "10"}
    vocoders = [start(tiny_pack, tmp_path, "vocoder", fixed_chunks) for _ in range(2)]
    addresses = ",".join(v.ports.address("vocoder") for v in vocoders)
    gateway = start(
        tiny_pack,
        tmp_path,
        "gateway",
        {
            "VOXSERVE_GATEWAY_GENERATOR_ADDRESS": stack.ports.address("generator"),
            "VOXSERVE_GATEWAY_VOCODER_ADDRESS": addresses,
        },
    )
    try:
        yield gateway.ports.address("gateway"), vocoders
    finally:
        for local in (gateway, *vocoders):
            local.stop()


def pcm(responses: list[speech_pb2.SynthesizeResponse]) -> np.ndarray:
    data = b"".join(r.audio.data for r in responses if r.HasField("audio"))
    return np.frombuffer(data, "<i2").astype(np.int32)


def test_a_vocoder_killed_mid_stream_is_replaced_without_a_seam(
    two_vocoders: tuple[str, list[LocalStack]],
) -> None:
    address, vocoders = two_vocoders
    request = speech_pb2.SynthesizeRequest(text="Survive a vocoder going away.", sampling=sampling())
    with grpc.insecure_channel(address) as channel:
        stub = speech_pb2_grpc.SpeechStub(channel)
        uninterrupted = list(stub.Synthesize(request, timeout=120))
        call = stub.Synthesize(request, timeout=120)
        responses = [next(call)]
        busy = [
            v
            for v in vocoders
            if scrape(v.ports.metrics_url("vocoder"))["voxserve_vocoder_active_streams"] > 0
        ]
        assert len(busy) == 1, "exactly one replica decodes the stream"
        busy[0].kill("vocoder")
        responses += list(call)
    expected, got = pcm(uninterrupted), pcm(responses)
    assert got.size == expected.size == TOKENS * SAMPLES_PER_TOKEN
    offsets = [r.audio.sample_offset for r in responses if r.HasField("audio")]
    sizes = [len(r.audio.data) // 2 for r in responses if r.HasField("audio")]
    assert offsets == [sum(sizes[:i]) for i in range(len(sizes))], "every sample exactly once"
    # The replica replays the stream in the failed one's windows and continues in the same ones.
    assert np.array_equal(got, expected), f"{np.count_nonzero(got != expected)} samples differ"
    assert responses[-1].summary.samples == TOKENS * SAMPLES_PER_TOKEN


@pytest.fixture(scope="module")
def spare_generator(tiny_pack: Pack, tmp_path_factory: pytest.TempPathFactory) -> Iterator[LocalStack]:
    """A second generator replica (its own vLLM engine), killed by the last test of this module."""
    local = start(tiny_pack, tmp_path_factory.mktemp("spare"), "generator")
    yield local
    local.stop()


def gateway_for(stack: LocalStack, pack: Pack, logs: Path, generators: list[str]) -> LocalStack:
    return start(
        pack,
        logs,
        "gateway",
        {
            "VOXSERVE_GATEWAY_GENERATOR_ADDRESS": ",".join(generators),
            "VOXSERVE_GATEWAY_VOCODER_ADDRESS": stack.ports.address("vocoder"),
        },
    )


def test_a_generator_down_before_any_audio_is_retried_on_another(
    stack: LocalStack, tiny_pack: Pack, tmp_path: Path
) -> None:
    dead = f"127.0.0.1:{free_port()}"  # nothing listens here
    gateway = gateway_for(stack, tiny_pack, tmp_path, [dead, stack.ports.address("generator")])
    try:
        for _ in range(2):  # replicas are taken in turn: the dead one comes first once
            result = synthesize(gateway.ports.address("gateway"), "Try the other one.", sampling=sampling())
            assert result.samples == TOKENS * SAMPLES_PER_TOKEN
    finally:
        gateway.stop()


def test_a_generator_lost_after_audio_went_out_ends_the_call_with_unavailable(
    stack: LocalStack, tiny_pack: Pack, tmp_path: Path, spare_generator: LocalStack
) -> None:
    gateway = gateway_for(stack, tiny_pack, tmp_path, [spare_generator.ports.address("generator")])
    try:
        request = speech_pb2.SynthesizeRequest(
            text="Lose the generator halfway.",
            sampling=generator_pb2.SamplingParams(max_tokens=2500, min_tokens=2500),
        )
        with grpc.insecure_channel(gateway.ports.address("gateway")) as channel:
            call = speech_pb2_grpc.SpeechStub(channel).Synthesize(request, timeout=120)
            assert next(call).HasField("audio")
            spare_generator.kill("generator")
            with pytest.raises(grpc.RpcError) as info:
                list(call)
        assert info.value.code() == grpc.StatusCode.UNAVAILABLE
        assert "generator: the generator failed after" in info.value.details()
        assert "samples of this segment were sent" in info.value.details()
    finally:
        gateway.stop()
