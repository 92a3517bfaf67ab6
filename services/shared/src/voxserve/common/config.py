"""Typed service configuration read from environment variables.

Each service declares one frozen dataclass whose fields carry a default and a one-line doc in
their metadata; `load_config` fills it from `PREFIX_FIELD_NAME` variables. This is the only place
that reads the environment, so every setting is discoverable (`voxserve config`).
"""

from __future__ import annotations

import dataclasses
import os
import types
import typing
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any, ClassVar, TypeVar

T = TypeVar("T")


class ConfigError(ValueError):
    """A variable holds a value its field cannot take."""


def setting(default: Any, doc: str, *, secret: bool = False) -> Any:
    """A config field with its default and documentation; a secret one is left out of the repr."""
    return dataclasses.field(default=default, repr=not secret, metadata={"doc": doc, "secret": secret})


def env_name(prefix: str, field_name: str) -> str:
    return f"{prefix}{field_name.upper()}"


def _parse(kind: Any, raw: str, name: str) -> Any:
    origin = typing.get_origin(kind)
    if origin in (typing.Union, types.UnionType):
        args = [a for a in typing.get_args(kind) if a is not type(None)]
        if raw == "":
            return None
        return _parse(args[0], raw, name)
    if origin is tuple:
        (item,) = {a for a in typing.get_args(kind) if a is not Ellipsis}
        return tuple(_parse(item, part.strip(), name) for part in raw.split(",") if part.strip())
    try:
        if kind is bool:
            lowered = raw.strip().lower()
            if lowered in ("1", "true", "yes", "on"):
                return True
            if lowered in ("0", "false", "no", "off"):
                return False
            raise ValueError(raw)
        if kind in (int, float, str):
            return kind(raw)
        if kind is Path:
            return Path(raw).expanduser()
    except ValueError as exc:
        raise ConfigError(f"{name}={raw!r} is not a valid {getattr(kind, '__name__', kind)}") from exc
    raise ConfigError(f"{name}: unsupported setting type {kind}")


def load_config(cls: type[T], prefix: str, environ: Mapping[str, str] | None = None, **overrides: Any) -> T:
    """Build `cls` from defaults, then environment variables, then explicit overrides."""
    env = os.environ if environ is None else environ
    hints = typing.get_type_hints(cls)
    values: dict[str, Any] = {}
    for field in dataclasses.fields(cls):  # type: ignore[arg-type]
        name = env_name(prefix, field.name)
        if name in env:
            values[field.name] = _parse(hints[field.name], env[name], name)
    values.update({k: v for k, v in overrides.items() if v is not None})
    return cls(**values)


def describe(cls: type, prefix: str) -> list[tuple[str, str, str]]:
    """(variable, default, doc) rows for documentation and `voxserve config`."""
    rows = []
    for field in dataclasses.fields(cls):
        default = field.default if field.default not in (dataclasses.MISSING, None) else ""
        if isinstance(default, tuple):
            default = ",".join(str(d) for d in default)
        rows.append((env_name(prefix, field.name), str(default), field.metadata.get("doc", "")))
    return rows


LOG_LEVELS = ("DEBUG", "INFO", "WARNING", "ERROR", "CRITICAL")


@dataclass(frozen=True)
class ServiceConfig:
    """The settings every service has: its listener, TLS, metrics port, drain and log level.

    A service's config subclasses it, names its `PREFIX` and redeclares the port defaults; each
    config checks its own values when it is built (`check`), so a bad setting stops a service
    before anything starts, with the variable's name."""

    PREFIX: ClassVar[str] = "VOXSERVE_"

    host: str = setting("127.0.0.1", "Address to listen on")
    port: int = setting(0, "gRPC port")
    metrics_port: int = setting(0, "Prometheus metrics port; 0 disables")
    grace_seconds: float = setting(10.0, "Seconds in-flight calls get to finish on SIGTERM")
    log_level: str = setting("INFO", "Log level: DEBUG, INFO, WARNING, ERROR or CRITICAL")
    tls_cert_file: Path | None = setting(
        None, "PEM certificate (chain) of this service's gRPC port; with TLS_KEY_FILE it serves TLS"
    )
    tls_key_file: Path | None = setting(None, "PEM private key of TLS_CERT_FILE (unencrypted)")
    tls_client_ca_file: Path | None = setting(
        None, "PEM CA bundle: set, clients must present a certificate it signed (mutual TLS)"
    )

    def __post_init__(self) -> None:
        self.check()

    def name(self, field_name: str) -> str:
        """The environment variable of a field."""
        return env_name(self.PREFIX, field_name)

    def check(self) -> None:
        """Raise ConfigError naming the first setting out of its range. Subclasses extend it."""
        for field_name in ("port", "metrics_port"):
            value = getattr(self, field_name)
            if not 0 <= value <= 65535:
                raise ConfigError(f"{self.name(field_name)}={value}: a port is 0..65535")
        if self.grace_seconds < 0:
            raise ConfigError(f"{self.name('grace_seconds')}={self.grace_seconds}: must be >= 0")
        if self.log_level.upper() not in LOG_LEVELS:
            raise ConfigError(f"{self.name('log_level')}={self.log_level!r}: one of {', '.join(LOG_LEVELS)}")
