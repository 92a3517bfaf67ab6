"""The served model: its id, OpenAI's TTS model names and the voices' family and pack names."""

from __future__ import annotations

import pytest

from voxserve.gateway.http.errors import ApiError
from voxserve.gateway.http.models import ServedModel
from voxserve.gateway.voices import Voice, VoiceRegistry


@pytest.fixture
def model() -> ServedModel:
    return ServedModel.of("voxserve", VoiceRegistry.builtin())


@pytest.mark.parametrize("name", ["voxserve", "tts-1", "tts-1-hd", "gpt-4o-mini-tts", "spark"])
def test_the_id_openai_names_and_family_names_are_accepted(model: ServedModel, name: str) -> None:
    model.check(name)


def test_a_configured_id_and_pack_labels_are_accepted() -> None:
    registry = VoiceRegistry([Voice("narrator", "A narrator", pack="spark-tiny")])
    served = ServedModel.of("house-voice", registry)
    for name in ("house-voice", "spark-tiny", "spark", "tts-1"):
        served.check(name)
    with pytest.raises(ApiError):
        served.check("voxserve")
    assert served.card() == {"id": "house-voice", "object": "model", "created": 0, "owned_by": "voxserve"}


@pytest.mark.parametrize("name", ["whisper-1", "TTS-1", "spark ", "x" * 500])
def test_an_unknown_model_is_404_naming_the_served_names(model: ServedModel, name: str) -> None:
    with pytest.raises(ApiError) as raised:
        model.check(name)
    error = raised.value
    assert (error.status, error.param, error.code) == (404, "model", "model_not_found")
    assert error.message.endswith("served: gpt-4o-mini-tts, spark, tts-1, tts-1-hd, voxserve")
    assert len(error.message) < 200, "a long name is cut"


@pytest.mark.parametrize("name", [None, "", 7, ["tts-1"]])
def test_a_missing_or_non_string_model_is_400(model: ServedModel, name: object) -> None:
    with pytest.raises(ApiError) as raised:
        model.check(name)
    error = raised.value
    assert (error.status, error.param, error.type) == (400, "model", "invalid_request_error")
    assert "'voxserve'" in error.message
