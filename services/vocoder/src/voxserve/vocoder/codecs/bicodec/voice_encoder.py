"""Spark-TTS enrolment: reference audio -> 32 global ids (+ the reference's semantic ids).

At pack load only file listings and safetensors headers are read, to know which parts are
missing; the weights load on the first encode that needs them, so a vocoder that never enrols
pays no memory for the encoders. Encoding runs in worker threads: loading is guarded by a lock,
and the loaded modules are only read afterwards.
"""

from __future__ import annotations

import threading
from collections.abc import Iterable
from pathlib import Path

import numpy as np
import torch
import yaml
from safetensors import safe_open

from voxserve.vocoder.codecs.base import EncodedVoice, EncoderUnavailable
from voxserve.vocoder.codecs.bicodec.config import BiCodecConfig, BiCodecLoadError
from voxserve.vocoder.codecs.bicodec.reference_audio import (
    REF_SEGMENT_SECONDS,
    normalize_volume,
    ref_clip_samples,
    reference_clip,
)
from voxserve.vocoder.codecs.bicodec.semantic_encoder import (
    SemanticEncoder,
    load_semantic_encoder,
    semantic_checkpoint_shapes,
)
from voxserve.vocoder.codecs.bicodec.speaker_encoder import (
    SpeakerTokenizer,
    load_speaker_tokenizer,
    speaker_checkpoint_problems,
)
from voxserve.vocoder.codecs.bicodec.wav2vec2_features import (
    WAV2VEC2_DIR,
    Wav2Vec2Features,
    missing_wav2vec2_files,
)
from voxserve.vocoder.codecs.checkpoint import LEGACY, PARAMETRIZED

CONFIG_FILE = "BiCodec/config.yaml"
WEIGHTS_FILE = "BiCodec/model.safetensors"
PACK_CONFIG_FILE = "config.yaml"
MIN_REFERENCE_SAMPLES = 400
"""wav2vec2's receptive field: shorter audio gives no semantic frame."""
ENCODER_DTYPE = torch.float32
"""Upstream encodes in float32, and the ids come out of roundings and nearest neighbours, which a
lower precision would move; the decode dtype does not apply."""


def _header_shapes(path: Path) -> dict[str, tuple[int, ...]]:
    """Key -> shape from a safetensors header (no tensor data is read); empty if unreadable."""
    try:
        with safe_open(str(path), framework="pt", device="cpu") as f:
            return {key: tuple(f.get_slice(key).get_shape()) for key in f.keys()}
    except (OSError, ValueError, RuntimeError):
        return {}


def _either_naming(shapes: dict[str, tuple[int, ...]]) -> dict[str, tuple[int, ...]]:
    """The header with `parametrizations.weight.original0/1` keys also under their weight_g/v names."""
    out = dict(shapes)
    for key, shape in shapes.items():
        for legacy, parametrized in zip(LEGACY, PARAMETRIZED, strict=True):
            if key.endswith("." + parametrized):
                out.setdefault(key.removesuffix(parametrized) + legacy, shape)
    return out


def _tensor_problems(label: str, missing: list[str], misshapen: list[str], limit: int = 5) -> Iterable[str]:
    if missing:
        shown = ", ".join(missing[:limit]) + (
            f", ... ({len(missing) - limit} more)" if len(missing) > limit else ""
        )
        yield f"{WEIGHTS_FILE}: {len(missing)} {label} tensor(s) ({shown})"
    if misshapen:
        yield f"{WEIGHTS_FILE}: {len(misshapen)} misshapen {label} tensor(s) ({'; '.join(misshapen[:limit])})"


def missing_encoder_parts(pack: Path, config: BiCodecConfig) -> list[str]:
    """What enrolment lacks in this pack, as paths relative to the pack (empty: it can encode):
    wav2vec2 files, the config's `encoder` section, speaker- and semantic-path tensors."""
    header = _header_shapes(pack / WEIGHTS_FILE)
    missing, misshapen = speaker_checkpoint_problems(header, config)
    speaker = list(_tensor_problems("speaker-encoder", missing, misshapen))
    parts = [*missing_wav2vec2_files(pack), *speaker]
    if config.encoder is None:
        return [*parts, f"{CONFIG_FILE}: the audio_tokenizer.encoder section"]
    found = _either_naming(header)
    missing, misshapen = [], []
    for key, shape in semantic_checkpoint_shapes(config).items():
        if key not in found:
            missing.append(key)
        elif found[key] != shape:
            misshapen.append(f"{key}: expected {shape}, found {found[key]}")
    return [*parts, *_tensor_problems("semantic-encoder", missing, misshapen)]


