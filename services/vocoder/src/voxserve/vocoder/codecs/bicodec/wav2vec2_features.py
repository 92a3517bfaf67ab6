"""The semantic path's input: a pack's `wav2vec2-large-xlsr-53/` turned into BiCodec encoder features.

Upstream (`BiCodecTokenizer`) normalises the wave as `Wav2Vec2FeatureExtractor` does, runs
`Wav2Vec2Model` and averages hidden states 11, 14 and 16. Later layers cannot change that average,
so only the first 16 are built and run.
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import numpy as np
import torch
from safetensors import safe_open

from voxserve.vocoder.codecs.base import CodecInputError
from voxserve.vocoder.codecs.bicodec.config import BiCodecLoadError
from voxserve.vocoder.codecs.bicodec.wav2vec2 import (
    Wav2Vec2Config,
    Wav2Vec2Trunk,
    checkpoint_entries,
    fold_pos_conv_weight,
)
from voxserve.vocoder.codecs.checkpoint import LEGACY, PARAMETRIZED

WAV2VEC2_DIR = "wav2vec2-large-xlsr-53"
FEATURE_LAYERS = (11, 14, 16)
CONFIG_FILE = "config.json"
PREPROCESSOR_FILE = "preprocessor_config.json"
WEIGHT_FILES = ("model.safetensors", "pytorch_model.bin")
"""Either holds the weights; the first present is read."""
PREFIX = "wav2vec2."
"""Checkpoints of `Wav2Vec2ForPreTraining` (facebook's release) name the model's tensors so."""
SAMPLE_RATE = 16000
NORM_EPS = 1e-7


def missing_wav2vec2_files(pack_dir: str | Path) -> list[str]:
    """The files the feature extractor needs that a pack lacks, relative to the pack."""
    directory = Path(pack_dir) / WAV2VEC2_DIR
    missing = [
        f"{WAV2VEC2_DIR}/{name}"
        for name in (CONFIG_FILE, PREPROCESSOR_FILE)
        if not (directory / name).is_file()
    ]
    if not any((directory / name).is_file() for name in WEIGHT_FILES):
        missing.append(f"{WAV2VEC2_DIR}/pytorch_model.bin")
    return missing


def normalize_wave(wave: np.ndarray) -> np.ndarray:
    """Float32, zero mean, unit (population) variance, as `Wav2Vec2FeatureExtractor(do_normalize=True)`."""
    x = np.asarray(wave).astype(np.float32)
    return (x - x.mean()) / np.sqrt(x.var() + NORM_EPS)


def _read_json(path: Path) -> Mapping[str, Any]:
    try:
        raw = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, ValueError) as exc:
        raise BiCodecLoadError(f"wav2vec2: cannot read {path}: {exc}") from exc
    if not isinstance(raw, Mapping):
        raise BiCodecLoadError(f"wav2vec2: {path} is not a JSON object")
    return raw


def _canonical(key: str) -> str:
    """A file key as the trunk names it: no model prefix, weight norm as `weight_g`/`weight_v`."""
    key = key.removeprefix(PREFIX)
    for legacy, parametrized in zip(LEGACY, PARAMETRIZED, strict=True):
        if key.endswith("." + parametrized):
            return key[: -len(parametrized)] + legacy
    return key


def _read_tensors(path: Path, wanted: set[str]) -> dict[str, torch.Tensor]:
    """The tensors of `wanted` (canonical keys) found in a safetensors or torch pickle file."""
    if path.suffix == ".safetensors":
        with safe_open(str(path), framework="pt", device="cpu") as f:
            return {_canonical(k): f.get_tensor(k) for k in f.keys() if _canonical(k) in wanted}
    try:
        state = torch.load(path, map_location="cpu", weights_only=True, mmap=True)
    except RuntimeError:
        # Files from torch < 1.6 (not zip archives) cannot be memory-mapped.
        state = torch.load(path, map_location="cpu", weights_only=True)
    if not isinstance(state, Mapping):
        raise BiCodecLoadError(f"wav2vec2: {path} does not hold a state dict")
    return {
        _canonical(k): v for k, v in state.items() if _canonical(k) in wanted and isinstance(v, torch.Tensor)
    }


def load_wav2vec2_trunk(
    directory: str | Path,
    num_layers: int,
    *,
    device: str | torch.device = "cpu",
    dtype: torch.dtype = torch.float32,
) -> tuple[Wav2Vec2Config, Wav2Vec2Trunk]:
    """The first `num_layers` layers of the model in `directory`, eval mode, without gradients.

    Tensors the trunk does not use (later layers, pre-training heads) are ignored. Raises
    BiCodecLoadError naming missing or misshapen tensors.
    """
    directory = Path(directory)
    config = Wav2Vec2Config.from_dict(_read_json(directory / CONFIG_FILE))
    weights = next((directory / n for n in WEIGHT_FILES if (directory / n).is_file()), None)
    if weights is None:
        raise BiCodecLoadError(f"wav2vec2: {directory} has none of {', '.join(WEIGHT_FILES)}")
    with torch.device("meta"):
        model = Wav2Vec2Trunk(config, num_layers)
    entries = list(checkpoint_entries(model, LEGACY))
    tensors = _read_tensors(weights, {key for key, _, _ in entries})
    missing = [key for key, _, _ in entries if key not in tensors]
    mismatched = [
        f"{key}: expected {shape}, found {tuple(tensors[key].shape)}"
        for key, _, shape in entries
        if key in tensors and tuple(tensors[key].shape) != shape
    ]
    if missing or mismatched:
        parts = [f"{len(missing)} missing tensor(s): {', '.join(missing[:20])}"] if missing else []
        parts += [f"{len(mismatched)} shape mismatch(es): {'; '.join(mismatched[:20])}"] if mismatched else []
        raise BiCodecLoadError(f"wav2vec2 checkpoint {weights}: " + " | ".join(parts))
    state: dict[str, torch.Tensor] = {}
    for key, name, _ in entries:
        if key.endswith("." + LEGACY[0]):
            continue
        tensor = tensors[key]
        if key.endswith("." + LEGACY[1]):
            tensor = fold_pos_conv_weight(tensors[key[: -len(LEGACY[1])] + LEGACY[0]], tensor)
        state[name] = tensor.to(device=device, dtype=dtype)
    model.load_state_dict(state, strict=True, assign=True)
    return config, model.eval().requires_grad_(False)


class Wav2Vec2Features:
    """16 kHz wave -> the mean of wav2vec2 hidden states 11, 14 and 16, [1, T, hidden]."""

    def __init__(self, config: Wav2Vec2Config, model: Wav2Vec2Trunk, *, do_normalize: bool = True) -> None:
        self.config = config
        self.model = model
        self.do_normalize = do_normalize
        param = next(model.parameters())
        self.device = param.device
        self.dtype = param.dtype

    @classmethod
    def from_dir(
        cls, path: str | Path, *, device: str | torch.device = "cpu", dtype: torch.dtype = torch.float32
    ) -> Wav2Vec2Features:
        """Load a `wav2vec2-large-xlsr-53/` directory (config, preprocessor config, weights)."""
        path = Path(path)
        preprocessor = _read_json(path / PREPROCESSOR_FILE)
        if int(preprocessor.get("sampling_rate", SAMPLE_RATE)) != SAMPLE_RATE:
            raise BiCodecLoadError(f"wav2vec2: {path / PREPROCESSOR_FILE} sampling_rate is not {SAMPLE_RATE}")
        if int(preprocessor.get("feature_size", 1)) != 1:
            raise BiCodecLoadError(f"wav2vec2: {path / PREPROCESSOR_FILE} feature_size is not 1")
        config, model = load_wav2vec2_trunk(path, max(FEATURE_LAYERS), device=device, dtype=dtype)
        return cls(config, model, do_normalize=bool(preprocessor.get("do_normalize", True)))

    def frame_count(self, num_samples: int) -> int:
        """Frames for a wave of `num_samples` (0 below the receptive field)."""
        field, hop = self.config.receptive_field, self.config.samples_per_frame
        return 0 if num_samples < field else (num_samples - field) // hop + 1

    def __call__(self, wave: np.ndarray) -> torch.Tensor:
        """wave: [L] at 16 kHz (float64 as read) -> features [1, T, hidden], T = frame_count(L)."""
        wave = np.asarray(wave)
        if wave.ndim != 1:
            raise CodecInputError(f"wav2vec2 features: the wave must be 1-D, got shape {wave.shape}")
        if len(wave) < self.config.receptive_field:
            raise CodecInputError(
                f"wav2vec2 features: {len(wave)} samples is shorter than one frame "
                f"({self.config.receptive_field} samples at {SAMPLE_RATE} Hz)"
            )
        values = normalize_wave(wave) if self.do_normalize else wave.astype(np.float32)
        x = torch.from_numpy(values).to(device=self.device, dtype=self.dtype)[None]
        with torch.no_grad():
            return self.model.mean_hidden_states(x, FEATURE_LAYERS)
