"""Argument types the bench commands share: comma-separated lists."""

from __future__ import annotations


def comma_names(text: str) -> tuple[str, ...]:
    """`"a, b,,c"` -> `("a", "b", "c")`."""
    return tuple(part.strip() for part in text.split(",") if part.strip())


def comma_ints(text: str) -> tuple[int, ...]:
    """`"1,2, 4"` -> `(1, 2, 4)`; a part that is not an integer raises ValueError (argparse's
    "invalid value" for a `type=`)."""
    return tuple(int(part) for part in comma_names(text))
