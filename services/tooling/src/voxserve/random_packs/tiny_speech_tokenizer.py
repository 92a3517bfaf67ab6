"""Random S3 speech tokenizer weights (`tokenizer.*` of `s3gen.safetensors`), tiny or full size.

The tensors carry the `tokenizer.` prefix, so a pack writer merges them into the S3Gen checkpoint
as they are. Scales keep the residual stream near unit variance and the FSQ projection inside
tanh's slope, so voiced input gives ids that change over time instead of one saturated id.
"""

from __future__ import annotations

import math

import torch

from voxserve.vocoder.codecs.s3gen.speech_tokenizer import (
    N_FFT,
    N_MELS,
    PREFIX,
    mel_filters,
    speech_tokenizer_shapes,
)

SPEECH_TOKENIZER_SIZES: dict[str, tuple[int, int]] = {"tiny": (128, 2), "full": (1280, 6)}
"""size -> (n_state, n_layers); heads are n_state / 64."""
# Residual branches write back at this fraction of unit scale, so six blocks do not swamp the
# convolutions' time-varying features.
BRANCH_GAIN = 0.5
# The FSQ projection lands z near [-1.5, 1.5]: all three digits occur, none dominates.
FSQ_GAIN = 1.5


def _init(key: str, shape: tuple[int, ...], generator: torch.Generator) -> torch.Tensor:
    name = key.removeprefix(PREFIX)
    if name == "_mel_filters":
        return mel_filters(N_MELS)
    if name == "window":
        return torch.hann_window(N_FFT)
    if name.endswith("_ln.weight"):
        return 1.0 + 0.1 * torch.randn(shape, generator=generator)
    if name.endswith(".bias"):
        return 0.02 * torch.randn(shape, generator=generator)
    fan_in = math.prod(shape[1:])
    gain = 1.0
    if name.endswith(("attn.out.weight", "mlp.2.weight", "fsmn_block.weight")):
        gain = BRANCH_GAIN
    elif name.endswith("project_down.weight"):
        gain = FSQ_GAIN
    elif name == "encoder.conv1.weight":
        gain = 2.0  # log-mel values are small (a few tenths around the utterance's level)
    return gain * torch.randn(shape, generator=generator) / math.sqrt(fan_in)


def speech_tokenizer_tensors(seed: int, size: str) -> dict[str, torch.Tensor]:
    """Random `tokenizer.*` tensors (float32, the two mel buffers included) for size "tiny"
    (n_state 128, 2 heads, 2 layers) or "full" (1280, 20 heads, 6 layers)."""
    if size not in SPEECH_TOKENIZER_SIZES:
        raise ValueError(f"size must be one of {', '.join(SPEECH_TOKENIZER_SIZES)}, got {size!r}")
    n_state, n_layers = SPEECH_TOKENIZER_SIZES[size]
    generator = torch.Generator().manual_seed(seed)
    return {
        key: _init(key, shape, generator).float().contiguous()
        for key, shape in sorted(speech_tokenizer_shapes(n_state, n_layers).items())
    }
