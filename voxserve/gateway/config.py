"""Gateway settings: environment variables `VOXSERVE_GATEWAY_*`."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any

from voxserve.common.config import load_config, setting

PREFIX = "VOXSERVE_GATEWAY_"


@dataclass(frozen=True)
class GatewayConfig:
    host: str = setting("127.0.0.1", "Address to listen on")
    port: int = setting(50051, "gRPC port of the public Speech API")
    metrics_port: int = setting(9101, "Prometheus metrics port; 0 disables")
    generator_address: str = setting("127.0.0.1:50052", "Generator service address (gRPC target)")
    vocoder_address: str = setting("127.0.0.1:50053", "Vocoder service address (gRPC target)")
    voices_file: Path | None = setting(None, "JSON voice registry; empty means the built-in voices")
    max_text_chars: int = setting(2000, "Longest text accepted per request, in characters")
    max_seconds_per_char: float = setting(
        0.12, "Default cap on generated audio per text character when a request sets no max_tokens"
    )
    min_max_seconds: float = setting(2.0, "The default cap is never below this many seconds")
    max_tokens: int = setting(
        3000, "The default cap is never above this (keep <= the generator's max_tokens)"
    )
    grace_seconds: float = setting(10.0, "Seconds in-flight requests get to finish on SIGTERM")
    log_level: str = setting("INFO", "Log level")


def load(**overrides: Any) -> GatewayConfig:
    return load_config(GatewayConfig, PREFIX, **overrides)
