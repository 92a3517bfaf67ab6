"""The three services as local processes: `voxserve up`, the demo and the integration tests."""

from __future__ import annotations

import contextlib
import dataclasses
import os
import signal
import socket
import subprocess
import sys
import time
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import IO

import grpc
from grpc_health.v1 import health_pb2

from voxserve.common.config import ConfigError, env_name, load_config
from voxserve.common.health_probe import health_status, open_channel
from voxserve.families.pack import Pack
from voxserve.gateway.config import PREFIX as GATEWAY_PREFIX
from voxserve.gateway.config import UPSTREAM_PREFIX, GatewayConfig

SERVICES = ("generator", "vocoder", "gateway")


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def free_ports(count: int) -> list[int]:
    """`count` distinct free ports: each socket stays bound until all are chosen, so the system
    cannot hand out one port twice."""
    with contextlib.ExitStack() as held:
        sockets = [held.enter_context(socket.socket()) for _ in range(count)]
        for s in sockets:
            s.bind(("127.0.0.1", 0))
        return [int(s.getsockname()[1]) for s in sockets]


@dataclass(frozen=True)
class Ports:
    gateway: int = 50051
    generator: int = 50052
    vocoder: int = 50053
    gateway_metrics: int = 9101
    generator_metrics: int = 9102
    vocoder_metrics: int = 9103
    gateway_http: int = 8080

    @classmethod
    def free(cls) -> Ports:
        return cls(*free_ports(len(dataclasses.fields(cls))))

    def fresh(self, service: str) -> Ports:
        """These ports, with every port of `service` (API, metrics, HTTP) moved to a free one."""
        own = [
            f.name for f in dataclasses.fields(self) if f.name == service or f.name.startswith(service + "_")
        ]
        return dataclasses.replace(self, **dict(zip(own, free_ports(len(own)), strict=True)))

    def http_url(self, path: str = "") -> str:
        return f"http://127.0.0.1:{self.gateway_http}{path}"

    def address(self, service: str) -> str:
        return f"127.0.0.1:{getattr(self, service)}"

    def metrics_url(self, service: str) -> str:
        return f"http://127.0.0.1:{getattr(self, service + '_metrics')}/metrics"


def wait_serving(
    address: str,
    timeout: float,
    process: subprocess.Popen[bytes] | None = None,
    credentials: grpc.ChannelCredentials | None = None,
    metadata: Sequence[tuple[str, str]] = (),
    server_name: str = "",
) -> None:
    """Block until the service at `address` reports SERVING on the standard health service.

    `credentials` for a TLS service (with a client certificate where it wants mutual TLS) and the
    name its certificate is checked for; `metadata` (an `authorization` header) where health
    checks need an API key."""
    deadline = time.monotonic() + timeout
    with open_channel(address, credentials, server_name) as ch:
        while True:
            if process is not None and process.poll() is not None:
                raise RuntimeError(f"service at {address} exited with code {process.returncode}")
            try:
                if health_status(ch, 1.0, metadata) == health_pb2.HealthCheckResponse.SERVING:
                    return
            except grpc.RpcError:
                pass
            if time.monotonic() > deadline:
                raise TimeoutError(f"service at {address} not SERVING after {timeout:.0f} s")
            time.sleep(0.2)


def service_command(service: str) -> list[str]:
    """How a stack starts `service`: on Linux bound to end with the thread that starts it.

    The services run in process groups of their own, so nothing else stops them when the launcher
    dies without calling `stop` (SIGKILL, a crash): bound, each gets SIGTERM then and stops as it
    does on `stop`, freeing its ports. The kernel ties the signal to the starting *thread*: start
    services from a thread that outlives them (the main thread does). See voxserve.parent_death
    for why a wrapper rather than a preexec_fn.
    """
    command = [sys.executable, "-m", f"voxserve.{service}"]
    if not sys.platform.startswith("linux"):
        return command
    return [sys.executable, "-m", "voxserve.parent_death", str(os.getpid()), *command]


