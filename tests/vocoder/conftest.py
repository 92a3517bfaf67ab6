from __future__ import annotations

from pathlib import Path

import pytest
import torch

from voxserve.packs.tiny_bicodec import write_tiny_bicodec
from voxserve.vocoder.codecs.bicodec import BiCodec


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