def _pack_settings(pack: Path) -> tuple[float, bool]:
    """`ref_segment_duration` and `volume_normalize` of `<pack>/config.yaml` (upstream defaults)."""
    path = pack / PACK_CONFIG_FILE
    top = yaml.safe_load(path.read_text(encoding="utf-8")) if path.is_file() else None
    top = top if isinstance(top, dict) else {}
    return float(top.get("ref_segment_duration", REF_SEGMENT_SECONDS)), bool(
        top.get("volume_normalize", True)
    )


class BiCodecVoiceEncoder:
    """The speaker path (6 s clip -> global ids) and the semantic path (whole reference ->
    wav2vec2 features -> BiCodec encoder -> semantic ids) of one pack."""

    def __init__(
        self,
        pack_dir: str | Path,
        config: BiCodecConfig,
        *,
        device: str | torch.device = "cpu",
        clip_seconds: float = REF_SEGMENT_SECONDS,
        volume_normalize: bool = True,
    ) -> None:
        self.pack_dir = Path(pack_dir)
        self.config = config
        self.device = torch.device(device)
        self.clip_samples = ref_clip_samples(config.sample_rate, config.samples_per_token, clip_seconds)
        self.volume_normalize = volume_normalize
        # Upstream enrols with both paths, so a pack lacking any part cannot enrol, whatever an
        # encode asks for.
        self.missing = missing_encoder_parts(self.pack_dir, config)
        self._lock = threading.Lock()
        self._speaker: SpeakerTokenizer | None = None
        self._semantic: tuple[Wav2Vec2Features, SemanticEncoder] | None = None

    @classmethod
    def from_pack(
        cls, pack_dir: str | Path, config: BiCodecConfig, device: str | torch.device = "cpu"
    ) -> BiCodecVoiceEncoder:
        """With the clip length and volume setting of `<pack>/config.yaml`."""
        seconds, normalize = _pack_settings(Path(pack_dir))
        return cls(pack_dir, config, device=device, clip_seconds=seconds, volume_normalize=normalize)

    @property
    def loaded(self) -> bool:
        return self._speaker is not None or self._semantic is not None

    def _speaker_tokenizer(self) -> SpeakerTokenizer:
        with self._lock:
            if self._speaker is None:
                self._speaker = load_speaker_tokenizer(self.pack_dir / WEIGHTS_FILE, self.config, self.device)
            return self._speaker

    def _semantic_path(self) -> tuple[Wav2Vec2Features, SemanticEncoder]:
        with self._lock:
            if self._semantic is None:
                features = Wav2Vec2Features.from_dir(
                    self.pack_dir / WAV2VEC2_DIR, device=self.device, dtype=ENCODER_DTYPE
                )
                encoder = load_semantic_encoder(
                    self.pack_dir / WEIGHTS_FILE, self.config, device=self.device, dtype=ENCODER_DTYPE
                )
                self._semantic = (features, encoder)
            return self._semantic

    def encode(self, audio: np.ndarray, reference_tokens: bool) -> EncodedVoice:
        """audio: mono at the codec's rate (float, at least 400 samples). Global ids come from the
        first 6 s of the volume-normalised reference (repeated if shorter); semantic ids, when
        asked for, from all of it. Raises EncoderUnavailable naming what the pack lacks."""
        if self.missing:
            raise EncoderUnavailable(
                f"this vocoder's pack cannot encode voices; it lacks: {'; '.join(self.missing)}"
            )
        wav = np.asarray(audio, dtype=np.float64)
        if self.volume_normalize:
            wav = normalize_volume(wav)
        clip = torch.from_numpy(reference_clip(wav, self.clip_samples)).unsqueeze(0).float()
        try:
            speaker = self._speaker_tokenizer()
            semantic = self._semantic_path() if reference_tokens else None
        except BiCodecLoadError as exc:
            # Files that are there but unreadable: the pack cannot enrol, as with missing ones.
            raise EncoderUnavailable(f"this vocoder's pack cannot encode voices: {exc}") from exc
        with torch.inference_mode():
            global_ids = speaker.global_ids(clip).tolist()
            semantic_ids: list[int] = []
            if semantic is not None:
                features, encoder = semantic
                semantic_ids = encoder.semantic_ids(features(wav)).tolist()
        return EncodedVoice(global_ids=tuple(global_ids), reference_semantic_ids=tuple(semantic_ids))