@dataclass
class LocalStack:
    pack: Path
    ports: Ports = field(default_factory=Ports)
    env: dict[str, str] = field(default_factory=dict)
    log_dir: Path | None = None
    # Health checks of services that serve TLS (set in `env` or the environment): the CA, and a
    # client certificate where they want mutual TLS; None takes them from the gateway's upstream
    # settings (see `health_credentials`). Metadata where health checks need an API key.
    client_credentials: grpc.ChannelCredentials | None = None
    health_metadata: tuple[tuple[str, str], ...] = ()
    processes: dict[str, subprocess.Popen[bytes]] = field(default_factory=dict)
    _logs: list[IO[bytes]] = field(default_factory=list)

    def service_env(self, service: str) -> dict[str, str]:
        prefix = f"VOXSERVE_{service.upper()}_"
        env = {
            **os.environ,
            f"{prefix}PORT": str(getattr(self.ports, service)),
            f"{prefix}METRICS_PORT": str(getattr(self.ports, f"{service}_metrics")),
        }
        if service == "gateway":
            env[f"{prefix}GENERATOR_ADDRESS"] = self.ports.address("generator")
            env[f"{prefix}VOCODER_ADDRESS"] = self.ports.address("vocoder")
            env[f"{prefix}HTTP_PORT"] = str(self.ports.gateway_http)
            voices = Pack(Path(self.pack)).voices_file
            if voices is not None:  # the pack's own voices (an s3 pack's prompt voices)
                env[f"{prefix}VOICES_FILE"] = str(voices)
        else:
            env[f"{prefix}PACK"] = str(self.pack)
        if service == "vocoder":
            # The stack's services share this host's cores: decode lanes would take the cores the
            # generator runs on. A vocoder on a host (or container) of its own takes them all.
            env.setdefault(f"{prefix}CPU_DECODE_LANES", "1")
        env.update(self.env)
        return env

    def start_service(self, service: str) -> subprocess.Popen[bytes]:
        out: IO[bytes] | int = subprocess.DEVNULL
        if self.log_dir is not None:
            self.log_dir.mkdir(parents=True, exist_ok=True)
            out = open(self.log_dir / f"{service}.log", "ab")
            self._logs.append(out)
        process = subprocess.Popen(
            service_command(service),
            env=self.service_env(service),
            stdout=out,
            stderr=out,
            # Its own process group: the service and the processes it starts (vLLM's engine core)
            # stop or die together, as they would in a container.
            start_new_session=True,
        )
        self.processes[service] = process
        return process

    def health_credentials(self, service: str) -> tuple[grpc.ChannelCredentials | None, str]:
        """How `start` reaches a service's health check: credentials and the server name to check.

        `client_credentials` when set. Otherwise plaintext for a service without a certificate,
        and for one that serves TLS the CA, client certificate and server name the gateway
        reaches its upstreams with (`VOXSERVE_GATEWAY_UPSTREAM_TLS_*`): a local stack has one
        private CA, which signs every service's certificate.
        """
        if self.client_credentials is not None:
            return self.client_credentials, ""
        prefix = f"VOXSERVE_{service.upper()}_"
        cert_setting = env_name(prefix, "tls_cert_file")
        if not self.service_env(service).get(cert_setting):
            return None, ""
        gateway = load_config(GatewayConfig, GATEWAY_PREFIX, self.service_env("gateway"))
        credentials = gateway.upstream_credentials()
        if credentials is None:
            raise ConfigError(
                f"{cert_setting} is set, so the {service} serves TLS: set {UPSTREAM_PREFIX}TLS_CA_FILE "
                "to the CA that signed it (the gateway and the stack's health checks verify it with that)"
            )
        return credentials, gateway.upstream_tls_server_name

    def start(self, timeout: float = 300.0) -> LocalStack:
        security = {service: self.health_credentials(service) for service in SERVICES}
        for service in SERVICES:
            self.start_service(service)
        for service in SERVICES:
            credentials, server_name = security[service]
            wait_serving(
                self.ports.address(service),
                timeout,
                self.processes[service],
                credentials=credentials,
                metadata=self.health_metadata,
                server_name=server_name,
            )
        return self

    def kill(self, service: str) -> None:
        """SIGKILL a service and everything it started, as when its machine or container dies."""
        process = self.processes[service]
        _kill_group(process)
        process.wait()

    def stop(self, grace: float = 15.0) -> None:
        for process in self.processes.values():
            if process.poll() is None:
                process.send_signal(signal.SIGTERM)
        deadline = time.monotonic() + grace
        for process in self.processes.values():
            try:
                process.wait(max(0.1, deadline - time.monotonic()))
            except subprocess.TimeoutExpired:
                process.kill()
                process.wait()
            _kill_group(process)  # whatever the service left behind
        self.processes.clear()
        for log in self._logs:
            log.close()
        self._logs.clear()

    def __enter__(self) -> LocalStack:
        try:
            return self.start()
        except BaseException:  # a failed or interrupted start leaves nothing running
            self.stop()
            raise

    def __exit__(self, *exc: object) -> None:
        self.stop()


def _kill_group(process: subprocess.Popen[bytes]) -> None:
    with contextlib.suppress(ProcessLookupError, PermissionError):
        os.killpg(process.pid, signal.SIGKILL)
