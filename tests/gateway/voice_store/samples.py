"""Voices to store, and direct access to a store's database (what another writer would do)."""

from __future__ import annotations

import sqlite3
from typing import Any

import psycopg

from voxserve.gateway.voice_store import StoredVoice


def voice(
    owner: str = "key-a", voice_id: str = "narrator", *, created_at: float = 1_700_000_000.0, **fields: Any
) -> StoredVoice:
    values: dict[str, Any] = {
        "owner": owner,
        "id": voice_id,
        "family": "spark",
        "display_name": f"{voice_id} ({owner})",
        "description": "a calm voice",
        "pack": "spark-tts-0.5b",
        "transcript": "The quick brown fox.",
        "consent": "I own this voice and agree to its use.",
        "encoding": f"{owner}/{voice_id}".encode() + bytes(range(256)),
        "reference_seconds": 6.25,
        "created_at": created_at,
    }
    return StoredVoice(**{**values, **fields})


def is_postgres(location: str) -> bool:
    return location.startswith(("postgresql://", "postgres://"))


def query(location: str, sql: str, params: tuple[Any, ...] = ()) -> list[tuple[Any, ...]]:
    """Run one statement on the store's database, outside any store; its rows, if any.

    SQL uses `?` placeholders; they become `%s` for PostgreSQL.
    """
    if is_postgres(location):
        with psycopg.connect(location, autocommit=True) as postgres:
            cursor = postgres.execute(sql.replace("?", "%s"), params)
            return list(cursor.fetchall()) if cursor.description else []
    sqlite = sqlite3.connect(location, isolation_level=None)
    try:
        return list(sqlite.execute(sql, params))
    finally:
        sqlite.close()
