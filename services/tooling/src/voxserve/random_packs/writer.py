"""Writers of random packs in each family's upstream layout, and the embedded default."""

from __future__ import annotations

import os
import shutil
import tempfile
from collections.abc import Callable
from pathlib import Path

from voxserve.families.pack import DEFAULT_PACK_SEED, Pack, default_pack_dir
from voxserve.families.registry import FAMILIES

PACK_SIZES = ("tiny", "full")

# Writes a random pack of one family into a directory: (root, seed, size).
PackWriter = Callable[[Path, int, str], None]


# Each writer imports its family's modules when it runs: writing the default (spark) pack loads
# no other family's codec.
def _write_spark(root: Path, seed: int, size: str) -> None:
    from voxserve.random_packs.tiny_llm import SPARK_0_5B_LLM, TINY_LLM, write_llm

    write_llm(root / "LLM", seed, SPARK_0_5B_LLM if size == "full" else TINY_LLM)
    _write_spark_codec(root, seed, size)


def _write_spark_speakers(root: Path, seed: int, size: str) -> None:
    from voxserve.random_packs.tiny_llm import SPARK_0_5B_LLM, TINY_LLM
    from voxserve.random_packs.tiny_speakers import write_speaker_finetune

    write_speaker_finetune(root, seed, SPARK_0_5B_LLM if size == "full" else TINY_LLM)
    _write_spark_codec(root, seed, size)


def _write_spark_codec(root: Path, seed: int, size: str) -> None:
    """BiCodec and the wav2vec2 model its voice enrolment reads."""
    from voxserve.random_packs.tiny_bicodec import FULL_BICODEC_CONFIG, TINY_BICODEC_CONFIG, write_bicodec
    from voxserve.random_packs.tiny_wav2vec2 import write_wav2vec2

    write_bicodec(root, seed, FULL_BICODEC_CONFIG if size == "full" else TINY_BICODEC_CONFIG)
    write_wav2vec2(root, seed, size)


def _write_s3(root: Path, seed: int, size: str) -> None:
    from voxserve.random_packs.tiny_s3 import write_s3_pack

    write_s3_pack(root, seed, size)


def _write_orpheus(root: Path, seed: int, size: str) -> None:
    from voxserve.random_packs.tiny_orpheus import write_orpheus_pack

    write_orpheus_pack(root, seed, size)


def _write_chatterbox(root: Path, seed: int, size: str) -> None:
    from voxserve.random_packs.tiny_chatterbox import write_chatterbox_pack

    write_chatterbox_pack(root, seed, size)


# Family name -> its writer, one for every family of the registry (in `voxserve pack`'s order).
PACK_WRITERS: dict[str, PackWriter] = {
    "spark": _write_spark,
    "s3": _write_s3,
    "orpheus": _write_orpheus,
    "chatterbox": _write_chatterbox,
}
# Family name -> the writer of its speaker-name fine-tune (named speakers, inline emotion tags).
SPEAKER_NAME_WRITERS: dict[str, PackWriter] = {"spark": _write_spark_speakers}


def write_random_pack(
    root: Path,
    size: str = "tiny",
    seed: int = DEFAULT_PACK_SEED,
    family: str = "spark",
    *,
    speakers: bool = False,
) -> Pack:
    """Write a random pack in a family's upstream layout (deterministic for a seed).

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
    if speakers and family not in SPEAKER_NAME_WRITERS:
        raise ValueError(f"speakers: only spark packs have a speaker-name variant, not {family}")
    writer = (SPEAKER_NAME_WRITERS if speakers else PACK_WRITERS)[family]
    root = Path(root)
    root.mkdir(parents=True, exist_ok=True)
    writer(root, seed, size)
    return Pack.open(root)


def write_tiny_pack(root: Path, seed: int = DEFAULT_PACK_SEED) -> Pack:
    """Write the tiny random pack of the embedded default."""
    return write_random_pack(root, "tiny", seed)


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
    """The pack at `path`, or the embedded default, written first if it is not there yet."""
    return Pack.open(path) if path is not None else ensure_default_pack()
