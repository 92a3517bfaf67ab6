"""Every codec the vocoder serves, by the name a family gives it (`Family.codec`). A new codec is
one package beside these and one entry here."""

from __future__ import annotations

from collections.abc import Mapping
from types import MappingProxyType

import torch

from voxserve.families.pack import Pack
from voxserve.vocoder.codecs.base import Codec
from voxserve.vocoder.codecs.bicodec import BiCodec
from voxserve.vocoder.codecs.s3gen.codec import S3GenCodec
from voxserve.vocoder.codecs.snac import SnacCodec

_CODEC_CLASSES: tuple[type[Codec], ...] = (BiCodec, S3GenCodec, SnacCodec)
CODECS: Mapping[str, type[Codec]] = MappingProxyType({c.name: c for c in _CODEC_CLASSES})


def codec_named(name: str) -> type[Codec]:
    """The codec class called `name`; ValueError naming the known ones otherwise."""
    try:
        return CODECS[name]
    except KeyError:
        raise ValueError(f"codec {name!r} is unknown; codecs: {', '.join(CODECS)}") from None


def build_codec(pack: Pack, *, device: str = "cpu", dtype: torch.dtype = torch.float32) -> Codec:
    """The codec of the pack's family, loaded from the pack."""
    return codec_named(pack.family.codec).from_pack(pack.root, device=device, dtype=dtype)
