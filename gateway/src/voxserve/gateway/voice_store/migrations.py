"""The voice store's schema, one ordered list of migrations per SQL dialect.

A store records each applied migration in `schema_migrations`; opening it applies the missing
ones in order, in one transaction. Never edit a released migration: append a new one.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

from voxserve.gateway.voice_store.errors import SchemaTooNew


@dataclass(frozen=True)
class Migration:
    version: int
    statements: tuple[str, ...]


def _voices_table(blob: str, real: str) -> str:
    return f"""
        CREATE TABLE voices (
            owner TEXT NOT NULL,
            id TEXT NOT NULL,
            family TEXT NOT NULL,
            display_name TEXT NOT NULL,
            description TEXT NOT NULL,
            pack TEXT NOT NULL,
            transcript TEXT,
            consent TEXT NOT NULL,
            encoding {blob} NOT NULL,
            reference_seconds {real} NOT NULL,
            created_at {real} NOT NULL,
            PRIMARY KEY (owner, id)
        )"""


# One row: the counter every add and remove bumps, which replicas poll to drop stale cache entries.
_VERSION_TABLE = """
    CREATE TABLE voice_store_version (
        singleton INTEGER PRIMARY KEY CHECK (singleton = 1),
        version BIGINT NOT NULL
    )"""
_VERSION_ROW = "INSERT INTO voice_store_version (singleton, version) VALUES (1, 0)"

SQLITE: tuple[Migration, ...] = (Migration(1, (_voices_table("BLOB", "REAL"), _VERSION_TABLE, _VERSION_ROW)),)
POSTGRES: tuple[Migration, ...] = (
    Migration(1, (_voices_table("BYTEA", "DOUBLE PRECISION"), _VERSION_TABLE, _VERSION_ROW)),
)

MIGRATIONS_TABLE = """
    CREATE TABLE IF NOT EXISTS schema_migrations (
        version INTEGER PRIMARY KEY,
        applied_at TIMESTAMP NOT NULL DEFAULT CURRENT_TIMESTAMP
    )"""
RECORD_MIGRATION = "INSERT INTO schema_migrations (version) VALUES ({placeholder})"


def pending(applied: Sequence[int], migrations: Sequence[Migration], description: str) -> list[Migration]:
    """The migrations still to apply, given the versions a store has applied.

    Raises SchemaTooNew when the store holds a version this code does not know.
    """
    known = migrations[-1].version if migrations else 0
    newest = max(applied, default=0)
    if newest > known:
        raise SchemaTooNew(description, newest, known)
    done = set(applied)
    return [m for m in migrations if m.version not in done]
