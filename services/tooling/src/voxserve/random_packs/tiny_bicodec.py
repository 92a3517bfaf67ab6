"""A small random BiCodec in the upstream pack layout, for tests and the embedded default.

Same config keys, tensor names and token rates as Spark-TTS-0.5B's `BiCodec/`; only the channel
sizes are small. Weights are stored in the old `weight_g`/`weight_v` form like the published file.
"""

from __future__ import annotations

import copy
import math
import re
from pathlib import Path
from typing import Any

import torch
import yaml
from safetensors.torch import save_file

from voxserve.vocoder.codecs.bicodec import BiCodecConfig, checkpoint_shapes

TINY_BICODEC_CONFIG: dict[str, Any] = {
    "audio_tokenizer": {
        "mel_params": {
            "sample_rate": 16000,
            "n_fft": 1024,
            "win_length": 640,
            "hop_length": 320,
            "mel_fmin": 10,
            "mel_fmax": None,
            "num_mels": 128,
        },
        "quantizer": {
            "input_dim": 64,
            "codebook_size": 8192,
            "codebook_dim": 8,
            "commitment": 0.25,
            "codebook_loss_weight": 2.0,
            "use_l2_normlize": True,
            "threshold_ema_dead_code": 0.2,
        },
        "speaker_encoder": {
            "input_dim": 128,
            "out_dim": 64,
            "latent_dim": 16,
            "token_num": 32,
            "fsq_levels": [4, 4, 4, 4, 4, 4],
            "fsq_num_quantizers": 1,
        },
        "prenet": {
            "input_channels": 64,
            "vocos_dim": 32,
            "vocos_intermediate_dim": 64,
            "vocos_num_layers": 3,
            "out_channels": 64,
            "condition_dim": 64,
            "sample_ratios": [1, 1],
            "use_tanh_at_final": False,
        },
        "encoder": {
            "input_channels": 32,
            "vocos_dim": 32,
            "vocos_intermediate_dim": 64,
            "vocos_num_layers": 2,
            "out_channels": 64,
            "sample_ratios": [1, 1],
        },
        "decoder": {
            "input_channel": 64,
            "channels": 64,
            "rates": [8, 5, 4, 2],
            "kernel_sizes": [16, 11, 8, 4],
        },
    }
}


def _full_size_config() -> dict[str, Any]:
    """The published Spark-TTS-0.5B `BiCodec/config.yaml` values, in the same layout."""
    config = copy.deepcopy(TINY_BICODEC_CONFIG)
    tokenizer = config["audio_tokenizer"]
    tokenizer["quantizer"]["input_dim"] = 1024
    tokenizer["speaker_encoder"].update(out_dim=1024, latent_dim=128)
    tokenizer["prenet"].update(
        input_channels=1024,
        vocos_dim=384,
        vocos_intermediate_dim=2048,
        vocos_num_layers=12,
        out_channels=1024,
        condition_dim=1024,
    )
    tokenizer["encoder"].update(
        input_channels=1024,
        vocos_dim=384,
        vocos_intermediate_dim=2048,
        vocos_num_layers=12,
        out_channels=1024,
    )
    tokenizer["decoder"].update(input_channel=1024, channels=1536)
    return config


FULL_BICODEC_CONFIG: dict[str, Any] = _full_size_config()

TINY_PACK_CONFIG: dict[str, Any] = {
    "sample_rate": 16000,
    "highpass_cutoff_freq": 40,
    "latent_hop_length": 320,
    "ref_segment_duration": 6,
    "volume_normalize": True,
}

# Gains on the folded weight norms (`weight_g`), so the output is neither silent nor saturated.
_TRANSPOSED_CONV = re.compile(r"^decoder\.model\.(\d+)\.block\.1$")
_RESIDUAL_OUT_CONV = re.compile(r"^decoder\.model\.\d+\.block\.[2-4]\.block\.3$")
_RESIDUAL_GAIN = 0.3  # keeps three stacked residual units from tripling the scale per block
_FINAL_CONV = "decoder.model.6"
_FINAL_CONV_GAIN = 0.08  # keeps the final tanh mostly in its linear range

# Token-rate kernels (k=7, prenet) weighted towards their centre: flat random kernels at these small
# sizes let far tokens matter much longer than the spec reports for the full-size model (10 tokens
# of context -> ~2e-3); with this the tiny pack decays about as fast, so the measured context (and
# the vocoder's lookahead) on the default pack stays realistic.
_CENTRE_ENVELOPE_WIDTH = 0.7

