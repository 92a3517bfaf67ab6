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
_AT_LEAST_ONE = (
    "max_streams",
    "max_voices_per_key",
    "max_voice_upload_bytes",
    "max_transcript_chars",
    "max_enrolments",
)
DEFAULT_VOICE_STORE = str(Path.home() / ".local" / "share" / "voxserve" / "voices.sqlite3")


@dataclass(frozen=True)
class GatewayConfig(ServiceConfig):
    PREFIX: ClassVar[str] = PREFIX

    port: int = setting(50051, "gRPC port of the public Speech API")
    metrics_port: int = setting(9101, "Prometheus metrics port; 0 disables")
    http_port: int = setting(
        8080,
        "Port of the OpenAI-style HTTP API, its WebSocket and the playground page (same host); 0 disables",
    )
    http_cors_origins: str = setting(
        "", "Origins allowed to call the HTTP API from a browser, comma-separated ('*': any); empty: none"
    )
    http_model: str = setting(
        "voxserve",
        "The model id GET /v1/models lists; POST /v1/audio/speech also accepts the served families' "
        "names and OpenAI's TTS model names (tts-1, tts-1-hd, gpt-4o-mini-tts) for it",
    )
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
    voice_store: str = setting(
        DEFAULT_VOICE_STORE,
        "Where enrolled voices are kept: an SQLite file path (one gateway replica), or a "
        "postgresql://user:password@host/db URL shared by several replicas",
        secret=True,
    )
    voice_cache_seconds: float = setting(
        1.0,
        "A stored voice deleted through another replica is unusable here within this many seconds "
        "(PostgreSQL also notifies at once); new voices are seen at once",
    )
    max_voice_upload_bytes: int = setting(
        16 * 1024 * 1024, "Largest reference audio upload (CreateVoice), in bytes"
    )
    min_reference_seconds: float = setting(2.0, "Shortest reference audio CreateVoice accepts, in seconds")
    max_reference_seconds: float = setting(60.0, "Longest reference audio CreateVoice accepts, in seconds")
    max_transcript_chars: int = setting(
        500, "Longest reference transcript CreateVoice accepts, in characters"
    )
    max_voices_per_key: int = setting(
        100, "Most stored voices per API key (per gateway without keys); beyond it RESOURCE_EXHAUSTED"
    )
    max_enrolments: int = setting(
        4, "Most CreateVoice calls at once; beyond it RESOURCE_EXHAUSTED (retry later)"
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
        for name in _AT_LEAST_ONE:
            if getattr(self, name) < 1:
                raise ConfigError(f"{self.name(name)} must be >= 1")
        if not 0 < self.min_reference_seconds <= self.max_reference_seconds:
            raise ConfigError(
                f"{self.name('min_reference_seconds')} must be > 0 and <= "
                f"{self.name('max_reference_seconds')}"
            )
        if not self.voice_cache_seconds > 0:
            raise ConfigError(f"{self.name('voice_cache_seconds')} must be > 0")
        if not self.voice_store.strip():
            raise ConfigError(
                f"{self.name('voice_store')} is empty: give an SQLite file path or a PostgreSQL URL"
            )
        if not 0 <= self.http_port <= 65535:
            raise ConfigError(f"{self.name('http_port')} must be 0 (off) or a port number")
        if self.http_port and self.http_port in (self.port, self.metrics_port):
            raise ConfigError(f"{self.name('http_port')} {self.http_port} is taken by another listener")
        if not self.http_model.strip():
            raise ConfigError(f"{self.name('http_model')} is empty")
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
