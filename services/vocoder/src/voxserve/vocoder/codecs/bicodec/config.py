"""BiCodec hyper-parameters, read from `BiCodec/config.yaml` (key `audio_tokenizer`)."""

from __future__ import annotations

import dataclasses
import math
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import yaml


class BiCodecLoadError(ValueError):
    """A BiCodec config or checkpoint that cannot be used; the message names what is wrong."""


@dataclass(frozen=True)
class QuantizerConfig:
    input_dim: int
    codebook_size: int
    codebook_dim: int


@dataclass(frozen=True)
class SpeakerEncoderConfig:
    out_dim: int
    latent_dim: int
    token_num: int
    fsq_levels: tuple[int, ...]
    fsq_num_quantizers: int = 1
    input_dim: int = 128
    """Mel bands the speaker encoder reads (enrolment only)."""

    @property
    def global_vocab_size(self) -> int:
        return math.prod(self.fsq_levels)


@dataclass(frozen=True)
class PrenetConfig:
    input_channels: int
    vocos_dim: int
    vocos_intermediate_dim: int
    vocos_num_layers: int
    out_channels: int
    condition_dim: int
    sample_ratios: tuple[int, ...] = (1, 1)
    use_tanh_at_final: bool = False


@dataclass(frozen=True)
class EncoderConfig:
    """The semantic encoder (`encoder`): wav2vec2 features -> latent frames at the token rate."""

    input_channels: int
    vocos_dim: int
    vocos_intermediate_dim: int
    vocos_num_layers: int
    out_channels: int
    sample_ratios: tuple[int, ...] = (1, 1)


@dataclass(frozen=True)
class MelConfig:
    """`mel_params`: the speaker encoder's mel front end (enrolment only); published defaults."""

    sample_rate: int = 16000
    n_fft: int = 1024
    win_length: int = 640
    hop_length: int = 320
    mel_fmin: float = 10.0
    mel_fmax: float | None = None
    num_mels: int = 128


@dataclass(frozen=True)
class WaveGeneratorConfig:
    input_channel: int
    channels: int
    rates: tuple[int, ...]
    kernel_sizes: tuple[int, ...]


def _read_section(raw: Mapping[str, Any], name: str, cls: type[Any]) -> Any:
    section = raw.get(name)
    if not isinstance(section, Mapping):
        raise BiCodecLoadError(f"BiCodec config: audio_tokenizer.{name} is missing or not a mapping")
    values: dict[str, Any] = {}
    for field in dataclasses.fields(cls):
        if field.name in section:
            value = section[field.name]
            values[field.name] = tuple(value) if isinstance(value, list) else value
        elif field.default is dataclasses.MISSING:
            raise BiCodecLoadError(f"BiCodec config: audio_tokenizer.{name}.{field.name} is missing")
    return cls(**values)


