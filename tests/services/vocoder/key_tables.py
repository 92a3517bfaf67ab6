"""Checks against the published key tables (`specs/*-keys.tsv`: name, shape, dtype columns)."""

from __future__ import annotations

import ast
import hashlib
from collections.abc import Callable
from pathlib import Path


def _table_path(table: str) -> Path | None:
    candidates = [
        Path(__file__).resolve().parents[4] / "shared" / "specs" / table,
        Path("/work/shared/specs") / table,
    ]
    return next((p for p in candidates if p.is_file()), None)


def shapes_sha256(shapes: dict[str, tuple[int, ...]]) -> str:
    """The sha256 of sorted "name<TAB>shape" rows, shapes as Python tuples."""
    rows = "\n".join(f"{name}\t{shape}" for name, shape in sorted(shapes.items()))
    return hashlib.sha256(rows.encode()).hexdigest()


def file_key_rows(table: str, file: str, prefix: str = "") -> dict[str, tuple[tuple[int, ...], str]] | None:
    """name -> (shape, dtype) of the rows of a table with a leading `file` column (file, name,
    shape, dtype) that belong to `file` and start with `prefix`; None without the specs."""
    path = _table_path(table)
    if path is None:
        return None
    rows: dict[str, tuple[tuple[int, ...], str]] = {}
    for line in path.read_text(encoding="utf-8").splitlines()[1:]:
        if line.strip():
            owner, name, shape, dtype = line.split("\t")
            if owner == file and name.startswith(prefix):
                rows[name] = (tuple(ast.literal_eval(shape)), dtype)
    return rows


def assert_matches_key_table(
    shapes: dict[str, tuple[int, ...]], sha256: str, table: str, keep: Callable[[str], bool] = lambda _: True
) -> None:
    """`shapes` equal the rows of `table` whose name passes `keep`: always by the sha256 of the sorted
    "name<TAB>shape" rows, and row by row where the specs are beside the checkout."""
    assert shapes_sha256(shapes) == sha256
    path = _table_path(table)
    if path is None:
        return
    published: dict[str, tuple[int, ...]] = {}
    for line in path.read_text(encoding="utf-8").splitlines()[1:]:
        if line.strip():
            name, shape = line.split("\t")[:2]
            if keep(name):
                published[name] = tuple(ast.literal_eval(shape))
    assert shapes == published
