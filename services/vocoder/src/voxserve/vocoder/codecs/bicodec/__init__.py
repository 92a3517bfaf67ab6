"""BiCodec (Spark-TTS) decoder: semantic ids + 32 global ids -> 16 kHz waveform.

`config`: hyper-parameters; `model`: the decode path as torch modules; `checkpoint`: tensor
names, receptive field and loading upstream weights; `codec`: the `Codec` the vocoder uses.
"""

from voxserve.vocoder.codecs.bicodec.checkpoint import (
    build_meta_decoder,
    checkpoint_shapes,
    load_decode_state_dict,
    receptive_field_tokens,
)
from voxserve.vocoder.codecs.bicodec.codec import BiCodec
from voxserve.vocoder.codecs.bicodec.config import BiCodecConfig, BiCodecLoadError
from voxserve.vocoder.codecs.bicodec.model import BiCodecDecoder, fsq_dequantize

__all__ = [
    "BiCodec",
    "BiCodecConfig",
    "BiCodecDecoder",
    "BiCodecLoadError",
    "build_meta_decoder",
    "checkpoint_shapes",
    "fsq_dequantize",
    "load_decode_state_dict",
    "receptive_field_tokens",
]
