"""Status details that quote the caller's input stay short enough for any client to receive."""

from __future__ import annotations

from voxserve.common.status import MAX_DETAILS_CHARS, bounded_details


def test_short_details_pass_unchanged() -> None:
    assert bounded_details("voice 'x' is unknown") == "voice 'x' is unknown"


def test_long_details_are_cut_and_say_how_long_they_were() -> None:
    message = "voice '" + "ह" * 5000 + "' is unknown"
    cut = bounded_details(message)
    assert len(cut) <= MAX_DETAILS_CHARS
    assert cut.startswith("voice 'ह")
    assert cut.endswith(f"... ({len(message)} characters)")
