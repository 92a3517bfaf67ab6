"""Gateway settings: environment variables `VOXSERVE_GATEWAY_*`."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any, ClassVar

import grpc

from voxserve.common import tls
from voxserve.common.config import ConfigError, ServiceConfig, load_config, setting
from voxserve.gateway.segmenter import MIN_MAX_CHARS

PREFIX = "VOXSERVE_GATEWAY_"
UPSTREAM_PREFIX = f"{PREFIX}UPSTREAM_"


@dataclass(frozen=True)
class GatewayConfig(ServiceConfig):
    PREFIX: ClassVar[str] = PREFIX

    port: int = setting(50051, "gRPC port of the public Speech API")
    metrics_port: int = setting(9101, "Prometheus metrics port; 0 disables")
    generator_address: str = setting(
        "127.0.0.1:50052",
        "Generator replicas: gRPC targets, comma-separated; segments take them in turn, and one "
        "that fails before any audio of a segment went out is replaced by the next",
    )
    vocoder_address: str = setting(
        "127.0.0.1:50053",
        "Vocoder replicas: gRPC targets, comma-separated; streams take them in turn, and a stream "
        "whose replica fails is replayed on the next",
    )
    voices_file: Path | None = setting(
        None, "Voice registry file (YAML, or JSON by its .json suffix); empty means the built-in voices"
    )
    max_streams: int = setting(
        128, "Most Synthesize and SynthesizeStream calls at once; beyond it RESOURCE_EXHAUSTED"
    )
    max_text_chars: int = setting(2000, "Longest text accepted by Synthesize, in characters")
    max_stream_text_chars: int = setting(
        20000, "Most characters all text deltas of one SynthesizeStream call may add up to"
    )
    segment_max_chars: int = setting(
        250, "Longest text segment spoken in one generator call; longer text is split at sentence ends"
    )
    segments_in_flight: int = setting(
        2, "Segments of one request generated and decoded at once (1: one after another)"
    )
    crossfade_ms: float = setting(50.0, "Equal-gain crossfade where two segments' audio meet, in ms")
    opus_bitrate: int = setting(32000, "Bits per second of OGG_OPUS output")
    max_seconds_per_char: float = setting(
        0.12, "Default cap on a segment's audio per text character when a request sets no max_tokens"
    )
    min_max_seconds: float = setting(2.0, "The default cap is never below this many seconds")
    max_tokens: int = setting(
        3000, "The default cap is never above this (keep <= the generator's max_tokens)"
    )
    api_keys: str = setting(
        "",
        "Comma-separated API keys; with any key (here or in API_KEYS_FILE) every Speech call needs "
        "metadata 'authorization: Bearer <key>'. No key: the API is open",
        secret=True,
    )
    api_keys_file: Path | None = setting(
        None, "File of API keys, one a line (blank lines and lines starting with # skipped); adds to API_KEYS"
    )
    auth_open_probes: bool = setting(
        True, "With API keys, health checks and reflection (grpcurl list) still need no key; false: they do"
    )
    upstream_tls_ca_file: Path | None = setting(
        None, "PEM CA bundle: set, the generator and vocoder are reached over TLS and verified with it"
    )
    upstream_tls_cert_file: Path | None = setting(
        None, "PEM client certificate for the generator and vocoder (mutual TLS); needs UPSTREAM_TLS_CA_FILE"
    )
    upstream_tls_key_file: Path | None = setting(None, "PEM private key of UPSTREAM_TLS_CERT_FILE")
    upstream_tls_server_name: str = setting(
        "", "Name checked in the upstreams' certificates instead of the address's host (empty: the host)"
    )

    def check(self) -> None:
        super().check()
        # Refuse at start-up what would otherwise fail on the first request.
        if self.segment_max_chars < MIN_MAX_CHARS:
            raise ConfigError(
                f"{PREFIX}SEGMENT_MAX_CHARS must be >= {MIN_MAX_CHARS} (the longest inline tag)"
            )
        if self.segments_in_flight < 1:
            raise ConfigError(f"{PREFIX}SEGMENTS_IN_FLIGHT must be >= 1")
        if self.crossfade_ms < 0:
            raise ConfigError(f"{PREFIX}CROSSFADE_MS must be >= 0")
        if self.max_streams < 1:
            raise ConfigError(f"{PREFIX}MAX_STREAMS must be >= 1")
        if self.upstream_tls_server_name and self.upstream_tls_ca_file is None:
            up = UPSTREAM_PREFIX
            raise ConfigError(f"{up}TLS_SERVER_NAME needs {up}TLS_CA_FILE: names are checked over TLS")

    def upstream_credentials(self) -> grpc.ChannelCredentials | None:
        """Credentials of the channels to generator and vocoder: None for plaintext, TLS when
        `upstream_tls_ca_file` is set (with a client certificate for mutual TLS when configured)."""
        return tls.channel_credentials(
            self.upstream_tls_ca_file,
            self.upstream_tls_cert_file,
            self.upstream_tls_key_file,
            prefix=UPSTREAM_PREFIX,
        )


def load(**overrides: Any) -> GatewayConfig:
    return load_config(GatewayConfig, PREFIX, **overrides)
