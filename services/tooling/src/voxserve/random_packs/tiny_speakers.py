"""The LM half of a random speaker-name Spark fine-tune (the BiCodec half is Spark's).

Such fine-tunes (Indic ones, for instance) are Spark-TTS with a fixed set of named speakers in the
prompt instead of the style block, and inline emotion tags in the text. Here the tags are added
to the tokenizer as ordinary tokens, as a fine-tune that trained on them would have them; the
speakers and the prompt are written to `speakers.json`, and one registry voice per speaker to
`voices.json`.
"""

from __future__ import annotations

from pathlib import Path

from voxserve.families.speakers import SpeakerSet
from voxserve.random_packs.tiny_llm import LlmSize, spark_added_tokens, write_llm

SPEAKER_NAMES = (
    "aarav",
    "diya",
    "kabir",
    "meera",
    "rohan",
    "ananya",
    "vikram",
    "priya",
    "arjun",
    "kavya",
    "ishaan",
    "nisha",
)
EMOTION_TAGS = ("<laugh>", "<giggle>", "<sigh>", "<excited>", "<angry>", "<sad>", "<whisper>", "<cough>")


def write_speaker_finetune(root: Path, seed: int, size: LlmSize) -> None:
    write_llm(root / "LLM", seed, size, (*spark_added_tokens(), *EMOTION_TAGS))
    speakers = SpeakerSet(SPEAKER_NAMES)
    speakers.write(root)
    speakers.write_registry(root, "spark")
