"""The `Codec` implementation for Spark-TTS packs."""

from __future__ import annotations

import copy
from collections.abc import Sequence
from pathlib import Path

import numpy as np
import torch
import yaml

from voxserve.common.logging import get_logger
from voxserve.vocoder.codecs.base import (
    ChunkContext,
    CodecInputError,
    DecodeRow,
    EncodedVoice,
    EncoderUnavailable,
    StaticForward,
    VoiceConditioning,
    check_reference,
    crop_rows,
)
from voxserve.vocoder.codecs.bicodec.checkpoint import (
    build_meta_decoder,
    load_decode_state_dict,
    receptive_field_tokens,
)
from voxserve.vocoder.codecs.bicodec.config import BiCodecConfig, BiCodecLoadError
from voxserve.vocoder.codecs.bicodec.model import BiCodecDecoder
from voxserve.vocoder.codecs.bicodec.voice_encoder import MIN_REFERENCE_SAMPLES, BiCodecVoiceEncoder
from voxserve.vocoder.receptive_field import measure_context

log = get_logger(__name__)


def _check_pack_config(path: Path, config: BiCodecConfig) -> None:
    if not path.is_file():
        return
    with open(path, encoding="utf-8") as f:
        top = yaml.safe_load(f) or {}
    for key, actual in (("latent_hop_length", config.samples_per_token), ("sample_rate", config.sample_rate)):
        if key in top and int(top[key]) != actual:
            raise BiCodecLoadError(f"{path}: {key} is {top[key]}, but the BiCodec config gives {actual}")


