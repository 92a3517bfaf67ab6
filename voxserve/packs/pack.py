"""Model packs: directories in the upstream layout (Spark-TTS-0.5B: `LLM/` + `BiCodec/`).

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
        if self.bicodec_dir.is_dir():
            return "spark"
        raise ValueError(f"{self.root} is not a model pack: no BiCodec/ directory")

    @classmethod
    def open(cls, root: Path) -> Pack:
        root = Path(root).expanduser().resolve()
        pack = cls(root)
        missing = [
            p for p in (pack.llm_dir / "config.json", pack.bicodec_dir / "config.yaml") if not p.exists()
        ]
        if missing:
            raise FileNotFoundError(
                f"{root} is not a Spark model pack: missing {', '.join(map(str, missing))}"
            )
        return pack


PACK_SIZES = ("tiny", "full")


def write_random_pack(root: Path, size: str = "tiny", seed: int = DEFAULT_PACK_SEED) -> Pack:
    """Write a random pack in the Spark-TTS-0.5B layout (deterministic for a seed).

    "tiny" is the embedded default (CPU-sized); "full" has the real model's dimensions (Qwen2
    0.5B in bfloat16 and the published BiCodec, about 1.2 GB) for measuring speed on a GPU.
    """
    from voxserve.packs.tiny_bicodec import FULL_BICODEC_CONFIG, TINY_BICODEC_CONFIG, write_bicodec
    from voxserve.packs.tiny_llm import SPARK_0_5B_LLM, TINY_LLM, write_llm

    if size not in PACK_SIZES:
        raise ValueError(f"size {size!r} is unknown; sizes: {', '.join(PACK_SIZES)}")
    full = size == "full"
    root = Path(root)
    root.mkdir(parents=True, exist_ok=True)
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
