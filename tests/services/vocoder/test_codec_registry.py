"""The codec registry: every family's codec is registered under its own name, and a loaded codec
agrees with every family that names it on rates and framing."""

from __future__ import annotations

import pytest

from voxserve.families.orpheus import CODES_PER_FRAME
from voxserve.families.registry import FAMILIES
from voxserve.vocoder.codecs.base import Codec
from voxserve.vocoder.codecs.bicodec import BiCodec
from voxserve.vocoder.codecs.registry import CODECS, codec_named
from voxserve.vocoder.codecs.s3gen.codec import S3GenCodec
from voxserve.vocoder.codecs.snac import SnacCodec
from voxserve.vocoder.codecs.snac.codec import CODEBOOK_OF_POSITION


@pytest.fixture
def loaded(tiny_bicodec: BiCodec, s3gen_codec: S3GenCodec, tiny_snac: SnacCodec) -> dict[str, Codec]:
    """One codec of each registered class, loaded from a tiny pack of the real rates."""
    codecs: list[Codec] = [tiny_bicodec, s3gen_codec, tiny_snac]
    return {codec.name: codec for codec in codecs}


def test_every_codec_is_registered_under_its_own_name() -> None:
    assert {name: cls.name for name, cls in CODECS.items()} == {name: name for name in CODECS}


def test_every_family_names_a_registered_codec() -> None:
    for family in FAMILIES.values():
        assert codec_named(family.codec).name == family.codec, family.name


def test_an_unknown_codec_is_refused_naming_the_known_ones() -> None:
    with pytest.raises(ValueError, match="codec 'mp3' is unknown; codecs: bicodec, s3gen, snac"):
        codec_named("mp3")


def test_a_loaded_codec_agrees_with_every_family_that_names_it(loaded: dict[str, Codec]) -> None:
    assert set(loaded) == set(CODECS)
    for family in FAMILIES.values():
        codec = loaded[family.codec]
        assert isinstance(codec, CODECS[family.codec])
        framing = (codec.sample_rate, codec.samples_per_token, codec.codes_per_token)
        assert framing == (family.sample_rate, family.samples_per_token, family.codes_per_token), family.name


def test_a_snac_frame_is_an_orpheus_frame() -> None:
    assert SnacCodec.codes_per_token == CODES_PER_FRAME == len(CODEBOOK_OF_POSITION)
