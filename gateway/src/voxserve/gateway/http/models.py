"""The model the HTTP API serves: one id, and the names a client may use for it."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from voxserve.gateway.http.errors import ApiError, bad_request
from voxserve.gateway.voices import VoiceRegistry

# OpenAI's TTS model names: clients written for OpenAI send one of these.
OPENAI_TTS_MODELS = ("tts-1", "tts-1-hd", "gpt-4o-mini-tts")


@dataclass(frozen=True)
class ServedModel:
    id: str
    aliases: frozenset[str]

    @classmethod
    def of(cls, model_id: str, registry: VoiceRegistry) -> ServedModel:
        names = {model_id, *OPENAI_TTS_MODELS}
        for voice in registry:
            names.add(voice.family.name)
            if voice.pack:
                names.add(voice.pack)
        return cls(model_id, frozenset(names))

    def card(self) -> dict[str, Any]:
        return {"id": self.id, "object": "model", "created": 0, "owned_by": "voxserve"}

    def check(self, name: object) -> None:
        if not isinstance(name, str) or not name:
            raise bad_request("model", "model is required: a string, e.g. " + repr(self.id))
        if name not in self.aliases:
            served = ", ".join(sorted(self.aliases))
            raise ApiError(
                404,
                f"model {name[:64]!r} is not served here; served: {served}",
                param="model",
                code="model_not_found",
            )
