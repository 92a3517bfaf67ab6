"""A small random BiCodec in the upstream pack layout, for tests and the embedded default.

Same config keys, tensor names and token rates as Spark-TTS-0.5B's `BiCodec/`; only the channel
sizes are small (the speaker encoder's ECAPA-TDNN has fixed upstream widths, so it is full size
in every pack). Weights are stored in the old `weight_g`/`weight_v` form like the published file,
encode side included: the speaker and semantic paths, `quantizer.cluster_size` and the mel
buffers (the training-only `postnet.*` and the x-vector branch are left out).
"""

from __future__ import annotations

import copy
import math
import re
from pathlib import Path
from typing import Any

import numpy as np
import torch
import yaml
from safetensors.torch import save_file
from torch import nn

from voxserve.vocoder.codecs.bicodec import BiCodecConfig, checkpoint_shapes
from voxserve.vocoder.codecs.bicodec.reference_audio import normalize_volume, ref_clip_samples
from voxserve.vocoder.codecs.bicodec.semantic_encoder import semantic_checkpoint_shapes
from voxserve.vocoder.codecs.bicodec.speaker_encoder import (
    MEL_BUFFERS,
    build_meta_speaker_tokenizer,
    speaker_checkpoint_shapes,
)

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

# The speaker path's BatchNorm statistics are measured on a few synthetic voices (harmonics of a
# random pitch under a syllable-rate envelope), so that every layer sees the unit-scale inputs a
# trained model's statistics give it; made-up statistics leave the global ids nearly constant.
_CALIBRATION_VOICES = 4
_CALIBRATION_PITCH_HZ = (90.0, 260.0)
_CALIBRATION_HARMONICS = 12


def encode_side_shapes(config: BiCodecConfig) -> dict[str, tuple[int, ...]]:
    """The encode side's tensors that the decode path does not share."""
    shapes = {**semantic_checkpoint_shapes(config), **speaker_checkpoint_shapes(config)}
    shapes["quantizer.cluster_size"] = (config.quantizer.codebook_size,)
    decode = checkpoint_shapes(config)
    return {key: shape for key, shape in shapes.items() if key not in decode}


def _init_encode_tensor(key: str, shape: tuple[int, ...], gen: torch.Generator) -> torch.Tensor | None:
    """Encode-side values `_init_tensor` does not give (None: use it)."""
    name = key.rsplit(".", 1)[-1]
    if name == "num_batches_tracked":
        return torch.tensor(1, dtype=torch.int64)
    if name == "running_mean":
        return torch.zeros(shape)
    if name == "running_var":
        return torch.ones(shape)
    if key == "quantizer.cluster_size":
        return torch.rand(shape, generator=gen) * 100.0
    if key.endswith("perceiver_sampler.latents"):
        return torch.randn(shape, generator=gen)
    if key.endswith("perceiver_sampler.norm.gamma"):
        return 0.8 + 0.4 * torch.rand(shape, generator=gen)
    return None


def _calibration_voices(samples: int, sample_rate: int, gen: torch.Generator) -> torch.Tensor:
    """[_CALIBRATION_VOICES, samples] volume-normalised voiced signals."""
    t = np.arange(samples) / sample_rate
    voices = []
    for _ in range(_CALIBRATION_VOICES):
        low, high = _CALIBRATION_PITCH_HZ
        pitch = low + (high - low) * float(torch.rand((), generator=gen))
        vibrato = 1 + 0.03 * np.sin(2 * np.pi * 5 * t)
        phase = 2 * np.pi * np.cumsum(pitch * vibrato) / sample_rate
        wave = sum(np.sin(k * phase) / k for k in range(1, _CALIBRATION_HARMONICS + 1))
        envelope = 0.5 + 0.5 * np.sin(2 * np.pi * (2 + 4 * float(torch.rand((), generator=gen))) * t) ** 2
        noise = 0.05 * torch.randn(samples, generator=gen, dtype=torch.float64).numpy()
        voices.append(normalize_volume(wave * envelope + noise))
    return torch.from_numpy(np.stack(voices)).float()


def _calibrate_batch_norms(
    state: dict[str, torch.Tensor], config: BiCodecConfig, gen: torch.Generator
) -> None:
    """Set the speaker path's BatchNorm running statistics to those of synthetic voices."""
    tokenizer = build_meta_speaker_tokenizer(config)
    own = tokenizer.state_dict()
    tokenizer.load_state_dict({k: state[k].clone() if k in state else own[k] for k in own}, assign=True)
    norms = [m for m in tokenizer.modules() if isinstance(m, nn.BatchNorm1d)]
    for m in norms:
        m.reset_running_stats()
        m.momentum = None  # one batch: the statistics are exactly that batch's
    clips = _calibration_voices(
        ref_clip_samples(config.sample_rate, config.samples_per_token), config.sample_rate, gen
    )
    tokenizer.train()
    with torch.no_grad():
        tokenizer.speaker_encoder(tokenizer.mel(clips).transpose(1, 2))
    for name, buffer in tokenizer.named_buffers():
        if name.endswith(("running_mean", "running_var", "num_batches_tracked")):
            state[name] = buffer.clone()


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
    # The encode side draws after the whole decode side, so decode weights do not depend on it.
    encode = encode_side_shapes(config)
    mel = build_meta_speaker_tokenizer(config).state_dict()
    for key in sorted(encode):
        if key in MEL_BUFFERS:
            state[key] = mel[key].clone()
            continue
        value = _init_encode_tensor(key, encode[key], gen)
        state[key] = value if value is not None else _init_tensor(key, encode, config.decoder.rates, gen)
    _calibrate_batch_norms(state, config, gen)
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