# Tensors a real file carries for the encode side; the decoder must skip them.


def _encode_only_shapes(config: BiCodecConfig) -> dict[str, tuple[int, ...]]:
    """A few encode-path tensors, so that loaders are seen to skip them."""
    q = config.quantizer
    return {
        "quantizer.cluster_size": (q.codebook_size,),
        "quantizer.in_project.weight_g": (q.codebook_dim, 1, 1),
        "quantizer.in_project.weight_v": (q.codebook_dim, q.input_dim, 1),
        "encoder.dummy.weight": (4, 4),
    }


def _init_tensor(
    key: str, shapes: dict[str, tuple[int, ...]], rates: tuple[int, ...], gen: torch.Generator
) -> torch.Tensor:
    """A random value whose scale keeps activations in a sensible range through the whole path."""
    shape = shapes[key]

    def normal(std: float) -> torch.Tensor:
        return torch.randn(shape, generator=gen) * std

    def uniform(low: float, high: float) -> torch.Tensor:
        return low + (high - low) * torch.rand(shape, generator=gen)

    name = key.rsplit(".", 1)[-1]
    if name == "alpha":
        return uniform(0.5, 1.5)
    if name == "gamma":
        return uniform(0.1, 0.5)
    if name == "weight_v":
        # Only its direction survives folding.
        return normal(1.0)
    if name == "weight_g":
        # g is the norm of one folded slice: near 1, an ordinary conv gets entries of std 1/sqrt(fan-in).
        layer = key.removesuffix(".weight_g")
        gain = 1.0
        if match := _TRANSPOSED_CONV.match(layer):
            # A transposed conv [in, out, k] at stride s sums in * k / s inputs into each output.
            v_in, v_out = shapes[f"{layer}.weight_v"][:2]
            gain = math.sqrt(v_out * rates[int(match[1]) - 1] / v_in)
        elif _RESIDUAL_OUT_CONV.match(layer):
            gain = _RESIDUAL_GAIN
        elif layer == _FINAL_CONV:
            gain = _FINAL_CONV_GAIN
        return uniform(0.8, 1.2) * gain
    if key == "quantizer.codebook.weight":
        return normal(1.0)
    if ".norm.scale." in key:
        return uniform(0.9, 1.1) if name == "bias" else normal(0.05)
    if ".norm.shift." in key:
        return normal(0.05)
    if name == "bias":
        return normal(0.02)
    if len(shape) == 1:  # plain LayerNorm weights
        return uniform(0.8, 1.2)
    weight = normal(1.0 / math.sqrt(math.prod(shape[1:])))
    if key.startswith("prenet.") and len(shape) == 3:
        offsets = torch.arange(shape[-1]) - shape[-1] // 2
        weight = weight * torch.exp(-offsets.abs() / _CENTRE_ENVELOPE_WIDTH)
    return weight


def bicodec_state_dict(raw_config: dict[str, Any], seed: int) -> dict[str, torch.Tensor]:
    """Random checkpoint tensors for a BiCodec config in the upstream layout."""
    config = BiCodecConfig.from_dict(raw_config)
    shapes = checkpoint_shapes(config)
    gen = torch.Generator().manual_seed(seed)
    state = {key: _init_tensor(key, shapes, config.decoder.rates, gen) for key in sorted(shapes)}
    for key, shape in _encode_only_shapes(config).items():
        state[key] = torch.randn(shape, generator=gen)
    return state


def write_tiny_bicodec(pack_dir: Path, seed: int) -> None:
    """The tiny BiCodec of the embedded default pack (see `write_bicodec`)."""
    write_bicodec(pack_dir, seed, TINY_BICODEC_CONFIG)


def write_bicodec(pack_dir: Path, seed: int, raw_config: dict[str, Any]) -> None:
    """Write `<pack>/config.yaml`, `<pack>/BiCodec/config.yaml` and `<pack>/BiCodec/model.safetensors`."""
    pack_dir = Path(pack_dir)
    codec_dir = pack_dir / "BiCodec"
    codec_dir.mkdir(parents=True, exist_ok=True)
    (pack_dir / "config.yaml").write_text(yaml.safe_dump(TINY_PACK_CONFIG, sort_keys=True), encoding="utf-8")
    (codec_dir / "config.yaml").write_text(yaml.safe_dump(raw_config, sort_keys=True), encoding="utf-8")
    save_file(bicodec_state_dict(raw_config, seed), str(codec_dir / "model.safetensors"))