class BiCodec:
    """The `Codec` for Spark-TTS packs: conditions on 32 global ids, decodes semantic ids, and
    enrols voices with the pack's encoders."""

    name = "bicodec"
    codes_per_token = 1

    def __init__(
        self, config: BiCodecConfig, model: BiCodecDecoder, voice_encoder: BiCodecVoiceEncoder | None = None
    ) -> None:
        self.config = config
        self.voice_encoder = voice_encoder
        self.model = model.eval().requires_grad_(False)
        param = next(model.parameters())
        self.device = param.device
        self.dtype = param.dtype
        self.sample_rate = config.sample_rate
        self.samples_per_token = config.samples_per_token
        self.token_vocab_size = config.quantizer.codebook_size
        self.receptive_field_tokens = receptive_field_tokens(model)
        self.global_token_count = config.speaker_encoder.token_num
        self.global_vocab_size = config.speaker_encoder.global_vocab_size
        self.conditioning_dim = config.speaker_encoder.out_dim
        # Outputs are float32 as the protocol says, except that a float64 codec (exactness checks)
        # keeps its precision.
        self.output_dtype = torch.float64 if self.dtype == torch.float64 else torch.float32

    @classmethod
    def from_files(
        cls,
        config: BiCodecConfig,
        weights_path: str | Path,
        *,
        device: str | torch.device = "cpu",
        dtype: torch.dtype = torch.float32,
    ) -> BiCodec:
        state = load_decode_state_dict(weights_path, config, dtype=dtype, device=str(device))
        model = build_meta_decoder(config)
        model.load_state_dict(state, strict=True, assign=True)
        return cls(config, model)

    @classmethod
    def from_pack(
        cls, pack_dir: str | Path, device: str | torch.device = "cpu", dtype: torch.dtype = torch.float32
    ) -> BiCodec:
        """Load `<pack>/BiCodec/config.yaml` and `<pack>/BiCodec/model.safetensors`.

        `<pack>/config.yaml`, where present, must agree on sample rate and samples per token.
        """
        pack = Path(pack_dir)
        config = BiCodecConfig.from_yaml(pack / "BiCodec" / "config.yaml")
        _check_pack_config(pack / "config.yaml", config)
        codec = cls.from_files(config, pack / "BiCodec" / "model.safetensors", device=device, dtype=dtype)
        # Only headers and listings are read here; the encoders load on the first enrolment.
        codec.voice_encoder = BiCodecVoiceEncoder.from_pack(pack, config, device=codec.device)
        missing = codec.voice_encoder.missing
        log.info("bicodec voice encoder", pack=str(pack), complete=not missing, missing=missing)
        return codec

    def encode_voice(self, audio: np.ndarray, sample_rate: int, reference_tokens: bool) -> EncodedVoice:
        """32 global ids of a mono 16 kHz reference (and its semantic ids if `reference_tokens`)."""
        check_reference(audio, sample_rate, self.sample_rate, "BiCodec", MIN_REFERENCE_SAMPLES)
        if self.voice_encoder is None:
            raise EncoderUnavailable(
                "this BiCodec was loaded from files, not a pack: it has no voice encoder"
            )
        return self.voice_encoder.encode(audio, reference_tokens)

    def chunk_context(self, context_tokens: int, tolerance: float) -> ChunkContext:
        """Stateless: the same context on both sides, measured from the weights unless set (the
        theoretical receptive field is far wider than what real weights need)."""
        if context_tokens <= 0:
            # How far a token reaches is a property of the weights; in reduced precision rounding
            # alone exceeds the tolerance and would inflate the context, so measure in float32.
            probe = self if self.dtype in (torch.float32, torch.float64) else self.float32_twin()
            context_tokens = measure_context(probe, tolerance).context_tokens
            log.info(
                "measured decode context",
                context_tokens=context_tokens,
                tolerance=tolerance,
                receptive_field_tokens=self.receptive_field_tokens,
            )
        return ChunkContext(context_tokens, context_tokens)

    def float32_twin(self) -> BiCodec:
        """The same decoder in float32 (on the same device), without voice encoder."""
        return BiCodec(self.config, copy.deepcopy(self.model).to(torch.float32))

    def warmup_voice(self, seed: int = 0) -> VoiceConditioning:
        """A valid voice of random global ids, for forwards run before any stream arrives."""
        generator = torch.Generator().manual_seed(seed)
        ids = torch.randint(0, self.global_vocab_size, (self.global_token_count,), generator=generator)
        return VoiceConditioning(global_ids=tuple(ids.tolist()))

    def condition(self, voice: VoiceConditioning) -> torch.Tensor:
        """The speaker vector d [D] for a voice's global ids."""
        ids = voice.global_ids
        if len(ids) != self.global_token_count:
            raise CodecInputError(
                f"global_ids must hold exactly {self.global_token_count} ids, got {len(ids)}"
            )
        for i, g in enumerate(ids):
            if isinstance(g, bool) or not isinstance(g, int) or not 0 <= g < self.global_vocab_size:
                raise CodecInputError(
                    f"global_ids[{i}] is {g!r}; each id must be an int in [0, {self.global_vocab_size})"
                )
        with torch.no_grad():
            tensor = torch.tensor([ids], dtype=torch.int64, device=self.device)
            return self.model.speaker_vector(tensor)[0]

    @torch.inference_mode()
    def decode(self, tokens: torch.Tensor, conditioning: torch.Tensor) -> torch.Tensor:
        """tokens int64 [B, T], conditioning [B, D] -> waveform [B, T * 320] on the codec's device.

        float32, or float64 for a codec loaded in float64.
        """
        if tokens.dtype != torch.int64 or tokens.ndim != 2:
            raise CodecInputError(f"tokens must be int64 [B, T], got {tokens.dtype} {tuple(tokens.shape)}")
        batch, length = tokens.shape
        if conditioning.shape != (batch, self.conditioning_dim):
            raise CodecInputError(
                f"conditioning must be [{batch}, {self.conditioning_dim}], got {tuple(conditioning.shape)}"
            )
        if length == 0 or batch == 0:
            return torch.zeros(
                batch, length * self.samples_per_token, dtype=self.output_dtype, device=self.device
            )
        tokens = tokens.to(self.device)
        # An out-of-range id would be a device-side assert on CUDA, which poisons the whole process.
        low, high = torch.aminmax(tokens)
        if int(low) < 0 or int(high) >= self.token_vocab_size:
            raise CodecInputError(
                f"tokens must lie in [0, {self.token_vocab_size}), got [{int(low)}, {int(high)}]"
            )
        speaker = conditioning.to(device=self.device, dtype=self.dtype)
        return self.model(tokens, speaker).to(self.output_dtype)

    def open_stream(self, conditioning: torch.Tensor, seed: int) -> None:
        """BiCodec is deterministic and stateless: a window decodes the same whatever came before."""
        return None

    def decode_windows(self, rows: Sequence[DecodeRow]) -> list[torch.Tensor]:
        tokens = torch.stack([row.tokens for row in rows])
        conditioning = torch.stack([row.conditioning for row in rows])
        return crop_rows(self.decode(tokens, conditioning), rows, self.samples_per_token)

    def static_forward(self) -> StaticForward:
        return BiCodecForward(self)


class BiCodecForward:
    """BiCodec's decoder on stacked tokens and speaker vectors: fixed shapes, rows independent."""

    def __init__(self, codec: BiCodec) -> None:
        self.codec = codec
        self.samples_per_token = codec.samples_per_token

    def inputs(self, rows: Sequence[DecodeRow]) -> tuple[torch.Tensor, ...]:
        tokens = torch.stack([row.tokens for row in rows])
        # Checked on the host's copy: an out-of-range id inside a graph is a device-side assert,
        # which poisons the process.
        low, high = int(tokens.min()), int(tokens.max())
        if low < 0 or high >= self.codec.token_vocab_size:
            raise CodecInputError(
                f"tokens must lie in [0, {self.codec.token_vocab_size}), got [{low}, {high}]"
            )
        speaker = torch.stack([row.conditioning for row in rows]).to(self.codec.dtype)
        return tokens, speaker

    def forward(self, *inputs: torch.Tensor) -> torch.Tensor:
        tokens, speaker = inputs
        return self.codec.model(tokens, speaker).to(self.codec.output_dtype)
