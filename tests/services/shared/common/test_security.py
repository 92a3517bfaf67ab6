"""API keys (parsing, the constant-time check, the interceptor on a real grpc.aio server) and TLS
settings (start-up errors, credentials on a real server). `write_pki` is shared with
tests/integration/test_security.py."""

from __future__ import annotations

import asyncio
import datetime
import hmac
import ipaddress
from collections.abc import AsyncIterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import grpc
import pytest
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import ExtendedKeyUsageOID, NameOID
from grpc_health.v1 import health, health_pb2, health_pb2_grpc
from grpc_reflection.v1alpha import reflection, reflection_pb2, reflection_pb2_grpc

from voxserve.common import auth, tls
from voxserve.common.auth import (
    UNAUTHENTICATED_MESSAGE,
    ApiKeyInterceptor,
    ApiKeys,
    api_key_interceptors,
    parse_key_lines,
    parse_key_list,
)
from voxserve.common.config import ConfigError
from voxserve.common.request_id import RequestIdInterceptor
from voxserve.common.server import listen_credentials
from voxserve.gateway import config as gateway_config
from voxserve.gateway.app import CHANNEL_OPTIONS, interceptors, upstream_channels
from voxserve.generator import config as generator_config

# -- a throwaway PKI -------------------------------------------------------------------------------


@dataclass(frozen=True)
class Pki:
    """PEM files: a CA, a server certificate it signed, and a client certificate it signed."""

    ca: Path
    server_cert: Path
    server_key: Path
    client_cert: Path
    client_key: Path


def _name(common_name: str) -> x509.Name:
    return x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, common_name)])


def _write_key(path: Path, key: ec.EllipticCurvePrivateKey) -> Path:
    path.write_bytes(
        key.private_bytes(
            serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption()
        )
    )
    return path


def _write_cert(path: Path, cert: x509.Certificate) -> Path:
    path.write_bytes(cert.public_bytes(serialization.Encoding.PEM))
    return path


def _issue(
    subject: str,
    key: ec.EllipticCurvePrivateKey,
    issuer: tuple[x509.Name, ec.EllipticCurvePrivateKey] | None,
    extensions: list[x509.ExtensionType],
) -> x509.Certificate:
    now = datetime.datetime.now(datetime.UTC)
    issuer_name, issuer_key = issuer if issuer is not None else (_name(subject), key)
    builder = (
        x509.CertificateBuilder()
        .subject_name(_name(subject))
        .issuer_name(issuer_name)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - datetime.timedelta(minutes=5))
        .not_valid_after(now + datetime.timedelta(days=1))
    )
    for extension in extensions:
        builder = builder.add_extension(extension, critical=isinstance(extension, x509.BasicConstraints))
    return builder.sign(issuer_key, hashes.SHA256())


def write_pki(
    directory: Path, dns_names: tuple[str, ...] = ("localhost",), ips: tuple[str, ...] = ("127.0.0.1",)
) -> Pki:
    """A fresh CA in `directory`, a server certificate for `dns_names` and `ips` (Subject
    Alternative Names) and a client certificate, all signed by it (EC P-256)."""
    directory.mkdir(parents=True, exist_ok=True)
    ca_key = ec.generate_private_key(ec.SECP256R1())
    ca_cert = _issue(
        f"voxserve test CA {directory.name}",
        ca_key,
        None,
        [
            x509.BasicConstraints(ca=True, path_length=None),
            x509.KeyUsage(False, False, False, False, False, True, True, False, False),
        ],
    )
    issuer = (ca_cert.subject, ca_key)
    server_key = ec.generate_private_key(ec.SECP256R1())
    names: list[x509.GeneralName] = [x509.DNSName(n) for n in dns_names]
    names += [x509.IPAddress(ipaddress.ip_address(ip)) for ip in ips]
    server_cert = _issue(
        "voxserve server",
        server_key,
        issuer,
        [
            x509.BasicConstraints(ca=False, path_length=None),
            x509.SubjectAlternativeName(names),
            x509.ExtendedKeyUsage([ExtendedKeyUsageOID.SERVER_AUTH]),
        ],
    )
    client_key = ec.generate_private_key(ec.SECP256R1())
    client_cert = _issue(
        "voxserve client",
        client_key,
        issuer,
        [
            x509.BasicConstraints(ca=False, path_length=None),
            x509.ExtendedKeyUsage([ExtendedKeyUsageOID.CLIENT_AUTH]),
        ],
    )
    return Pki(
        ca=_write_cert(directory / "ca.pem", ca_cert),
        server_cert=_write_cert(directory / "server.pem", server_cert),
        server_key=_write_key(directory / "server.key", server_key),
        client_cert=_write_cert(directory / "client.pem", client_cert),
        client_key=_write_key(directory / "client.key", client_key),
    )


