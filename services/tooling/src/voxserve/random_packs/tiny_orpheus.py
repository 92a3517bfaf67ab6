"""A random pack of the `orpheus` family: a Llama LM writing SNAC codes, and SNAC 24 kHz.

Layout:

    LLM/            Llama config, a tokenizer with Llama 3's special tokens and Orpheus's
                    <custom_token_0> .. <custom_token_28681> (markers 1..7, audio from 10),
                    model.safetensors
    SNAC/           SNAC's own config.json and pytorch_model.bin (`tiny_snac`)
    speakers.json   the voice names the prompt accepts (`voxserve.families.speakers`)
    voices.json     the pack's voice registry: one voice per speaker

A real Orpheus checkpoint (e.g. orpheus-3b-0.1-ft) goes into `LLM/` as downloaded, and
hubertsiuzdak/snac_24khz into `SNAC/`.
"""

from __future__ import annotations

from pathlib import Path

from voxserve.families.orpheus import AUDIO_TOKEN_OFFSET, CODEBOOK_SIZE, CODES_PER_FRAME
from voxserve.families.speakers import SpeakerSet
from voxserve.random_packs.tiny_llm import LLAMA3, LlmSize, write_llm
from voxserve.random_packs.tiny_snac import SNAC_24KHZ, TINY, write_snac

# The English Orpheus fine-tune's voices.
ORPHEUS_VOICES = ("tara", "leah", "jess", "leo", "dan", "mia", "zac", "zoe")
NUM_CUSTOM_TOKENS = AUDIO_TOKEN_OFFSET + CODES_PER_FRAME * CODEBOOK_SIZE

TINY_ORPHEUS_LLM = LlmSize(
    hidden_size=64, num_layers=2, num_attention_heads=2, num_kv_heads=1, intermediate_size=128
)
# Llama-3.2-3B, Orpheus's base: the sizes that matter for serving speed on a GPU.
ORPHEUS_3B_LLM = LlmSize(
    hidden_size=3072,
    num_layers=28,
    num_attention_heads=24,
    num_kv_heads=8,
    intermediate_size=8192,
    vocab_size=156940,
    dtype="bfloat16",
)


def orpheus_added_tokens() -> tuple[str, ...]:
    return tuple(f"<custom_token_{n}>" for n in range(NUM_CUSTOM_TOKENS))


def write_orpheus_pack(root: Path, seed: int, size: str = "tiny") -> None:
    full = size == "full"
    write_llm(
        root / "LLM", seed, ORPHEUS_3B_LLM if full else TINY_ORPHEUS_LLM, orpheus_added_tokens(), LLAMA3
    )
    write_snac(root, SNAC_24KHZ if full else TINY, seed)
    speakers = SpeakerSet(ORPHEUS_VOICES)
    speakers.write(root)
    speakers.write_registry(root, "orpheus")
