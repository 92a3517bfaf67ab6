from __future__ import annotations

from pathlib import Path

import pytest
import torch

from voxserve.random_packs.s3gen_checkpoint import write_random_s3gen
from voxserve.random_packs.tiny_bicodec import write_tiny_bicodec
from voxserve.random_packs.tiny_snac import write_snac
from voxserve.vocoder.codecs.bicodec import BiCodec
from voxserve.vocoder.codecs.s3gen.codec import CHECKPOINT_FILE, CONFIG_FILE, S3GenCodec, config_to_json
from voxserve.vocoder.codecs.s3gen.config import TINY as TINY_S3GEN
from voxserve.vocoder.codecs.s3gen.flow import S3Gen
from voxserve.vocoder.codecs.snac import SnacCodec


@pytest.fixture(scope="session")
def tiny_bicodec_pack(tmp_path_factory: pytest.TempPathFactory) -> Path:
    pack = tmp_path_factory.mktemp("tiny-bicodec-pack")
    write_tiny_bicodec(pack, seed=0)
    return pack


@pytest.fixture(scope="session")
def tiny_bicodec(tiny_bicodec_pack: Path) -> BiCodec:
    return BiCodec.from_pack(tiny_bicodec_pack)


@pytest.fixture(scope="session")
def tiny_bicodec64(tiny_bicodec_pack: Path) -> BiCodec:
    return BiCodec.from_pack(tiny_bicodec_pack, dtype=torch.float64)


@pytest.fixture(scope="session")
def tiny_s3gen() -> S3Gen:
    """A small S3Gen with random weights of a modest scale (in eval mode)."""
    model = S3Gen(TINY_S3GEN).eval()
    generator = torch.Generator().manual_seed(0)
    with torch.no_grad():
        for p in model.parameters():
            p.copy_(torch.randn(p.shape, generator=generator) * 0.05)
    return model


@pytest.fixture(scope="session")
def tiny_s3gen_pack(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The vocoder half of a tiny s3 pack: `s3gen.safetensors` (random, upstream names) and
    `s3gen.json`, as `voxserve pack tiny --family s3` writes them."""
    pack = tmp_path_factory.mktemp("tiny-s3gen-pack")
    write_random_s3gen(pack / CHECKPOINT_FILE, TINY_S3GEN, seed=3)
    (pack / CONFIG_FILE).write_text(config_to_json(TINY_S3GEN))
    return pack


@pytest.fixture(scope="session")
def s3gen_codec(tiny_s3gen_pack: Path) -> S3GenCodec:
    return S3GenCodec.from_pack(tiny_s3gen_pack)


@pytest.fixture(scope="session")
def tiny_snac(tmp_path_factory: pytest.TempPathFactory) -> SnacCodec:
    """SNAC 24 kHz with fewer channels (the vocoder half of a tiny orpheus pack)."""
    pack = tmp_path_factory.mktemp("tiny-snac-pack")
    write_snac(pack)
    return SnacCodec.from_pack(pack)