# -- key parsing -----------------------------------------------------------------------------------


def test_key_file_lines_skip_blanks_and_comments() -> None:
    text = "# production keys\n\n  alpha  \n#beta\n   # indented comment\ngam#ma\n\t\ndelta\n"
    assert parse_key_lines(text) == ["alpha", "gam#ma", "delta"]


def test_key_list_is_comma_separated() -> None:
    assert parse_key_list(" k1, k2 ,,k3 ,") == ["k1", "k2", "k3"]
    assert parse_key_list("") == parse_key_list(" , ") == []


def test_keys_come_from_the_setting_and_the_file(tmp_path: Path) -> None:
    keys_file = tmp_path / "keys"
    keys_file.write_text("# rotated monthly\nfile-key-1\n\nfile-key-2\n")
    keys = ApiKeys.load("env-key-1, env-key-2", keys_file)
    assert len(keys) == 4
    for key in ("env-key-1", "env-key-2", "file-key-1", "file-key-2"):
        assert keys.authorizes(f"Bearer {key}")
    assert not keys.authorizes("Bearer # rotated monthly")


def test_gateway_reads_keys_from_its_environment(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    keys_file = tmp_path / "keys"
    keys_file.write_text("from-file\n")
    monkeypatch.setenv("VOXSERVE_GATEWAY_API_KEYS", "from-env")
    monkeypatch.setenv("VOXSERVE_GATEWAY_API_KEYS_FILE", str(keys_file))
    config = gateway_config.load()
    assert config.auth_open_probes is True
    (check,) = interceptors(config)
    assert isinstance(check, ApiKeyInterceptor)
    assert check.keys.authorizes("Bearer from-env") and check.keys.authorizes("Bearer from-file")
    assert "from-env" not in repr(config), "keys stay out of the config's repr (and so out of logs)"


def test_no_keys_means_open() -> None:
    assert interceptors(gateway_config.load(api_keys="", api_keys_file=None)) == []
    assert api_key_interceptors(ApiKeys([])) == []
    with pytest.raises(ValueError, match="at least one key"):
        ApiKeyInterceptor(ApiKeys([]))


def test_unreadable_or_empty_keys_file_stops_the_gateway(tmp_path: Path) -> None:
    missing = tmp_path / "nope"
    with pytest.raises(ConfigError, match=r"VOXSERVE_GATEWAY_API_KEYS_FILE: cannot read .*nope"):
        interceptors(gateway_config.load(api_keys_file=missing))
    empty = tmp_path / "empty"
    empty.write_text("# no keys yet\n\n")
    with pytest.raises(ConfigError, match="holds no key"):
        interceptors(gateway_config.load(api_keys_file=empty))


def test_a_key_with_a_space_is_refused_without_echoing_it(tmp_path: Path) -> None:
    keys_file = tmp_path / "keys"
    keys_file.write_text("good\nsecret part\n")
    with pytest.raises(ConfigError) as info:
        ApiKeys.load("", keys_file)
    assert "#2" in str(info.value) and "secret" not in str(info.value)
    with pytest.raises(ConfigError, match="#1"):
        ApiKeys(["clé"])


def test_keys_never_show_in_repr() -> None:
    assert repr(ApiKeys(["s3cr3t", "other"])) == "ApiKeys(2 keys)"


# -- the check -------------------------------------------------------------------------------------

KEYS = ("k-one", "k-two-longer", "k-three")


@pytest.mark.parametrize("key", KEYS)
def test_every_configured_key_is_accepted(key: str) -> None:
    keys = ApiKeys(KEYS)
    assert keys.authorizes(f"Bearer {key}")
    assert keys.authorizes(f"Bearer {key}".encode())


@pytest.mark.parametrize(
    "header",
    [
        None,
        "",
        "k-one",  # no scheme
        "Bearer ",  # no key
        "Bearer",
        "Bearer k-on",  # a prefix of a key
        "Bearer k-one2",  # a key plus more
        "Bearer k-onek-two-longer",
        "Bearer k-four",
        "bearer k-one",  # the scheme as the message writes it
        "BEARER k-one",
        "Basic k-one",
        "Bearer  k-one",  # extra spaces
        " Bearer k-one",
        "Bearer k-one ",
        "Bearer\tk-one",
        "Bearerk-one",
    ],
)
def test_anything_else_is_refused(header: str | None) -> None:
    assert not ApiKeys(KEYS).authorizes(header)


def test_the_check_compares_every_key_without_early_exit(monkeypatch: pytest.MonkeyPatch) -> None:
    compared: list[tuple[bytes, bytes]] = []
    real = hmac.compare_digest

    def spy(a: bytes, b: bytes) -> bool:
        compared.append((a, b))
        return real(a, b)

    monkeypatch.setattr(auth.hmac, "compare_digest", spy)
    keys = ApiKeys(KEYS)
    assert keys.authorizes("Bearer k-one")  # the first key matches...
    assert compared == [(k.encode(), b"k-one") for k in KEYS]  # ...and every key is still compared
    compared.clear()
    assert not keys.authorizes("Bearer wrong")
    assert [a for a, _ in compared] == [k.encode() for k in KEYS]


# -- the interceptor on a real server --------------------------------------------------------------

SERVICE = "test.Echo"


class Echo:
    """Counts the calls that reach a handler."""

    def __init__(self) -> None:
        self.calls = 0

    async def unary(self, request: bytes, context: grpc.aio.ServicerContext) -> bytes:
        self.calls += 1
        return b"unary:" + request

    async def stream(self, request: bytes, context: grpc.aio.ServicerContext) -> AsyncIterator[bytes]:
        self.calls += 1
        yield b"s1"
        yield b"s2"

    async def bidi(self, requests: Any, context: grpc.aio.ServicerContext) -> AsyncIterator[bytes]:
        self.calls += 1
        async for request in requests:
            yield b"bidi:" + request

    def handler(self) -> grpc.GenericRpcHandler:
        return grpc.method_handlers_generic_handler(
            SERVICE,
            {
                "Unary": grpc.unary_unary_rpc_method_handler(self.unary),
                "Stream": grpc.unary_stream_rpc_method_handler(self.stream),
                "Bidi": grpc.stream_stream_rpc_method_handler(self.bidi),
            },
        )


@dataclass
class Served:
    channel: grpc.aio.Channel
    echo: Echo

    async def unary(self, metadata: tuple[tuple[str, str], ...] = ()) -> bytes:
        call = self.channel.unary_unary(f"/{SERVICE}/Unary")
        return bytes(await call(b"x", metadata=metadata, timeout=10))

    async def stream(self, metadata: tuple[tuple[str, str], ...] = ()) -> list[bytes]:
        call = self.channel.unary_stream(f"/{SERVICE}/Stream")
        return [bytes(m) async for m in call(b"x", metadata=metadata, timeout=10)]

    async def bidi(self, metadata: tuple[tuple[str, str], ...] = ()) -> list[bytes]:
        call = self.channel.stream_stream(f"/{SERVICE}/Bidi")
        return [bytes(m) async for m in call(iter([b"1", b"2"]), metadata=metadata, timeout=10)]

    async def bidi_silent(self, metadata: tuple[tuple[str, str], ...] = ()) -> list[bytes]:
        """A bidi call whose client sends nothing until it hears back.

        (A grpc.aio client that writes while the server ends the call may report INTERNAL instead
        of the server's status, grpc/grpc#36066; this also shows the refusal needs no request.)
        """
        heard = asyncio.Event()

        async def requests() -> AsyncIterator[bytes]:
            await heard.wait()
            yield b"late"

        call = self.channel.stream_stream(f"/{SERVICE}/Bidi")
        try:
            return [bytes(m) async for m in call(requests(), metadata=metadata, timeout=10)]
        finally:
            heard.set()

    async def health(self, metadata: tuple[tuple[str, str], ...] = ()) -> int:
        reply = await health_pb2_grpc.HealthStub(self.channel).Check(
            health_pb2.HealthCheckRequest(service=""), metadata=metadata, timeout=10
        )
        return int(reply.status)

    async def list_services(self, metadata: tuple[tuple[str, str], ...] = ()) -> list[str]:
        stub = reflection_pb2_grpc.ServerReflectionStub(self.channel)
        request = reflection_pb2.ServerReflectionRequest(list_services="")
        replies = [r async for r in stub.ServerReflectionInfo(iter([request]), metadata=metadata, timeout=10)]
        return [s.name for s in replies[0].list_services_response.service]


async def serving(open_probes: bool) -> tuple[grpc.aio.Server, Served]:
    """Echo, health and reflection behind the request-id and API-key interceptors, as `serve` runs them."""
    echo = Echo()
    server = grpc.aio.server(
        interceptors=[RequestIdInterceptor(), *api_key_interceptors(ApiKeys(KEYS), open_probes)]
    )
    server.add_generic_rpc_handlers((echo.handler(),))
    health_servicer = health.aio.HealthServicer()
    health_pb2_grpc.add_HealthServicer_to_server(health_servicer, server)
    reflection.enable_server_reflection([SERVICE, health.SERVICE_NAME, reflection.SERVICE_NAME], server)
    port = server.add_insecure_port("127.0.0.1:0")
    await server.start()
    await health_servicer.set("", health_pb2.HealthCheckResponse.SERVING)
    return server, Served(grpc.aio.insecure_channel(f"127.0.0.1:{port}"), echo)


@pytest.fixture(params=[True, False], ids=["open-probes", "closed-probes"])
async def served(request: pytest.FixtureRequest) -> AsyncIterator[Served]:
    server, client = await serving(open_probes=request.param)
    try:
        yield client
    finally:
        await client.channel.close()
        await server.stop(None)


GOOD = (("authorization", "Bearer k-two-longer"),)
BAD_HEADERS = [(), (("authorization", "Bearer nope"),), (("authorization", "bearer k-two-longer"),)]


async def refused(call: Any) -> grpc.aio.AioRpcError:
    with pytest.raises(grpc.aio.AioRpcError) as info:
        await call
    return info.value


@pytest.mark.parametrize("metadata", BAD_HEADERS, ids=["missing", "wrong-key", "lowercase-scheme"])
@pytest.mark.parametrize("kind", ["unary", "stream", "bidi_silent"])
async def test_calls_without_a_valid_key_are_refused_before_the_handler(
    served: Served, kind: str, metadata: tuple[tuple[str, str], ...]
) -> None:
    error = await refused(getattr(served, kind)(metadata))
    assert error.code() == grpc.StatusCode.UNAUTHENTICATED
    assert error.details() == UNAUTHENTICATED_MESSAGE
    assert served.echo.calls == 0


async def test_calls_with_a_key_reach_the_handler(served: Served) -> None:
    assert await served.unary(GOOD) == b"unary:x"
    assert await served.stream(GOOD) == [b"s1", b"s2"]
    assert await served.bidi(GOOD) == [b"bidi:1", b"bidi:2"]
    assert served.echo.calls == 3


async def test_an_unknown_method_is_refused_without_a_key(served: Served) -> None:
    call = served.channel.unary_unary(f"/{SERVICE}/Nope")
    assert (await refused(call(b"", timeout=10))).code() == grpc.StatusCode.UNAUTHENTICATED
    assert (await refused(call(b"", metadata=GOOD, timeout=10))).code() == grpc.StatusCode.UNIMPLEMENTED


async def test_probes_need_no_key_unless_closed(served: Served, request: pytest.FixtureRequest) -> None:
    open_probes = "open-probes" in request.node.callspec.id
    serving_status = health_pb2.HealthCheckResponse.SERVING
    # With the key, always.
    assert await served.health(GOOD) == serving_status
    assert SERVICE in await served.list_services(GOOD)
    if open_probes:
        assert await served.health() == serving_status
        assert set(await served.list_services()) >= {SERVICE, health.SERVICE_NAME}
    else:
        assert (await refused(served.health())).code() == grpc.StatusCode.UNAUTHENTICATED
        assert (await refused(served.list_services())).code() == grpc.StatusCode.UNAUTHENTICATED


# -- TLS settings ----------------------------------------------------------------------------------

GEN = generator_config.PREFIX


@pytest.fixture(scope="module")
def pki(tmp_path_factory: pytest.TempPathFactory) -> Pki:
    return write_pki(tmp_path_factory.mktemp("pki"), dns_names=("upstream.internal",), ips=())


def test_no_certificate_means_plaintext() -> None:
    assert listen_credentials(generator_config.load()) is None


def test_certificate_and_key_give_tls_and_a_client_ca_mutual_tls(pki: Pki) -> None:
    tls_only = generator_config.load(tls_cert_file=pki.server_cert, tls_key_file=pki.server_key)
    assert isinstance(listen_credentials(tls_only), grpc.ServerCredentials)
    mutual = generator_config.load(
        tls_cert_file=pki.server_cert, tls_key_file=pki.server_key, tls_client_ca_file=pki.ca
    )
    assert isinstance(listen_credentials(mutual), grpc.ServerCredentials)


@pytest.mark.parametrize(
    ("fields", "needle"),
    [
        (
            {"tls_cert_file": "server_cert"},
            f"{GEN}TLS_CERT_FILE is set but {GEN}TLS_KEY_FILE is not: set both",
        ),
        ({"tls_key_file": "server_key"}, f"{GEN}TLS_KEY_FILE is set but {GEN}TLS_CERT_FILE is not"),
        ({"tls_client_ca_file": "ca"}, f"{GEN}TLS_CLIENT_CA_FILE needs {GEN}TLS_CERT_FILE"),
        (
            {"tls_cert_file": "server_cert", "tls_key_file": "client_key"},
            f"{GEN}TLS_CERT_FILE=.* and {GEN}TLS_KEY_FILE=.* are not a PEM certificate and its",
        ),
        ({"tls_cert_file": "server_key", "tls_key_file": "server_key"}, "are not a PEM certificate"),
        (
            {
                "tls_cert_file": "server_cert",
                "tls_key_file": "server_key",
                "tls_client_ca_file": "server_key",
            },
            f"{GEN}TLS_CLIENT_CA_FILE: .* holds no PEM CA certificate",
        ),
    ],
)
def test_bad_tls_settings_stop_the_service_naming_them(pki: Pki, fields: dict[str, str], needle: str) -> None:
    config = generator_config.load(**{name: getattr(pki, attr) for name, attr in fields.items()})
    with pytest.raises(ConfigError, match=needle):
        listen_credentials(config)


def test_unreadable_or_non_pem_files_are_named(pki: Pki, tmp_path: Path) -> None:
    missing = tmp_path / "missing.pem"
    config = generator_config.load(tls_cert_file=missing, tls_key_file=pki.server_key)
    with pytest.raises(ConfigError, match=rf"{GEN}TLS_CERT_FILE: cannot read .*missing\.pem"):
        listen_credentials(config)
    text = tmp_path / "not.pem"
    text.write_text("hello")
    config = generator_config.load(tls_cert_file=pki.server_cert, tls_key_file=text)
    with pytest.raises(ConfigError, match=rf"{GEN}TLS_KEY_FILE: .*not\.pem is not a PEM file"):
        listen_credentials(config)


UP = "VOXSERVE_GATEWAY_UPSTREAM_"


def test_upstream_settings_are_checked(pki: Pki) -> None:
    with pytest.raises(ConfigError, match=f"{UP}TLS_CERT_FILE needs {UP}TLS_CA_FILE"):
        upstream_channels(
            gateway_config.load(upstream_tls_cert_file=pki.client_cert, upstream_tls_key_file=pki.client_key)
        )
    with pytest.raises(ConfigError, match=f"{UP}TLS_KEY_FILE is set but {UP}TLS_CERT_FILE is not"):
        upstream_channels(
            gateway_config.load(upstream_tls_ca_file=pki.ca, upstream_tls_key_file=pki.client_key)
        )
    with pytest.raises(ConfigError, match=f"{UP}TLS_SERVER_NAME needs {UP}TLS_CA_FILE"):
        upstream_channels(gateway_config.load(upstream_tls_server_name="upstream.internal"))


async def ping(channel: grpc.aio.Channel) -> int:
    reply = await health_pb2_grpc.HealthStub(channel).Check(
        health_pb2.HealthCheckRequest(service=""), timeout=5
    )
    return int(reply.status)


async def test_gateway_upstream_channel_speaks_mutual_tls_with_the_server_name(pki: Pki) -> None:
    """A mutual-TLS server whose certificate names only upstream.internal: the gateway's
    upstream channel reaches it at 127.0.0.1 with its client certificate and the name override;
    without the override the name check fails."""
    server = grpc.aio.server()
    health_servicer = health.aio.HealthServicer()
    health_pb2_grpc.add_HealthServicer_to_server(health_servicer, server)
    mutual = generator_config.load(
        tls_cert_file=pki.server_cert, tls_key_file=pki.server_key, tls_client_ca_file=pki.ca
    )
    credentials = listen_credentials(mutual)
    assert credentials is not None
    port = server.add_secure_port("127.0.0.1:0", credentials)
    await server.start()
    await health_servicer.set("", health_pb2.HealthCheckResponse.SERVING)
    upstream = {
        "upstream_tls_ca_file": pki.ca,
        "upstream_tls_cert_file": pki.client_cert,
        "upstream_tls_key_file": pki.client_key,
    }
    address = f"127.0.0.1:{port}"
    try:
        named = upstream_channels(
            gateway_config.load(**upstream, upstream_tls_server_name="upstream.internal")
        )
        async with named(address) as channel:
            assert await ping(channel) == health_pb2.HealthCheckResponse.SERVING
        unnamed = upstream_channels(gateway_config.load(**upstream))
        async with unnamed(address) as channel:
            assert (await refused(ping(channel))).code() == grpc.StatusCode.UNAVAILABLE
        no_client_cert = tls.channel_credentials(pki.ca, None, None)
        assert no_client_cert is not None
        options = [*CHANNEL_OPTIONS, *tls.channel_options("upstream.internal")]
        async with grpc.aio.secure_channel(address, no_client_cert, options=options) as channel:
            assert (await refused(ping(channel))).code() == grpc.StatusCode.UNAVAILABLE
    finally:
        await server.stop(None)
