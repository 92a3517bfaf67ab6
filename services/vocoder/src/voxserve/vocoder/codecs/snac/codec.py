"""The `Codec` for SNAC: Orpheus frames (7 codes each) to 24 kHz samples.

A frame holds the codes of SNAC's three codebooks for 2048 samples: codebook 0 [t0], codebook 1
[t1, t4], codebook 2 [t2, t3, t5, t6]. The vocoder's token is a frame (`codes_per_token` = 7):
windows are whole frames, so a window's codes always line up with the codebooks' strides.

SNAC's decoder adds noise in each upsampling block, drawn afresh on every call upstream. Here
each noise value comes from a generator seeded by (stream seed, block, frame), so a frame's
noise is the same in every window and replica that decodes it, and a streamed decode matches an
offline one up to the receptive field, not up to the noise.
"""

from __future__ import annotations

import json
import math
import threading
import warnings
from collections.abc import Sequence
from pathlib import Path

import torch
from torch import nn

with warnings.catch_warnings():
    # snac 1.2.1 scripts its Snake activation with torch.jit.script, which torch now deprecates.
    warnings.simplefilter("ignore", DeprecationWarning)
    from snac import SNAC
    from snac.layers import NoiseBlock

from voxserve.families.orpheus import CODES_PER_FRAME
from voxserve.vocoder.codecs.base import (
    ChunkContext,
    CodecInputError,
    DecodeRow,
    StaticForward,
    VoiceConditioning,
    WithoutVoiceEncoder,
    crop_rows,
)
from voxserve.vocoder.codecs.s3gen.noise import frame_normal

# Where each of a frame's 7 codes goes: (codebook, position within the frame's codes of it).
CODEBOOK_OF_POSITION = ((0, 0), (1, 0), (2, 0), (2, 1), (1, 1), (2, 2), (2, 3))
SNAC_DIR = "SNAC"
# Seeds of the noise blocks' draws, apart from every other use of a stream's seed.
_NOISE_USE = 100


class PositionedNoise(nn.Module):
    """SNAC's noise block with its noise given from outside (`noise`, [B, 1, T]) instead of drawn.

    The noise is held per thread: decode lanes run forwards of one model at once, each with the
    noise of its own rows."""

    def __init__(self, block: NoiseBlock):
        super().__init__()
        self.linear = block.linear
        self._given = threading.local()

    @property
    def noise(self) -> torch.Tensor | None:
        return getattr(self._given, "noise", None)

    @noise.setter
    def noise(self, value: torch.Tensor | None) -> None:
        self._given.noise = value

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if self.noise is None:  # a decode without position (receptive-field measurement)
            return x
        return x + self.noise.to(x.dtype) * self.linear(x)


