"""TLS credentials from PEM files: the services' listeners and the gateway's upstream channels.

Everything is read and checked once at start-up, so a missing half of a pair, an unreadable
file, a file that is not PEM or a key that does not belong to its certificate stops the service
with a message naming the setting, instead of failing every handshake later.
"""

from __future__ import annotations

import ssl
from pathlib import Path

import grpc

from voxserve.common.config import ConfigError

# grpc's channel option that replaces the host name checked against the server's certificate.
TARGET_NAME_OVERRIDE = "grpc.ssl_target_name_override"


def read_pem(path: Path, setting: str) -> bytes:
    """The bytes of a PEM file, or a ConfigError naming the setting and the path."""
    try:
        data = Path(path).read_bytes()
    except OSError as exc:
        raise ConfigError(f"{setting}: cannot read {path}: {exc.strerror or exc}") from exc
    if b"-----BEGIN " not in data:
        raise ConfigError(f"{setting}: {path} is not a PEM file")
    return data


def _no_password() -> bytes:
    return b""  # an encrypted key fails the check instead of prompting on a terminal


def _check_pair(cert_file: Path, key_file: Path, cert_setting: str, key_setting: str) -> None:
    context = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    context.set_ciphers("DEFAULT:@SECLEVEL=0")  # check parsing and pairing only, not key strength
    try:
        context.load_cert_chain(cert_file, key_file, password=_no_password)
    except ssl.SSLError as exc:
        raise ConfigError(
            f"{cert_setting}={cert_file} and {key_setting}={key_file} are not a PEM certificate and its "
            f"unencrypted private key ({exc.reason or exc})"
        ) from exc


def _check_ca(ca_file: Path, setting: str) -> None:
    context = ssl.SSLContext(ssl.PROTOCOL_TLS_CLIENT)
    try:
        context.load_verify_locations(cafile=str(ca_file))
    except ssl.SSLError as exc:
        raise ConfigError(f"{setting}: {ca_file} holds no PEM CA certificate ({exc.reason or exc})") from exc


def _key_pair(
    cert_file: Path | None, key_file: Path | None, cert_setting: str, key_setting: str
) -> tuple[bytes, bytes] | None:
    """(private key, certificate chain) PEM bytes, None when neither is set."""
    if cert_file is None and key_file is None:
        return None
    if cert_file is None or key_file is None:
        given, missing = (cert_setting, key_setting) if key_file is None else (key_setting, cert_setting)
        raise ConfigError(f"{given} is set but {missing} is not: set both (PEM files) or neither")
    cert = read_pem(cert_file, cert_setting)
    key = read_pem(key_file, key_setting)
    _check_pair(cert_file, key_file, cert_setting, key_setting)
    return key, cert


def _ca(ca_file: Path, setting: str) -> bytes:
    data = read_pem(ca_file, setting)
    _check_ca(ca_file, setting)
    return data


def server_credentials(
    cert_file: Path | None, key_file: Path | None, client_ca_file: Path | None, *, prefix: str = ""
) -> grpc.ServerCredentials | None:
    """Credentials for a listener: None (plaintext) when no certificate is configured; TLS with
    the certificate and key; mutual TLS when a client CA is set too (clients must present a
    certificate it signed). `prefix` turns field names into the settings' names in errors."""
    cert_setting, key_setting = f"{prefix}TLS_CERT_FILE", f"{prefix}TLS_KEY_FILE"
    ca_setting = f"{prefix}TLS_CLIENT_CA_FILE"
    pair = _key_pair(cert_file, key_file, cert_setting, key_setting)
    if pair is None:
        if client_ca_file is not None:
            raise ConfigError(f"{ca_setting} needs {cert_setting} and {key_setting}: mutual TLS is TLS first")
        return None
    ca = _ca(client_ca_file, ca_setting) if client_ca_file is not None else None
    return grpc.ssl_server_credentials([pair], root_certificates=ca, require_client_auth=ca is not None)


def channel_credentials(
    ca_file: Path | None, cert_file: Path | None, key_file: Path | None, *, prefix: str = ""
) -> grpc.ChannelCredentials | None:
    """Credentials for a client channel: None (plaintext) when no CA is configured; TLS verifying
    the server with the CA; with a client certificate and key too, for servers that want mutual
    TLS. `prefix` names the settings (e.g. `VOXSERVE_GATEWAY_UPSTREAM_`) in errors."""
    ca_setting = f"{prefix}TLS_CA_FILE"
    cert_setting, key_setting = f"{prefix}TLS_CERT_FILE", f"{prefix}TLS_KEY_FILE"
    pair = _key_pair(cert_file, key_file, cert_setting, key_setting)
    if ca_file is None:
        if pair is not None:
            raise ConfigError(
                f"{cert_setting} needs {ca_setting}: a client certificate is sent only over TLS"
            )
        return None
    key, cert = pair if pair is not None else (None, None)
    return grpc.ssl_channel_credentials(
        root_certificates=_ca(ca_file, ca_setting), private_key=key, certificate_chain=cert
    )


def channel_options(server_name: str | None) -> list[tuple[str, str]]:
    """The option that checks the server's certificate for `server_name` instead of the target's host."""
    return [(TARGET_NAME_OVERRIDE, server_name)] if server_name else []
