"""The upstream decoders `bench decoders` times voxserve's against: each model from its own PyPI
package, with voxserve's random weights loaded into it by tensor name.

- SNAC: `snac.SNAC` from the `snac` package (the workspace's `bench-upstream` extra), built from
  the same config and given the state dict of voxserve's codec;
- S3Gen: Chatterbox's `S3Gen` from `chatterbox-tts`, given the tensors of the pack's
  `s3gen.safetensors` (upstream's own names). chatterbox-tts pins torch 2.6, so it cannot be an
  extra beside torch 2.13: `make upstream-decoders` installs it and what its S3Gen imports with
  `--no-deps` into build/upstream, for PYTHONPATH. Its S3Gen has only the published sizes.

A package that is missing, or does not import, gives no figure and says why; nothing of the
upstream code is copied here.
"""

from __future__ import annotations

import importlib.metadata
import warnings
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import torch
from safetensors.torch import load_file

from voxserve.vocoder.codecs.s3gen.voice import S3Voice
from voxserve.vocoder.codecs.snac.codec import SnacCodec

SNAC_INSTALL = "install it with: pip install -e '.[bench-upstream]'"
CHATTERBOX_INSTALL = "run `make upstream-decoders`, then put build/upstream on PYTHONPATH"
# Upstream's S3Gen also holds the enrolment encoders, which a decode never runs and the
# benchmark's pack does not carry.
S3GEN_ENCODER_PREFIXES = ("tokenizer.", "speaker_encoder.")

Decode = Callable[[list[Any], int], torch.Tensor]
"""(tokens as the vocoder receives them, seed) -> samples; upstream draws its own noise."""


@dataclass(frozen=True)
class Upstream:
    package: str | None
    """Distribution and version, e.g. "snac 1.2.1"; None when there is no upstream figure."""
    decode: Decode | None
    reason: str | None
    """Why there is no upstream figure."""


def _version(distribution: str) -> str | None:
    try:
        return importlib.metadata.version(distribution)
    except importlib.metadata.PackageNotFoundError:
        return None


def snac_model(codec: SnacCodec, config: dict[str, Any]) -> Any:
    """`snac.SNAC` of `config` holding the weights of voxserve's codec (strict: every name)."""
    with warnings.catch_warnings():
        # snac 1.2.1 scripts its Snake activation with torch.jit.script, which torch deprecates.
        warnings.simplefilter("ignore", DeprecationWarning)
        import snac

    model = snac.SNAC(**config)
    model.load_state_dict(codec.model.state_dict(), strict=True)
    return model.eval().requires_grad_(False)


def snac_upstream(codec: SnacCodec, config: dict[str, Any]) -> Upstream:
    version = _version("snac")
    if version is None:
        return Upstream(None, None, f"the snac package is not installed; {SNAC_INSTALL}")
    model = snac_model(codec, config)

    def decode(tokens: list[Any], seed: int) -> torch.Tensor:
        codes = codec.codes(torch.tensor(tokens, dtype=torch.int64)[None])
        with torch.inference_mode():
            return model.decode(codes)[0, 0]

    return Upstream(f"snac {version}", decode, None)


def s3gen_model(checkpoint: Path) -> Any:
    """Chatterbox's regular (not Turbo) S3Gen holding the tensors of `checkpoint`; every decode
    tensor must find its name, and the checkpoint must hold nothing upstream lacks."""
    with warnings.catch_warnings():
        # Its dependencies (diffusers, librosa, ...) warn about deprecations on import and build.
        warnings.simplefilter("ignore")
        from chatterbox.models.s3gen import S3Gen

        model = S3Gen()
    loaded = model.load_state_dict(load_file(str(checkpoint)), strict=False)
    missing = [k for k in loaded.missing_keys if not k.startswith(S3GEN_ENCODER_PREFIXES)]
    if missing or loaded.unexpected_keys:
        raise ValueError(
            f"{checkpoint} does not map onto chatterbox's S3Gen by name: missing {missing[:5]}, "
            f"unexpected {loaded.unexpected_keys[:5]}"
        )
    return model.eval().requires_grad_(False)


def s3gen_upstream(checkpoint: Path, voice: S3Voice, *, full_size: bool) -> Upstream:
    version = _version("chatterbox-tts")
    if version is None:
        return Upstream(
            None, None, f"chatterbox-tts is not installed in this environment; {CHATTERBOX_INSTALL}"
        )
    if not full_size:
        return Upstream(
            None,
            None,
            f"chatterbox-tts {version} builds its S3Gen only at the published sizes: tiny weights do not fit",
        )
    try:
        model = s3gen_model(checkpoint)
    except ImportError as error:
        return Upstream(None, None, f"chatterbox-tts {version} is installed but does not import: {error}")

    def decode(tokens: list[Any], seed: int) -> torch.Tensor:
        reference = {
            "prompt_token": voice.prompt_tokens[None],
            "prompt_token_len": torch.tensor([voice.prompt_tokens.numel()]),
            "prompt_feat": voice.prompt_mel[None],
            "prompt_feat_len": None,
            "embedding": voice.xvector[None],
        }
        wave, _ = model.inference(torch.tensor(tokens, dtype=torch.int64)[None], ref_dict=reference)
        return wave[0]

    return Upstream(f"chatterbox-tts {version}", decode, None)
