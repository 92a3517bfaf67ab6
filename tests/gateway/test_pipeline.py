"""Replica lists: parsed from settings, taken in turn, and another one picked after a failure."""

from __future__ import annotations

import pytest

from voxserve.gateway.app import addresses
from voxserve.gateway.pipeline import Replicas


def test_addresses_split_on_commas_and_drop_blanks() -> None:
    assert addresses(" a:1, b:2 ,,c:3") == ["a:1", "b:2", "c:3"]
    assert addresses("dns:///vocoder:50053") == ["dns:///vocoder:50053"]


def test_replicas_are_taken_in_turn() -> None:
    replicas = Replicas(["a", "b", "c"])
    assert [replicas.pick() for _ in range(5)] == ["a", "b", "c", "a", "b"]


def test_pick_avoids_the_failed_replica_when_there_is_another() -> None:
    replicas = Replicas(["a", "b"])
    assert replicas.pick(avoid="a") == "b"
    assert replicas.pick(avoid="a") == "b"
    assert Replicas(["only"]).pick(avoid="only") == "only"


def test_no_replicas_is_refused() -> None:
    with pytest.raises(ValueError, match="at least one replica"):
        Replicas([])
