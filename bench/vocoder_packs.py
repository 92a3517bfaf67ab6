"""Random packs of the vocoder's half only, for benchmarking the vocoder tier on any device.

Each holds one codec's files in its upstream layout, at full size (the published models'
dimensions) or tiny, and an `LLM/config.json` that marks the pack's family: the vocoder reads no
file of the language model, so none is written (a full one is 0.5 to 3 B parameters).

- `bicodec`: Spark-TTS-0.5B's BiCodec (`BiCodec/`, spark family);
- `s3gen`: Chatterbox's S3Gen (`s3gen.safetensors`, s3 family), ten flow steps with guidance;
- `s3gen-turbo`: Chatterbox-Turbo's S3Gen: the meanflow estimator, two steps, no guidance;
- `snac`: SNAC 24 kHz (`SNAC/`, orpheus family), Orpheus's codec.
"""

from __future__ import annotations

import dataclasses
import json
from pathlib import Path

from voxserve.families.pack import Pack

VOCODER_PACKS = ("bicodec", "s3gen", "s3gen-turbo", "snac")
FAMILY_MARKER = Path("LLM") / "config.json"


def write_vocoder_pack(root: Path, codec: str, size: str = "tiny", seed: int = 0) -> Pack:
    """Write one codec's pack into `root` (created if missing)."""
    if size not in ("tiny", "full"):
        raise ValueError(f"size {size!r} is unknown; sizes: tiny, full")
    full = size == "full"
    root = Path(root)
    (root / FAMILY_MARKER).parent.mkdir(parents=True, exist_ok=True)
    if codec == "bicodec":
        from voxserve.random_packs.tiny_bicodec import FULL_BICODEC_CONFIG, TINY_BICODEC_CONFIG, write_bicodec

        write_bicodec(root, seed, FULL_BICODEC_CONFIG if full else TINY_BICODEC_CONFIG)
    elif codec in ("s3gen", "s3gen-turbo"):
        from voxserve.random_packs.s3gen_checkpoint import write_random_s3gen
        from voxserve.vocoder.codecs.s3gen.codec import CHECKPOINT_FILE, CONFIG_FILE, config_to_json
        from voxserve.vocoder.codecs.s3gen.config import FULL, TINY

        config = FULL if full else TINY
        if codec == "s3gen-turbo":
            config = dataclasses.replace(
                config, flow=dataclasses.replace(config.flow, meanflow=True, steps=2)
            )
        write_random_s3gen(root / CHECKPOINT_FILE, config, seed)
        (root / CONFIG_FILE).write_text(config_to_json(config) + "\n")
    elif codec == "snac":
        from voxserve.random_packs import tiny_snac

        tiny_snac.write_snac(root, tiny_snac.SNAC_24KHZ if full else tiny_snac.TINY, seed)
    else:
        raise ValueError(f"codec {codec!r} is unknown; vocoder packs: {', '.join(VOCODER_PACKS)}")
    (root / FAMILY_MARKER).write_text(json.dumps({"vocoder_only": True, "codec": codec}) + "\n")
    return Pack.open(root)
