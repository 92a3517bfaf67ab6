"""What one Generate call asks of a token source, checked (`servicer.parse_generate_request`):
the text, the voice parts the pack's family takes, and the sampling."""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING

from voxserve.generator.prompts import Gender

if TYPE_CHECKING:
    from voxserve.generator.t3.voice import T3Voice


@dataclass(frozen=True)
class Sampling:
    """Sampling for one request; the defaults are upstream Spark-TTS's."""

    temperature: float = 0.8
    top_k: int = 50
    top_p: float = 0.95
    repetition_penalty: float = 1.0
    max_tokens: int | None = None
    min_tokens: int = 0
    seed: int | None = None
    min_p: float = 0.0
    guidance: float | None = None
    """Classifier-free guidance weight (T3)."""
    exaggeration: float | None = None
    """Emotion exaggeration (T3); None keeps the voice's."""


DEFAULT_SAMPLING = Sampling()


@dataclass(frozen=True)
class Style:
    gender: Gender = "female"
    pitch: int = 2
    speed: int = 2


@dataclass(frozen=True)
class Speaker:
    """A named speaker; ``global_ids`` (speaker-name fine-tunes with global tokens) prefill the
    voice of a later segment."""

    name: str
    global_ids: tuple[int, ...] = ()


MAX_REFERENCE_SEMANTIC_IDS = 3000
"""Most reference semantic ids a request may carry: 60 s of reference at 50 a second, the
gateway's longest enrolment. Whether the prompt fits the model is the engine's check."""


@dataclass(frozen=True)
class Reference:
    """A voice enrolled with a transcript: what the reference says and its semantic token
    indices, which lead the prompt (upstream's voice-cloning prompt). ``text`` is verbatim and
    counts with the request's text against the generator's text limit."""

    text: str
    semantic_ids: tuple[int, ...]


@dataclass(frozen=True)
class GenerateArgs:
    """One request's text, voice and sampling. At most one voice part is set, and only one the
    pack's family takes; none means the source's own default voice."""

    text: str
    sampling: Sampling = DEFAULT_SAMPLING
    global_ids: tuple[int, ...] | None = None
    """The voice's global token indices."""
    reference: Reference | None = None
    """Only with ``global_ids``: the reference the voice was enrolled from."""
    style: Style | None = None
    speaker: Speaker | None = None
    t3_voice: T3Voice | None = None
