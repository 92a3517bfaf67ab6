"""SIGTERM: no new work is taken, the stream in flight finishes with all its audio, exit 0."""

from __future__ import annotations

import signal
import threading
import time
from collections.abc import Iterator

import grpc
from grpc_health.v1 import health_pb2, health_pb2_grpc

from voxserve.families.pack import Pack
from voxserve.stack import LocalStack, Ports, wait_serving
from voxserve.v1 import vocoder_pb2, vocoder_pb2_grpc


def wait_not_serving(channel: grpc.Channel) -> bool:
    """After SIGTERM a new call sees NOT_SERVING, or is refused outright once the server stops."""
    health = health_pb2_grpc.HealthStub(channel)
    for _ in range(100):
        try:
            reply = health.Check(health_pb2.HealthCheckRequest(service=""), timeout=5)
        except grpc.RpcError as exc:
            return exc.code() in (grpc.StatusCode.CANCELLED, grpc.StatusCode.UNAVAILABLE)
        if reply.status == health_pb2.HealthCheckResponse.NOT_SERVING:
            return True
        time.sleep(0.02)
    return False


def test_vocoder_stops_cleanly_after_finishing_its_streams(tiny_pack: Pack, tmp_path) -> None:
    local = LocalStack(
        tiny_pack.root, Ports.free(), log_dir=tmp_path, env={"VOXSERVE_VOCODER_GRACE_SECONDS": "20"}
    )
    process = local.start_service("vocoder")
    address = local.ports.address("vocoder")
    try:
        wait_serving(address, 120, process)
        release = threading.Event()

        def requests() -> Iterator[vocoder_pb2.DecodeRequest]:
            yield vocoder_pb2.DecodeRequest(
                start=vocoder_pb2.DecodeStart(codec="bicodec", global_ids=range(32))
            )
            yield vocoder_pb2.DecodeRequest(frame=vocoder_pb2.DecodeFrame(token_ids=list(range(60))))
            release.wait(30)
            yield vocoder_pb2.DecodeRequest(frame=vocoder_pb2.DecodeFrame(token_ids=list(range(60, 77))))
            yield vocoder_pb2.DecodeRequest(end=vocoder_pb2.DecodeEnd())

        with grpc.insecure_channel(address) as channel:
            call = vocoder_pb2_grpc.VocoderStub(channel).Decode(requests(), timeout=60)
            first = next(call)  # the stream is live
            process.send_signal(signal.SIGTERM)
            not_serving = wait_not_serving(channel)
            release.set()
            rest = list(call)
        samples = sum(len(c.pcm_f32) // 4 for c in [first, *rest])
        assert not_serving
        assert rest[-1].final and samples == 77 * 320
        assert process.wait(30) == 0
    finally:
        local.stop()


def test_gateway_reports_unreachable_upstreams_as_unavailable(tmp_path) -> None:
    from voxserve.client import synthesize
    from voxserve.stack import free_port

    ports = Ports.free()
    # Nothing listens on these ports.
    env = {
        "VOXSERVE_GATEWAY_GENERATOR_ADDRESS": f"127.0.0.1:{free_port()}",
        "VOXSERVE_GATEWAY_VOCODER_ADDRESS": f"127.0.0.1:{free_port()}",
    }
    local = LocalStack(tmp_path, ports, log_dir=tmp_path / "logs", env=env)
    process = local.start_service("gateway")
    try:
        wait_serving(ports.address("gateway"), 60, process)
        try:
            synthesize(ports.address("gateway"), "Anyone there?", timeout=30)
        except grpc.RpcError as exc:
            assert exc.code() == grpc.StatusCode.UNAVAILABLE
            assert exc.details().startswith(("generator:", "vocoder:")), exc.details()
        else:
            raise AssertionError("the call should fail")
        assert process.poll() is None, "the gateway keeps running"
    finally:
        local.stop()