@dataclass(frozen=True)
class BiCodecConfig:
    """Decode-path hyper-parameters of a BiCodec `config.yaml` (key `audio_tokenizer`)."""

    quantizer: QuantizerConfig
    speaker_encoder: SpeakerEncoderConfig
    prenet: PrenetConfig
    decoder: WaveGeneratorConfig
    sample_rate: int = 16000
    encoder: EncoderConfig | None = None
    """None: the config has no `encoder` section (a decode-only pack)."""
    mel: MelConfig = MelConfig()

    def __post_init__(self) -> None:
        q, s, p, d = self.quantizer, self.speaker_encoder, self.prenet, self.decoder
        checks = [
            (q.input_dim == p.input_channels, "quantizer.input_dim must equal prenet.input_channels"),
            (p.condition_dim == s.out_dim, "prenet.condition_dim must equal speaker_encoder.out_dim"),
            (p.out_channels == s.out_dim, "prenet.out_channels must equal speaker_encoder.out_dim"),
            (d.input_channel == p.out_channels, "decoder.input_channel must equal prenet.out_channels"),
            (all(r == 1 for r in p.sample_ratios), "only prenet.sample_ratios of 1 are supported"),
            (s.fsq_num_quantizers == 1, "only speaker_encoder.fsq_num_quantizers 1 is supported"),
            (len(s.fsq_levels) > 0 and all(n >= 2 for n in s.fsq_levels), "fsq_levels must be >= 2"),
            (len(d.rates) == len(d.kernel_sizes) > 0, "decoder.rates and kernel_sizes must pair up"),
            # (k - s) even is what makes the transposed convolution give exactly s * T samples.
            (
                all((k - r) % 2 == 0 and k >= r for k, r in zip(d.kernel_sizes, d.rates, strict=False)),
                "decoder.kernel_sizes[i] - rates[i] must be even and >= 0",
            ),
            (d.channels % 2 ** len(d.rates) == 0, "decoder.channels must halve once per rate"),
            (self.mel.sample_rate == self.sample_rate, "mel_params.sample_rate must be the sample rate"),
            (s.input_dim == self.mel.num_mels, "speaker_encoder.input_dim must equal mel_params.num_mels"),
        ]
        if (e := self.encoder) is not None:
            checks += [
                (e.out_channels == q.input_dim, "encoder.out_channels must equal quantizer.input_dim"),
                (all(r == 1 for r in e.sample_ratios), "only encoder.sample_ratios of 1 are supported"),
            ]
        for ok, message in checks:
            if not ok:
                raise BiCodecLoadError(f"BiCodec config: {message}")

    @property
    def samples_per_token(self) -> int:
        return math.prod(self.decoder.rates)

    @classmethod
    def from_dict(cls, raw: Mapping[str, Any]) -> BiCodecConfig:
        """Build from the parsed `config.yaml` (either the whole file or its `audio_tokenizer`)."""
        tokenizer = raw.get("audio_tokenizer", raw)
        mel = tokenizer.get("mel_params") or {}
        mel_fields = {f.name for f in dataclasses.fields(MelConfig)}
        return cls(
            quantizer=_read_section(tokenizer, "quantizer", QuantizerConfig),
            speaker_encoder=_read_section(tokenizer, "speaker_encoder", SpeakerEncoderConfig),
            prenet=_read_section(tokenizer, "prenet", PrenetConfig),
            decoder=_read_section(tokenizer, "decoder", WaveGeneratorConfig),
            sample_rate=int(mel.get("sample_rate", 16000)),
            encoder=_read_section(tokenizer, "encoder", EncoderConfig) if "encoder" in tokenizer else None,
            mel=MelConfig(**{k: v for k, v in mel.items() if k in mel_fields}),
        )

    @classmethod
    def from_yaml(cls, path: str | Path) -> BiCodecConfig:
        with open(path, encoding="utf-8") as f:
            raw = yaml.safe_load(f)
        if not isinstance(raw, Mapping):
            raise BiCodecLoadError(f"BiCodec config {path} is not a mapping")
        return cls.from_dict(raw)

    @classmethod
    def full_size(cls) -> BiCodecConfig:
        """The published Spark-TTS-0.5B values."""
        return cls(
            quantizer=QuantizerConfig(input_dim=1024, codebook_size=8192, codebook_dim=8),
            speaker_encoder=SpeakerEncoderConfig(
                out_dim=1024, latent_dim=128, token_num=32, fsq_levels=(4, 4, 4, 4, 4, 4)
            ),
            prenet=PrenetConfig(
                input_channels=1024,
                vocos_dim=384,
                vocos_intermediate_dim=2048,
                vocos_num_layers=12,
                out_channels=1024,
                condition_dim=1024,
            ),
            decoder=WaveGeneratorConfig(
                input_channel=1024, channels=1536, rates=(8, 5, 4, 2), kernel_sizes=(16, 11, 8, 4)
            ),
            encoder=EncoderConfig(
                input_channels=1024,
                vocos_dim=384,
                vocos_intermediate_dim=2048,
                vocos_num_layers=12,
                out_channels=1024,
            ),
        )
