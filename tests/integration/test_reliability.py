"""Overload, drain and cancellation leaks, against real services on 127.0.0.1.

Extra gateway and vocoder processes with their own limits run in front of the session's
generator, so a stopped or overloaded service never disturbs the other tests.
"""

from __future__ import annotations

import random
import signal
import threading
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import grpc
import pytest

from tests.integration.test_end_to_end import wait_idle
from tests.integration.test_lifecycle import wait_not_serving
from voxserve.client import synthesize
from voxserve.families.pack import Pack
from voxserve.scrape import scrape
from voxserve.stack import LocalStack, wait_serving
from voxserve.v1 import generator_pb2, speech_pb2, speech_pb2_grpc

SAMPLES_PER_TOKEN = 320


def sampling(tokens: int) -> generator_pb2.SamplingParams:
    return generator_pb2.SamplingParams(max_tokens=tokens, min_tokens=tokens)


def own_services(
    stack: LocalStack, pack: Pack, logs: Path, services: tuple[str, ...], env: dict[str, str]
) -> LocalStack:
    """`services` started anew on free ports; the rest of the chain is the session stack's."""
    ports = stack.ports
    for service in services:
        ports = ports.fresh(service)
    local = LocalStack(pack.root, ports, env=env, log_dir=logs)
    for service in services:
        process = local.start_service(service)
        wait_serving(ports.address(service), 120, process)
    return local


