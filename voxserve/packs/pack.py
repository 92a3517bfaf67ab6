"""Model packs: directories in the upstream layout (Spark-TTS-0.5B: `LLM/` + `BiCodec/`; the
s3 family: `LLM/` + Chatterbox's `s3gen.safetensors`, see `tiny_s3.py`; Orpheus: `LLM/` +
`SNAC/`, see `tiny_orpheus.py`; Chatterbox: `t3_cfg.safetensors` + `tokenizer.json` +
`s3gen.safetensors`, see `tiny_chatterbox.py`). Any of them may name its speakers (`speakers.py`).

The embedded default is a tiny random pack in exactly that layout, written on first use, so
the loading code that the default run and the tests exercise is the code that loads real
weights.
"""

from __future__ import annotations

import os
import shutil
import tempfile
from dataclasses import dataclass
from pathlib import Path

from voxserve.common.config import load_config, setting

# Bump when the tiny pack's writer changes, so a stale cached pack is not reused.
TINY_PACK_VERSION = 1
DEFAULT_PACK_SEED = 1234


@dataclass(frozen=True)
class HomeConfig:
    home: Path = setting(Path("~/.cache/voxserve").expanduser(), "Where generated packs are kept")


# The files that make a directory a pack of each family.
FAMILY_FILES = {
    "spark": ("LLM/config.json", "BiCodec/config.yaml"),
    "s3": ("LLM/config.json", "s3gen.safetensors"),
    "orpheus": ("LLM/config.json", "SNAC/config.json"),
    "chatterbox": ("t3_cfg.safetensors", "tokenizer.json", "s3gen.safetensors"),
}
FAMILIES = tuple(FAMILY_FILES)


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
    def family(self) -> str:
        """ "spark" (Spark-TTS: `BiCodec/`), "chatterbox" (T3: `t3_cfg.safetensors`), "s3" (an
        LM writing S3 speech tokens: `s3gen.safetensors`) or "orpheus" (SNAC codes: `SNAC/`)."""
        if self.bicodec_dir.is_dir():
            return "spark"
        # Before s3: a chatterbox pack has S3Gen's s3gen.safetensors too.
        if (self.root / "t3_cfg.safetensors").is_file():
            return "chatterbox"
        if (self.root / "s3gen.safetensors").is_file():
            return "s3"
        if (self.root / "SNAC").is_dir():
            return "orpheus"
        raise ValueError(
            f"{self.root} is not a model pack: no BiCodec/ or SNAC/ directory and no "
            "t3_cfg.safetensors or s3gen.safetensors"
        )

    @property
    def voices_file(self) -> Path | None:
        """The pack's own voice registry, if it carries one; a chatterbox pack without one has its
        `conds.pt` (a registry of that one voice)."""
        path = self.root / "voices.json"
        if path.is_file():
            return path
        conds = self.root / "conds.pt"
        # By its files, not `family`: a directory that is not a pack has no voices, and no error.
        return conds if conds.is_file() and (self.root / "t3_cfg.safetensors").is_file() else None

    @classmethod
    def open(cls, root: Path) -> Pack:
        root = Path(root).expanduser().resolve()
        pack = cls(root)
        try:
            family = pack.family
        except ValueError:
            family = "spark"  # neither family's marker: name what the default family needs
        missing = [p for p in FAMILY_FILES[family] if not (root / p).exists()]
        if missing:
            raise FileNotFoundError(
                f"{root} is not a {family} model pack: missing {', '.join(str(root / p) for p in missing)}"
            )
        return pack


PACK_SIZES = ("tiny", "full")


def write_random_pack(
    root: Path,
    size: str = "tiny",
    seed: int = DEFAULT_PACK_SEED,
    family: str = "spark",
    *,
    speakers: bool = False,
) -> Pack:
    """Write a random pack of a family in its upstream layout (deterministic for a seed).

    "tiny" is CPU-sized (the spark one is the embedded default); "full" has the real models'
    dimensions (spark: Qwen2 0.5B in bfloat16 and the published BiCodec, about 1.2 GB;
    chatterbox: T3 in float32 as upstream runs it, about 2.1 GB, and S3Gen) for measuring speed on
    a GPU. ``speakers`` (spark only) writes a speaker-name fine-tune: 12 named speakers and inline
    emotion tags.
    """
    if size not in PACK_SIZES:
        raise ValueError(f"size {size!r} is unknown; sizes: {', '.join(PACK_SIZES)}")
    if family not in FAMILIES:
        raise ValueError(f"family {family!r} is unknown; families: {', '.join(FAMILIES)}")
    if speakers and family != "spark":
        raise ValueError(f"speakers: only spark packs have a speaker-name variant, not {family}")
    full = size == "full"
    root = Path(root)
    root.mkdir(parents=True, exist_ok=True)
    if family == "orpheus":
        from voxserve.packs.tiny_orpheus import write_orpheus_pack

        write_orpheus_pack(root, seed, size)
        return Pack.open(root)
    if family == "chatterbox":
        from voxserve.packs.tiny_chatterbox import write_chatterbox_pack

        write_chatterbox_pack(root, seed, size)
        return Pack.open(root)
    if family == "s3":
        from voxserve.packs.tiny_s3 import write_s3_pack

        write_s3_pack(root, seed, size)
        return Pack.open(root)
    from voxserve.packs.tiny_bicodec import FULL_BICODEC_CONFIG, TINY_BICODEC_CONFIG, write_bicodec
    from voxserve.packs.tiny_llm import SPARK_0_5B_LLM, TINY_LLM, write_llm

    if speakers:
        from voxserve.packs.tiny_speakers import write_speaker_finetune

        write_speaker_finetune(root, seed, SPARK_0_5B_LLM if full else TINY_LLM)
    else:
        write_llm(root / "LLM", seed, SPARK_0_5B_LLM if full else TINY_LLM)
    write_bicodec(root, seed, FULL_BICODEC_CONFIG if full else TINY_BICODEC_CONFIG)
    return Pack.open(root)


def write_tiny_pack(root: Path, seed: int = DEFAULT_PACK_SEED) -> Pack:
    """Write the tiny random pack of the embedded default."""
    return write_random_pack(root, "tiny", seed)


def default_pack_dir() -> Path:
    home = load_config(HomeConfig, "VOXSERVE_").home
    return home / "packs" / f"tiny-spark-v{TINY_PACK_VERSION}-seed{DEFAULT_PACK_SEED}"


def ensure_default_pack() -> Pack:
    """The embedded default pack, written atomically on first use."""
    target = default_pack_dir()
    if (target / "LLM" / "config.json").exists():
        return Pack.open(target)
    target.parent.mkdir(parents=True, exist_ok=True)
    staging = Path(tempfile.mkdtemp(prefix=".staging-", dir=target.parent))
    try:
        write_tiny_pack(staging, DEFAULT_PACK_SEED)
        try:
            os.rename(staging, target)
        except OSError:  # another process won the race; use its pack
            if not (target / "LLM" / "config.json").exists():
                raise
    finally:
        shutil.rmtree(staging, ignore_errors=True)
    return Pack.open(target)


def resolve_pack(path: Path | None) -> Pack:
    return Pack.open(path) if path is not None else ensure_default_pack()
