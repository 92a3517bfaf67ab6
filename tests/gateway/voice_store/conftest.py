"""Every common test runs on both stores: an SQLite file and a fresh PostgreSQL database."""

from __future__ import annotations

from collections.abc import AsyncIterator
from pathlib import Path

import pytest

from voxserve.gateway.voice_store import VoiceStore, open_voice_store


@pytest.fixture(params=["sqlite", "postgres"])
def location(request: pytest.FixtureRequest, tmp_path: Path) -> str:
    if request.param == "postgres":
        return str(request.getfixturevalue("postgres_url"))
    return str(tmp_path / "not-yet" / "voices.sqlite3")


@pytest.fixture
async def store(location: str) -> AsyncIterator[VoiceStore]:
    opened = open_voice_store(location)
    await opened.open()
    yield opened
    await opened.close()
