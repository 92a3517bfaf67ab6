"""Gateway settings that would break every request are refused at start-up, naming the variable."""

from __future__ import annotations

import pytest

from voxserve.common.config import ConfigError
from voxserve.gateway.config import load


@pytest.mark.parametrize(
    ("overrides", "needle"),
    [
        ({"segment_max_chars": 33}, "SEGMENT_MAX_CHARS must be >= 34"),
        ({"segments_in_flight": 0}, "SEGMENTS_IN_FLIGHT must be >= 1"),
        ({"crossfade_ms": -1.0}, "CROSSFADE_MS must be >= 0"),
        ({"max_streams": 0}, "MAX_STREAMS must be >= 1"),
    ],
)
def test_bad_settings_are_refused(overrides: dict, needle: str) -> None:
    with pytest.raises(ValueError, match=needle):
        load(**overrides)


def test_settings_come_from_the_environment(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("VOXSERVE_GATEWAY_SEGMENTS_IN_FLIGHT", "3")
    monkeypatch.setenv("VOXSERVE_GATEWAY_CROSSFADE_MS", "20")
    config = load()
    assert (config.segments_in_flight, config.crossfade_ms, config.segment_max_chars) == (3, 20.0, 250)


def test_a_server_name_without_a_ca_is_refused_when_the_settings_are_read() -> None:
    with pytest.raises(
        ValueError, match="UPSTREAM_TLS_SERVER_NAME needs VOXSERVE_GATEWAY_UPSTREAM_TLS_CA_FILE"
    ):
        load(upstream_tls_server_name="upstream.internal")


@pytest.mark.parametrize(
    ("overrides", "needle"),
    [
        ({"http_port": -1}, "must be 0 .off. or a port number"),
        ({"http_port": 65536}, "must be 0 .off. or a port number"),
        ({"http_port": 7000, "port": 7000}, "7000 is taken by another listener"),
        ({"http_port": 7001, "metrics_port": 7001}, "7001 is taken by another listener"),
    ],
)
def test_an_unusable_http_port_is_refused_naming_it(overrides: dict, needle: str) -> None:
    with pytest.raises(ConfigError, match=f"^VOXSERVE_GATEWAY_HTTP_PORT.* {needle}"):
        load(**overrides)


def test_http_port_0_turns_http_off_even_beside_a_disabled_metrics_port() -> None:
    assert load(http_port=0, metrics_port=0).http_port == 0
    assert load(http_port=65535).http_port == 65535


@pytest.mark.parametrize("model", ["", "   "])
def test_an_empty_http_model_is_refused(model: str) -> None:
    with pytest.raises(ConfigError, match="VOXSERVE_GATEWAY_HTTP_MODEL is empty"):
        load(http_model=model)


def test_http_settings_come_from_the_environment(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("VOXSERVE_GATEWAY_HTTP_PORT", "8181")
    monkeypatch.setenv("VOXSERVE_GATEWAY_HTTP_CORS_ORIGINS", "https://a.example,https://b.example")
    monkeypatch.setenv("VOXSERVE_GATEWAY_HTTP_MODEL", "house")
    config = load()
    assert (config.http_port, config.http_cors_origins, config.http_model) == (
        8181,
        "https://a.example,https://b.example",
        "house",
    )