class SnacCodec(WithoutVoiceEncoder):
    name = "snac"
    codes_per_token = CODES_PER_FRAME

    def __init__(self, model: SNAC) -> None:
        if len(model.vq_strides) != 3:
            raise ValueError(f"Orpheus frames need 3 codebooks; this SNAC has {len(model.vq_strides)}")
        self.model = model.eval().requires_grad_(False)
        self.noise_blocks = self._position_noise(model)
        param = next(model.parameters())
        self.device, self.dtype = param.device, param.dtype
        self.sample_rate = int(model.sampling_rate)
        self.latent_per_frame = math.lcm(*model.vq_strides)
        self.samples_per_token = int(model.hop_length) * self.latent_per_frame
        self.token_vocab_size = int(model.codebook_size)
        rates = list(model.decoder_rates)
        # Noise values per frame in each decoder block: the latent rate times the upsampling so far.
        self.noise_per_frame = [self.latent_per_frame * math.prod(rates[: i + 1]) for i in range(len(rates))]
        self.receptive_field_tokens = self._influence_frames()

    @staticmethod
    def _position_noise(model: SNAC) -> list[PositionedNoise]:
        blocks = []
        for module in list(model.decoder.modules()):
            for name, child in list(module.named_children()):
                if isinstance(child, NoiseBlock):
                    replacement = PositionedNoise(child)
                    setattr(module, name, replacement)
                    blocks.append(replacement)
        return blocks

    @classmethod
    def from_pack(
        cls, pack_dir: str | Path, device: str | torch.device = "cpu", dtype: torch.dtype = torch.float32
    ) -> SnacCodec:
        """`<pack>/SNAC/config.json` and `pytorch_model.bin`: the layout SNAC's own releases use."""
        root = Path(pack_dir) / SNAC_DIR
        model = SNAC.from_config(str(root / "config.json"))
        state = torch.load(root / "pytorch_model.bin", map_location="cpu", weights_only=True)
        model.load_state_dict(state)
        return cls(model.to(device=device, dtype=dtype))

    def chunk_context(self, context_tokens: int, tolerance: float) -> ChunkContext:
        """Stateless: the same context on both sides, set or the decoder's reach measured at
        load (exact, so `tolerance` plays no part)."""
        context = context_tokens or self.receptive_field_tokens
        return ChunkContext(context, context)

    def warmup_voice(self, seed: int = 0) -> VoiceConditioning:
        """SNAC takes no voice."""
        return VoiceConditioning()

    def condition(self, voice: VoiceConditioning) -> None:
        """Orpheus voices live in the language model's prompt: the codec takes none."""
        if voice.global_ids or voice.prompt_tokens:
            raise CodecInputError(
                "global_ids and s3_prompt: the snac codec takes no voice (it is in the prompt)"
            )
        return None

    def open_stream(self, conditioning: None, seed: int) -> int:
        return seed

    def codes(self, frames: torch.Tensor) -> list[torch.Tensor]:
        """Frames int64 [B, T, 7] as SNAC's three codebooks: [B, T], [B, 2T], [B, 4T]."""
        batch, count = frames.shape[:2]
        books: list[list[torch.Tensor]] = [[], [], []]
        for position, (book, _) in enumerate(CODEBOOK_OF_POSITION):
            books[book].append(frames[:, :, position])
        return [torch.stack(b, dim=-1).reshape(batch, count * len(b)) for b in books]

    def decode(
        self, frames: torch.Tensor, seeds: Sequence[int] | None = None, first_frames: Sequence[int] = ()
    ) -> torch.Tensor:
        """Frames int64 [B, T, 7] -> samples [B, T x 2048]. With `seeds`, each row's noise is drawn
        for its absolute frames (`first_frames[i]` onward); without, the noise blocks add nothing."""
        noises = None if seeds is None else self.noises(frames.shape[1], seeds, first_frames)
        with torch.inference_mode():
            codes = [c.to(self.device) for c in self.codes(frames)]
            return self.decode_codes(codes, noises)

    def noises(self, count: int, seeds: Sequence[int], first_frames: Sequence[int]) -> list[torch.Tensor]:
        """Per noise block, the noise [B, 1, samples] each row adds over `count` frames."""
        return [
            torch.stack(
                [
                    frame_normal(seed, first, count, per_frame, _NOISE_USE + index).reshape(1, -1)
                    for seed, first in zip(seeds, first_frames, strict=True)
                ]
            ).to(self.device)
            for index, per_frame in enumerate(self.noise_per_frame)
        ]

    def decode_codes(self, codes: list[torch.Tensor], noises: Sequence[torch.Tensor] | None) -> torch.Tensor:
        """Codebooks on the device and each block's noise (None: none) -> float32 samples [B, T x 2048]."""
        for index, block in enumerate(self.noise_blocks):
            block.noise = None if noises is None else noises[index]
        return self.model.decode(codes)[:, 0].to(torch.float32)

    def decode_windows(self, rows: Sequence[DecodeRow]) -> list[torch.Tensor]:
        frames = torch.stack([row.tokens for row in rows])
        seeds = [int(row.state) for row in rows]
        firsts = [row.window.start - row.window.left for row in rows]
        return crop_rows(self.decode(frames, seeds, firsts), rows, self.samples_per_token)

    def static_forward(self) -> StaticForward:
        return SnacForward(self)

    def _influence_frames(self) -> int:
        """How many frames away a frame's codes still change samples: the decoder's one-sided
        receptive field in frames, found by changing one frame's codes in the middle of a run."""
        span = 16
        generator = torch.Generator().manual_seed(0)
        frames = torch.randint(
            0, self.token_vocab_size, (1, 2 * span + 1, CODES_PER_FRAME), generator=generator
        )
        changed = frames.clone()
        changed[0, span] = (changed[0, span] + 1) % self.token_vocab_size
        difference = (self.decode(changed) - self.decode(frames))[0].abs()
        touched = torch.nonzero(difference > 0).flatten()
        if touched.numel() == 0:
            return 0
        reach = max(
            span * self.samples_per_token - int(touched[0]),
            int(touched[-1]) + 1 - (span + 1) * self.samples_per_token,
        )
        return math.ceil(reach / self.samples_per_token)


class SnacForward:
    """SNAC's decoder on codebooks and each block's positioned noise: fixed shapes, rows
    independent (the noise is an input, not drawn inside)."""

    def __init__(self, codec: SnacCodec) -> None:
        self.codec = codec
        self.samples_per_token = codec.samples_per_token

    def inputs(self, rows: Sequence[DecodeRow]) -> tuple[torch.Tensor, ...]:
        frames = torch.stack([row.tokens for row in rows])
        seeds = [int(row.state) for row in rows]
        firsts = [row.window.start - row.window.left for row in rows]
        return (*self.codec.codes(frames), *self.codec.noises(frames.shape[1], seeds, firsts))

    def forward(self, *inputs: torch.Tensor) -> torch.Tensor:
        books = len(self.codec.model.vq_strides)
        return self.codec.decode_codes(list(inputs[:books]), inputs[books:])


def write_config(directory: Path, **config: object) -> Path:
    """A SNAC config.json (the keyword arguments of `snac.SNAC`)."""
    directory.mkdir(parents=True, exist_ok=True)
    path = directory / "config.json"
    path.write_text(json.dumps(config, indent=2) + "\n")
    return path
