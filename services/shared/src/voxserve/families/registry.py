"""Every model family, looked up by name or found from a pack's files. A new family is one module
beside these and one line here."""

from __future__ import annotations

from collections.abc import Mapping
from pathlib import Path
from types import MappingProxyType

from voxserve.families import chatterbox, orpheus, s3, spark
from voxserve.families.family import Family

# Detection order: a chatterbox pack also has s3gen.safetensors, so chatterbox comes before s3.
FAMILIES: Mapping[str, Family] = MappingProxyType(
    {f.name: f for f in (spark.FAMILY, chatterbox.FAMILY, s3.FAMILY, orpheus.FAMILY)}
)
DEFAULT_FAMILY = spark.FAMILY


def family_named(name: str) -> Family:
    """The family called `name`; ValueError naming the known ones otherwise."""
    try:
        return FAMILIES[name]
    except KeyError:
        raise ValueError(f"family {name!r} is unknown; families: {', '.join(FAMILIES)}") from None


def family_of(root: Path) -> Family | None:
    """The family whose identifying path `root` has, or None."""
    return next((f for f in FAMILIES.values() if f.is_pack(root)), None)