def test_overload_refuses_past_the_limit_at_once_and_admitted_streams_finish(
    stack: LocalStack, tiny_pack: Pack, tmp_path: Path
) -> None:
    limit = 4
    local = own_services(
        stack, tiny_pack, tmp_path, ("gateway",), {"VOXSERVE_GATEWAY_MAX_STREAMS": str(limit)}
    )
    address = local.ports.address("gateway")
    try:
        admitted_open = threading.Barrier(limit + 1, timeout=60)
        finished_at: list[float] = []

        def admitted() -> int:
            with grpc.insecure_channel(address) as channel:
                request = speech_pb2.SynthesizeRequest(text="Admitted and held.", sampling=sampling(150))
                call = speech_pb2_grpc.SpeechStub(channel).Synthesize(request, timeout=120)
                responses = [next(call)]
                admitted_open.wait()
                responses += list(call)
            finished_at.append(time.monotonic())
            assert responses[-1].HasField("summary")
            return sum(len(r.audio.data) // 2 for r in responses if r.HasField("audio"))

        def refused() -> tuple[grpc.StatusCode, str, dict[str, str], float]:
            started = time.monotonic()
            with grpc.insecure_channel(address) as channel:
                request = speech_pb2.SynthesizeRequest(text="One too many.", sampling=sampling(150))
                call = speech_pb2_grpc.SpeechStub(channel).Synthesize(request, timeout=60)
                try:
                    list(call)
                except grpc.RpcError as exc:
                    trailers = dict(exc.trailing_metadata() or ())  # type: ignore[attr-defined]
                    return exc.code(), exc.details(), trailers, time.monotonic()
            raise AssertionError(f"a call past the limit was served ({time.monotonic() - started:.2f} s)")

        with ThreadPoolExecutor(2 * limit) as pool:
            holding = [pool.submit(admitted) for _ in range(limit)]
            admitted_open.wait()  # every admitted stream has audio out: all places are taken
            refusals = [f.result() for f in [pool.submit(refused) for _ in range(limit)]]
            samples = [f.result() for f in holding]
        assert samples == [150 * SAMPLES_PER_TOKEN] * limit
        for code, details, trailers, refused_at in refusals:
            assert code == grpc.StatusCode.RESOURCE_EXHAUSTED
            assert f"maximum of {limit}" in details
            assert int(trailers["grpc-retry-pushback-ms"]) > 0
            assert refused_at < min(finished_at), "a refusal must not wait for a place to free up"
        after = synthesize(address, "A place is free again.", sampling=sampling(10))
        assert after.samples == 10 * SAMPLES_PER_TOKEN
    finally:
        local.stop()


def test_sigterm_drains_eight_streams_with_all_their_audio(
    stack: LocalStack, tiny_pack: Pack, tmp_path: Path
) -> None:
    env = {"VOXSERVE_GATEWAY_GRACE_SECONDS": "60", "VOXSERVE_VOCODER_GRACE_SECONDS": "60"}
    local = own_services(stack, tiny_pack, tmp_path, ("vocoder", "gateway"), env)
    address = local.ports.address("gateway")
    streams = 8
    try:
        live = threading.Barrier(streams + 1, timeout=60)

        def speak() -> tuple[int, int]:
            with grpc.insecure_channel(address) as channel:
                request = speech_pb2.SynthesizeRequest(text="Finish me, please.", sampling=sampling(200))
                call = speech_pb2_grpc.SpeechStub(channel).Synthesize(request, timeout=180)
                responses = [next(call)]
                live.wait()
                responses += list(call)
            summary = responses[-1].summary
            return sum(len(r.audio.data) // 2 for r in responses[:-1]), summary.semantic_tokens

        with ThreadPoolExecutor(streams) as pool:
            results = [pool.submit(speak) for _ in range(streams)]
            live.wait()
            for service in ("gateway", "vocoder"):
                local.processes[service].send_signal(signal.SIGTERM)
            with grpc.insecure_channel(address) as channel:
                assert wait_not_serving(channel)
            with pytest.raises(grpc.RpcError) as refused:
                synthesize(address, "Too late.", sampling=sampling(10), timeout=10)
            assert refused.value.code() == grpc.StatusCode.UNAVAILABLE
            done = [f.result() for f in results]
        assert done == [(200 * SAMPLES_PER_TOKEN, 200)] * streams
        assert local.processes["gateway"].wait(60) == 0
        assert local.processes["vocoder"].wait(60) == 0
    finally:
        local.stop()


def cancel_at_random(address: str, rng: random.Random) -> None:
    """One stream, cancelled before its first audio, after a few chunks, or by its deadline."""
    way = rng.choice(["immediately", "after chunks", "deadline"])
    with grpc.insecure_channel(address) as channel:
        stub = speech_pb2_grpc.SpeechStub(channel)
        request = speech_pb2.SynthesizeRequest(text="Cut me short, somewhere.", sampling=sampling(300))
        timeout = rng.uniform(0.05, 0.6) if way == "deadline" else 60
        call = stub.Synthesize(request, timeout=timeout)
        try:
            if way == "after chunks":
                for _ in range(rng.randint(1, 4)):
                    next(call)
            elif way == "deadline":
                list(call)
        except grpc.RpcError as exc:
            assert exc.code() == grpc.StatusCode.DEADLINE_EXCEEDED, exc.details()
        call.cancel()


LEAK_STREAMS = 200


def test_cancelled_streams_leave_nothing_behind(stack: LocalStack) -> None:
    """The 1,000-stream version with memory figures is `python -m bench faults leak`."""
    address = stack.ports.address("gateway")
    rng = random.Random(0)
    seeds = [rng.randrange(1 << 30) for _ in range(LEAK_STREAMS)]
    with ThreadPoolExecutor(8) as pool:
        list(pool.map(lambda seed: cancel_at_random(address, random.Random(seed)), seeds))
    gen, voc = wait_idle(stack, 30)
    gateway = scrape(stack.ports.metrics_url("gateway"))
    assert gateway["voxserve_gateway_active_requests"] == 0
    assert gen["voxserve_generator_active_requests"] == 0
    assert gen["voxserve_generator_engine_requests"] == 0
    assert voc["voxserve_vocoder_active_streams"] == 0
    after = synthesize(address, "Nothing leaked.", sampling=sampling(10))
    assert after.samples == 10 * SAMPLES_PER_TOKEN
