"""SIGTERM: no new work is taken, the stream in flight finishes with all its audio, exit 0; and a
stack's services end with the process that started them, even when it is SIGKILLed."""

from __future__ import annotations

import json
import select
import signal
import socket
import subprocess
import sys
import textwrap
import threading
import time
from collections.abc import Iterator
from pathlib import Path

import grpc
import pytest
from grpc_health.v1 import health_pb2, health_pb2_grpc

from tests.services.tooling.test_parent_death import wait_gone
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


def port_free(port: int) -> bool:
    """Nothing listens on `port` (a connection the server closed may linger in TIME_WAIT)."""
    with socket.socket() as s:
        s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        try:
            s.bind(("127.0.0.1", port))
        except OSError:
            return False
        return True


# Starts a gateway through LocalStack (upstreams that nobody serves: it starts all the same), says
# where it is, and waits to be killed.
LAUNCHER = textwrap.dedent(
    """
    import json, sys, time
    from pathlib import Path
    from voxserve.stack import LocalStack, Ports, free_port, wait_serving

    logs = Path(sys.argv[1])
    env = {
        "VOXSERVE_GATEWAY_GENERATOR_ADDRESS": f"127.0.0.1:{free_port()}",
        "VOXSERVE_GATEWAY_VOCODER_ADDRESS": f"127.0.0.1:{free_port()}",
    }
    stack = LocalStack(logs, Ports.free(), log_dir=logs, env=env)
    process = stack.start_service("gateway")
    wait_serving(stack.ports.address("gateway"), 60, process)
    ports = [stack.ports.gateway, stack.ports.gateway_metrics]
    print(json.dumps({"pid": process.pid, "ports": ports}), flush=True)
    time.sleep(600)
    """
)


@pytest.mark.skipif(not sys.platform.startswith("linux"), reason="Linux's parent-death signal")
def test_services_end_when_their_launcher_is_sigkilled(tmp_path: Path) -> None:
    with subprocess.Popen(
        [sys.executable, "-c", LAUNCHER, str(tmp_path)], stdout=subprocess.PIPE
    ) as launcher:
        try:
            assert launcher.stdout is not None
            ready, _, _ = select.select([launcher.stdout], [], [], 90)
            assert ready, "the launcher did not start its gateway"
            started = json.loads(launcher.stdout.readline())
            assert not any(port_free(port) for port in started["ports"])
            launcher.kill()
            launcher.wait(10)
            assert wait_gone(started["pid"], 10), "the gateway outlived its launcher"
            deadline = time.monotonic() + 5
            while not all(port_free(port) for port in started["ports"]):
                assert time.monotonic() < deadline, "the gateway's ports are still bound"
                time.sleep(0.05)
        finally:
            launcher.kill()
