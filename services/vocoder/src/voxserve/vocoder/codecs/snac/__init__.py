"""SNAC 24 kHz (Orpheus packs): the `snac` package's model, decoded frame by frame."""

from voxserve.vocoder.codecs.snac.codec import SnacCodec

__all__ = ["SnacCodec"]
