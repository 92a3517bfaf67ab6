"""Model packs: directories in a family's upstream layout (each family names its files: Spark-TTS-0.5B
`LLM/` + `BiCodec/`; s3 `LLM/` + `s3gen.safetensors`; Orpheus `LLM/` + `SNAC/`; Chatterbox
`t3_cfg.safetensors` + `tokenizer.json` + `s3gen.safetensors`). Any of them may name its speakers
(`speakers.py`).

The embedded default is a tiny random pack in exactly that layout, written on first use by the
tooling (`voxserve.random_packs`), so the loading code that the default run and the tests
exercise is the code that loads real weights. A service only reads packs.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

from voxserve.common.config import load_config, setting
from voxserve.families.family import Family
from voxserve.families.registry import DEFAULT_FAMILY, FAMILIES, family_of

# The embedded default's place under the home directory. Bump the version when the tiny pack's
# writer changes, so a stale cached pack is not reused.
TINY_PACK_VERSION = 2
DEFAULT_PACK_SEED = 1234


@dataclass(frozen=True)
class HomeConfig:
    home: Path = setting(Path("~/.cache/voxserve").expanduser(), "Where generated packs are kept")


@dataclass(frozen=True)
class Pack:
    root: Path

    @property
    def llm_dir(self) -> Path:
        return self.root / "LLM"

    @property
    def bicodec_dir(self) -> Path:
        return self.root / "BiCodec"

    @property
    def family(self) -> Family:
        """The family whose identifying file or directory the pack has (`registry.FAMILIES`)."""
        family = family_of(self.root)
        if family is None:
            marks = ", ".join(f"{f.identifying_path} ({f.name})" for f in FAMILIES.values())
            raise ValueError(f"{self.root} is not a model pack: it has none of {marks}")
        return family

    @property
    def voices_file(self) -> Path | None:
        """The pack's own voice registry, if it carries one; a pack whose family has a default
        voice file (chatterbox's `conds.pt`) and no voices.json has that file, a registry of its
        one voice."""
        path = self.root / "voices.json"
        if path.is_file():
            return path
        # A directory that is not a pack has no voices, and no error.
        family = family_of(self.root)
        if family is None or family.default_voice_file is None:
            return None
        voice = self.root / family.default_voice_file
        return voice if voice.is_file() else None

    @classmethod
    def open(cls, root: Path) -> Pack:
        root = Path(root).expanduser().resolve()
        # Neither family's marker: name what the default family needs.
        family = family_of(root) or DEFAULT_FAMILY
        missing = [p for p in family.pack_files if not (root / p).exists()]
        if missing:
            paths = ", ".join(str(root / p) for p in missing)
            raise FileNotFoundError(f"{root} is not a {family.name} model pack: missing {paths}")
        return cls(root)


def default_pack_dir() -> Path:
    """Where the embedded default pack lives once the tooling has written it."""
    home = load_config(HomeConfig, "VOXSERVE_").home
    return home / "packs" / f"tiny-spark-v{TINY_PACK_VERSION}-seed{DEFAULT_PACK_SEED}"


def resolve_pack(path: Path | None) -> Pack:
    """The pack at `path`, or the embedded default; a service never writes one."""
    if path is not None:
        return Pack.open(path)
    target = default_pack_dir()
    if not target.is_dir():
        raise FileNotFoundError(
            f"no pack configured and no embedded default at {target}: write it with "
            "`voxserve pack tiny` (or `voxserve up`), or set the service's PACK variable"
        )
    return Pack.open(target)
