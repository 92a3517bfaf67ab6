"""What a vocoder-tier client needs to know of a codec to feed it like a generator: its token rate,
the ids that make one token, their vocabulary, and a random voice for a stream's start message.

Read from constants, not from the model: the client never loads a codec. The vocabularies and
voice shapes are those of both the tiny and the full-size random packs (and the real models).
"""

from __future__ import annotations

import math
import random
import struct
from dataclasses import dataclass

from voxserve.v1 import vocoder_pb2

# S3Gen voices: a prompt of two seconds of speech tokens, as the random packs' voices have.
S3_PROMPT_TOKENS = 50
S3_VOCAB, S3_MEL_BINS, S3_XVECTOR = 6561, 80, 192
BICODEC_GLOBAL_VOCAB, BICODEC_GLOBAL_IDS = 4096, 32
# Audio per frame message when the settings name no token count: about what a generator's
# detokenising step hands on.
FRAME_SECONDS = 0.1


@dataclass(frozen=True)
class TierCodec:
    name: str
    sample_rate: int
    samples_per_token: int
    vocab_size: int
    codes_per_token: int = 1

    @property
    def tokens_per_second(self) -> float:
        return self.sample_rate / self.samples_per_token

    def tokens_for(self, seconds: float) -> int:
        return max(1, math.ceil(seconds * self.tokens_per_second))

    def frame_tokens(self) -> int:
        return self.tokens_for(FRAME_SECONDS)

    def random_ids(self, rng: random.Random, tokens: int) -> list[int]:
        return [rng.randrange(self.vocab_size) for _ in range(tokens * self.codes_per_token)]

    def start(self, rng: random.Random, seed: int) -> vocoder_pb2.DecodeStart:
        """A start message with a random voice (the codec's kind of voice) and a seed."""
        if self.name == "bicodec":
            ids = [rng.randrange(BICODEC_GLOBAL_VOCAB) for _ in range(BICODEC_GLOBAL_IDS)]
            return vocoder_pb2.DecodeStart(codec=self.name, global_ids=ids, seed=seed)
        if self.name == "s3gen":
            mel = [rng.gauss(0.0, 1.0) for _ in range(2 * S3_PROMPT_TOKENS * S3_MEL_BINS)]
            prompt = vocoder_pb2.S3Prompt(
                prompt_tokens=[rng.randrange(S3_VOCAB) for _ in range(S3_PROMPT_TOKENS)],
                prompt_mel_f32=struct.pack(f"<{len(mel)}f", *mel),
                xvector=[rng.gauss(0.0, 1.0) for _ in range(S3_XVECTOR)],
            )
            return vocoder_pb2.DecodeStart(codec=self.name, s3_prompt=prompt, seed=seed)
        return vocoder_pb2.DecodeStart(codec=self.name, seed=seed)


TIER_CODECS = {
    "bicodec": TierCodec("bicodec", 16000, 320, 8192),
    "s3gen": TierCodec("s3gen", 24000, 960, S3_VOCAB),
    "snac": TierCodec("snac", 24000, 2048, 4096, codes_per_token=7),
}


def tier_codec(name: str) -> TierCodec:
    try:
        return TIER_CODECS[name]
    except KeyError:
        raise ValueError(f"codec {name!r} has no tier client; codecs: {', '.join(TIER_CODECS)}") from None
