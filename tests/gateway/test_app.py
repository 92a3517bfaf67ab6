"""The gateway's start-up: a voice store that cannot be opened stops it with a message naming
the setting, never the URL's password."""

from __future__ import annotations

from pathlib import Path

import pytest

from voxserve.common.config import ConfigError
from voxserve.gateway.app import open_store
from voxserve.gateway.config import load


async def test_an_unwritable_sqlite_path_names_the_setting(tmp_path: Path) -> None:
    blocker = tmp_path / "a-file"
    blocker.write_text("not a directory")
    with pytest.raises(ConfigError, match="VOXSERVE_GATEWAY_VOICE_STORE"):
        await open_store(load(voice_store=str(blocker / "voices.sqlite3")))


async def test_an_unreachable_postgresql_names_the_setting_but_not_the_password() -> None:
    with pytest.raises(ConfigError) as caught:
        await open_store(load(voice_store="postgresql://voxserve:hunter2secret@127.0.0.1:9/voices"))
    assert "VOXSERVE_GATEWAY_VOICE_STORE" in str(caught.value)
    assert "hunter2secret" not in str(caught.value)
