"""Gateway settings that would break every request are refused at start-up, naming the variable."""

from __future__ import annotations

import pytest

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
