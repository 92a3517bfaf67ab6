"""S3Gen enrolment (s3 and Chatterbox packs): reference audio at 24 kHz -> the flow's prompt
(speech tokens, their mel, the CAMPPlus x-vector) and, for a family whose generator is
conditioned too (Chatterbox's T3), the voice encoder's speaker embedding and prompt tokens.

As upstream `prepare_conditionals`: the flow's part comes from the first 10 s (resampled to
16 kHz with torchaudio's sinc resampler for the tokenizer and CAMPPlus), T3's prompt tokens from
the first 6 s and the speaker embedding from the whole reference, both resampled to 16 kHz with
soxr "HQ" as librosa does. Which parts a pack lacks is read from file listings and the
safetensors header when the pack loads; weights load on the first encode.
"""

from __future__ import annotations

import math
import threading
from pathlib import Path

import numpy as np
import soxr
import torch
from safetensors import safe_open

from voxserve.families.family import Enrolment
from voxserve.vocoder.codecs.base import CodecInputError, EncodedVoice, EncoderUnavailable, VoiceConditioning
from voxserve.vocoder.codecs.s3gen.campplus import (
    CampPlus,
    campplus_shapes,
    load_campplus,
    resample_24k_to_16k,
)
from voxserve.vocoder.codecs.s3gen.prompt_mel import HOP, prompt_mel
from voxserve.vocoder.codecs.s3gen.speech_tokenizer import (
    SpeechTokenizer,
    attn_ln_eps_setting,
    load_speech_tokenizer,
)
from voxserve.vocoder.codecs.s3gen.voice_encoder import VoiceEncoder, load_voice_encoder

SAMPLE_RATE = 24000
TOKENIZER_RATE = 16000
FLOW_CLIP_SECONDS = 10
T3_CLIP_SECONDS = 6
T3_MAX_PROMPT_TOKENS = 150
VOICE_ENCODER_FILE = "ve.safetensors"
CONFIG_FILE = "s3gen.json"
TOKENIZER_PREFIX = "tokenizer."


def _header_keys(path: Path) -> set[str]:
    try:
        with safe_open(str(path), framework="pt", device="cpu") as f:
            return set(f.keys())
    except (OSError, ValueError, RuntimeError):
        return set()


def missing_enrolment_parts(pack: Path, checkpoint: str, enrolment: Enrolment) -> list[str]:
    """What enrolment lacks in this pack, relative to the pack (empty: it can encode)."""
    keys = _header_keys(pack / checkpoint)
    missing = [name for name in enrolment.encoder_files if not (pack / name).is_file()]
    if not any(k.startswith(TOKENIZER_PREFIX) for k in keys):
        missing.append(f"{checkpoint}: the speech tokenizer's tensors ({TOKENIZER_PREFIX}*)")
    absent = [k for k in campplus_shapes() if k not in keys]
    if absent:
        missing.append(f"{checkpoint}: {len(absent)} CAMPPlus tensor(s) (e.g. {absent[0]})")
    return missing


class S3Enrolment:
    def __init__(
        self,
        pack_dir: str | Path,
        checkpoint: str,
        enrolment: Enrolment,
        *,
        device: str | torch.device = "cpu",
    ) -> None:
        self.pack_dir = Path(pack_dir)
        self.checkpoint = checkpoint
        self.with_generator = enrolment.conditions_generator
        self.device = torch.device(device)
        self.missing = missing_enrolment_parts(self.pack_dir, checkpoint, enrolment)
        self._lock = threading.Lock()
        self._models: tuple[SpeechTokenizer, CampPlus, VoiceEncoder | None] | None = None

    def _load(self) -> tuple[SpeechTokenizer, CampPlus, VoiceEncoder | None]:
        with self._lock:
            if self._models is None:
                weights = self.pack_dir / self.checkpoint
                encoder = (
                    load_voice_encoder(self.pack_dir / VOICE_ENCODER_FILE, device=self.device)
                    if self.with_generator
                    else None
                )
                self._models = (
                    load_speech_tokenizer(
                        weights,
                        attn_ln_eps=attn_ln_eps_setting(self.pack_dir / CONFIG_FILE),
                        device=self.device,
                    ),
                    load_campplus(weights, device=self.device),
                    encoder,
                )
            return self._models

    @torch.inference_mode()
    def encode(self, audio: np.ndarray) -> EncodedVoice:
        """audio: mono float32 at 24 kHz."""
        if self.missing:
            raise EncoderUnavailable(f"this pack cannot enrol voices; it lacks: {'; '.join(self.missing)}")
        if audio.size < 2 * HOP:
            raise CodecInputError(f"audio holds {audio.size} samples; enrolment needs at least {2 * HOP}")
        tokenizer, campplus, voice_encoder = self._load()
        # A copy: the request's buffer is read-only, and torch wants writable arrays.
        clip = np.array(audio[: FLOW_CLIP_SECONDS * SAMPLE_RATE], dtype=np.float32)
        clip16 = resample_24k_to_16k(clip)
        mel = prompt_mel(torch.from_numpy(clip))
        tokens = tokenizer.tokens(clip16)
        # As upstream: tokens beyond half the mel's frames are dropped; our flow also wants
        # exactly two frames a token, so an odd last frame goes too.
        count = min(int(tokens.numel()), mel.shape[0] // 2)
        if count < 1:
            raise CodecInputError("audio is too short for the speech tokenizer to give one token")
        prompt = VoiceConditioning(
            prompt_tokens=tuple(int(t) for t in tokens[:count]),
            prompt_mel=mel[: 2 * count].numpy(),
            xvector=tuple(float(v) for v in campplus.xvector_16k(clip16)),
        )
        if voice_encoder is None:
            return EncodedVoice(s3_prompt=prompt)
        whole16 = resample_like_librosa(audio)
        embedding = voice_encoder.speaker_embedding(whole16)
        t3_tokens = tokenizer.tokens(
            whole16[: T3_CLIP_SECONDS * TOKENIZER_RATE], max_tokens=T3_MAX_PROMPT_TOKENS
        )
        return EncodedVoice(
            s3_prompt=prompt,
            speaker_embedding=tuple(float(v) for v in embedding),
            t3_prompt_tokens=tuple(int(t) for t in t3_tokens),
        )


def resample_like_librosa(audio: np.ndarray) -> np.ndarray:
    """24 kHz -> 16 kHz as `librosa.resample(res_type="soxr_hq")`: soxr HQ, length ceil(2n/3)."""
    count = math.ceil(audio.size * TOKENIZER_RATE / SAMPLE_RATE)
    out = soxr.resample(audio.astype(np.float32), SAMPLE_RATE, TOKENIZER_RATE, quality="HQ")
    return np.pad(out[:count], (0, max(0, count - out.size))).astype(np.float32)
