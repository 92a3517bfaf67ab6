"""How a local stack health-checks its services: plaintext, or over TLS with the settings the
gateway reaches its upstreams with; a TLS service without a CA to check it is a clear error."""

from __future__ import annotations

import dataclasses
from pathlib import Path
from types import SimpleNamespace
from typing import ClassVar

import pytest

import voxserve.stack as stack_module
from tests.services.shared.common.test_security import write_pki
from voxserve.cli import main
from voxserve.common.config import ConfigError
from voxserve.families.pack import Pack
from voxserve.stack import LocalStack, Ports, free_port

CERT = "VOXSERVE_GENERATOR_TLS_CERT_FILE"


def test_a_plaintext_stack_is_checked_over_plaintext(tmp_path: Path) -> None:
    stack = LocalStack(tmp_path, Ports.free())
    assert stack.health_credentials("generator") == (None, "")
    assert stack.health_credentials("gateway") == (None, "")


def test_a_tls_service_is_checked_with_the_gateways_upstream_ca_and_name(tmp_path: Path) -> None:
    pki = write_pki(tmp_path / "pki")
    env = {
        CERT: str(pki.server_cert),
        "VOXSERVE_GATEWAY_UPSTREAM_TLS_CA_FILE": str(pki.ca),
        "VOXSERVE_GATEWAY_UPSTREAM_TLS_SERVER_NAME": "localhost",
    }
    stack = LocalStack(tmp_path, Ports.free(), env=env)
    credentials, server_name = stack.health_credentials("generator")
    assert credentials is not None and server_name == "localhost"
    assert stack.health_credentials("vocoder") == (None, ""), "the vocoder serves plaintext here"


def test_a_tls_service_without_a_ca_to_check_it_is_refused_before_anything_starts(
    tmp_path: Path, tiny_pack: Pack, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    stack = LocalStack(tmp_path, Ports.free(), env={CERT: "generator.pem"})
    with pytest.raises(
        ConfigError, match="set VOXSERVE_GATEWAY_UPSTREAM_TLS_CA_FILE to the CA that signed it"
    ):
        stack.start()
    assert not stack.processes
    monkeypatch.setenv(CERT, "generator.pem")
    assert main(["up", "--pack", str(tiny_pack.root), "--log-dir", str(tmp_path / "logs")]) == 2
    assert f"voxserve: {CERT} is set, so the generator serves TLS" in capsys.readouterr().err


def test_voxserve_health_exits_0_only_for_a_serving_service(
    stack: LocalStack, capsys: pytest.CaptureFixture[str]
) -> None:
    address = stack.ports.address("gateway")
    assert main(["health", "--address", address]) == 0
    assert capsys.readouterr().out.strip() == f"{address}: SERVING"
    nobody = f"127.0.0.1:{free_port()}"
    assert main(["health", "--address", nobody, "--timeout", "1"]) == 1
    assert (
        f"{nobody}: UNAVAILABLE" in capsys.readouterr().err or "DEADLINE_EXCEEDED" in capsys.readouterr().err
    )


@pytest.mark.parametrize(
    "flags", [["--cert", "c.pem"], ["--cert", "c.pem", "--key", "k.pem"], ["--ca", "a", "--key", "k"]]
)
def test_voxserve_health_refuses_half_a_client_certificate(
    flags: list[str], capsys: pytest.CaptureFixture[str]
) -> None:
    assert main(["health", *flags]) == 2
    assert "--cert and --key go together, and need --ca" in capsys.readouterr().err


def test_free_ports_are_distinct_for_every_field() -> None:
    for _ in range(20):
        ports = dataclasses.asdict(Ports.free())
        assert set(ports) >= {"gateway", "gateway_metrics", "gateway_http"}
        assert len(set(ports.values())) == len(ports), ports
        assert all(1024 <= port <= 65535 for port in ports.values())


class LowestFreePortSocket:
    """A system that binds port 0 to its lowest free port: a port just closed is given again."""

    bound: ClassVar[set[int]] = set()

    def __init__(self) -> None:
        self.port = 0

    def __enter__(self) -> LowestFreePortSocket:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def bind(self, address: tuple[str, int]) -> None:
        self.port = min(set(range(40000, 40100)) - self.bound)
        self.bound.add(self.port)

    def getsockname(self) -> tuple[str, int]:
        return ("127.0.0.1", self.port)

    def close(self) -> None:
        self.bound.discard(self.port)


def test_free_ports_are_distinct_where_closed_ports_are_reused(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setattr(stack_module, "socket", SimpleNamespace(socket=LowestFreePortSocket))
    ports = dataclasses.asdict(Ports.free())
    assert len(set(ports.values())) == len(ports), ports
    moved = Ports.free().fresh("gateway")
    assert len({moved.gateway, moved.gateway_metrics, moved.gateway_http}) == 3


def test_fresh_moves_every_port_of_one_service_and_no_other() -> None:
    # Ports no free port can be (below 1024): each moved one is seen to move.
    before = Ports(*range(1, len(dataclasses.fields(Ports)) + 1))
    after = before.fresh("gateway")
    moved = {name for name, port in dataclasses.asdict(after).items() if port != getattr(before, name)}
    assert moved == {"gateway", "gateway_metrics", "gateway_http"}
    assert before.fresh("generator").gateway_http == before.gateway_http


def test_the_gateway_gets_its_http_port(tmp_path: Path) -> None:
    ports = Ports.free()
    stack = LocalStack(tmp_path, ports)
    assert stack.service_env("gateway")["VOXSERVE_GATEWAY_HTTP_PORT"] == str(ports.gateway_http)
    assert "VOXSERVE_GENERATOR_HTTP_PORT" not in stack.service_env("generator")
    assert ports.http_url("/v1/models") == f"http://127.0.0.1:{ports.gateway_http}/v1/models"


def test_the_stack_vocoder_leaves_the_generator_its_cores(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.delenv("VOXSERVE_VOCODER_CPU_DECODE_LANES", raising=False)
    assert LocalStack(tmp_path).service_env("vocoder")["VOXSERVE_VOCODER_CPU_DECODE_LANES"] == "1"
    chosen = LocalStack(tmp_path, env={"VOXSERVE_VOCODER_CPU_DECODE_LANES": "2"})
    assert chosen.service_env("vocoder")["VOXSERVE_VOCODER_CPU_DECODE_LANES"] == "2"
    monkeypatch.setenv("VOXSERVE_VOCODER_CPU_DECODE_LANES", "3")
    assert LocalStack(tmp_path).service_env("vocoder")["VOXSERVE_VOCODER_CPU_DECODE_LANES"] == "3"
