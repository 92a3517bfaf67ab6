"""The cap on concurrent calls: places are held for a call's duration and refused past the limit."""

from __future__ import annotations

import pytest

from voxserve.common.admission import RETRY_PUSHBACK, Admission, Overloaded


def test_places_are_held_and_given_back() -> None:
    admission = Admission(2, "calls")
    with admission.enter(), admission.enter():
        assert admission.active == 2
        with pytest.raises(Overloaded, match="maximum of 2 calls; retry after 500 ms"):
            with admission.enter():
                pass
        assert admission.active == 2
    assert admission.active == 0
    with admission.enter():
        assert admission.active == 1


def test_a_failing_call_gives_its_place_back() -> None:
    admission = Admission(1, "calls")
    with pytest.raises(RuntimeError), admission.enter():
        raise RuntimeError("boom")
    assert admission.active == 0


def test_the_retry_hint_is_grpc_pushback() -> None:
    assert dict(RETRY_PUSHBACK) == {"grpc-retry-pushback-ms": "500"}
    with pytest.raises(ValueError):
        Admission(0, "calls")
