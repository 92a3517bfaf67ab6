"""The pack option for models whose prompt names one of a fixed set of speakers.

A pack that has `speakers.json` at its root speaks by speaker name:

    {
      "speakers": ["aarav", "diya", ...],
      "prompt": "<|task_tts|><|start_content|>{speaker}: {text}<|end_content|>"
    }

- Spark-style fine-tunes (e.g. Indic models with named speakers): "prompt" is the text the model
  was trained on before its global tokens; it must hold ``{speaker}`` and ``{text}`` once each.
  The model then writes 32 global tokens and the semantic tokens, as a controllable Spark prompt
  does. Without "prompt" the default above applies: the Spark content block with the name
  before the text, the way Orpheus names its voices.
- Orpheus: the prompt format is the model's own; "speakers" only restricts the names accepted
  (without the file, any name is passed to the model).

Inline emotion tags such as ``<laugh>`` are part of the text and pass through unchanged.
"""

from __future__ import annotations

import json
import re
from dataclasses import dataclass
from pathlib import Path

SPEAKERS_FILE = "speakers.json"
DEFAULT_SPEAKER_PROMPT = "<|task_tts|><|start_content|>{speaker}: {text}<|end_content|>"
MAX_SPEAKER_NAME_CHARS = 64
# A name goes into the prompt as text: no markup, no line breaks, no colon (the separator).
_NAME = re.compile(r"[^\s<>|:{}][^<>|:{}\n\r\t]*")


def check_speaker_name(name: str) -> str:
    """The name, if it can stand in a prompt; ValueError naming the rule otherwise."""
    if not isinstance(name, str) or not name.strip():
        raise ValueError("speaker name is empty")
    if len(name) > MAX_SPEAKER_NAME_CHARS:
        raise ValueError(f"speaker name has {len(name)} characters; the limit is {MAX_SPEAKER_NAME_CHARS}")
    if not _NAME.fullmatch(name) or name != name.strip():
        raise ValueError(
            f"speaker name {name!r} must not hold markup (< > | {{ }}), a colon, line breaks or "
            "surrounding spaces"
        )
    return name


@dataclass(frozen=True)
class SpeakerSet:
    names: tuple[str, ...]
    prompt: str = DEFAULT_SPEAKER_PROMPT

    def __post_init__(self) -> None:
        if not self.names:
            raise ValueError("a speaker set needs at least one name")
        for name in self.names:
            check_speaker_name(name)
        if len(set(self.names)) != len(self.names):
            raise ValueError("speaker names must be unique")
        for field in ("{speaker}", "{text}"):
            if self.prompt.count(field) != 1:
                raise ValueError(f"speaker prompt must hold {field} exactly once: {self.prompt!r}")

    @classmethod
    def from_pack(cls, root: Path) -> SpeakerSet | None:
        path = Path(root) / SPEAKERS_FILE
        if not path.is_file():
            return None
        try:
            document = json.loads(path.read_text(encoding="utf-8"))
            names = document["speakers"]
            if not isinstance(names, list) or not all(isinstance(n, str) for n in names):
                raise ValueError("'speakers' must be a list of names")
            return cls(tuple(names), document.get("prompt", DEFAULT_SPEAKER_PROMPT))
        except (OSError, ValueError, KeyError, TypeError) as exc:
            raise ValueError(f"{path}: {exc}") from exc

    def write(self, root: Path) -> None:
        document = {"speakers": list(self.names), "prompt": self.prompt}
        (Path(root) / SPEAKERS_FILE).write_text(json.dumps(document, indent=2, ensure_ascii=False) + "\n")

    def write_registry(self, root: Path, family: str) -> None:
        """`voices.json` with one voice per speaker, and "default" for the first."""
        first = self.names[0]
        voices = [{"id": "default", "family": family, "speaker": first, "description": f"Speaker {first}"}]
        voices += [
            {"id": n, "family": family, "speaker": n, "description": f"Speaker {n}"} for n in self.names
        ]
        document = {"voices": voices}
        (Path(root) / "voices.json").write_text(json.dumps(document, indent=2, ensure_ascii=False) + "\n")

    def check(self, name: str) -> str:
        if name not in self.names:
            raise ValueError(
                f"speaker.name={name!r} is not one of this pack's speakers: {', '.join(self.names)}"
            )
        return name

    def render(self, speaker: str, text: str) -> str:
        # Plain replacement, not str.format: the text may hold braces.
        head, tail = self.prompt.split("{text}")
        return head.replace("{speaker}", speaker) + text + tail.replace("{speaker}", speaker)
