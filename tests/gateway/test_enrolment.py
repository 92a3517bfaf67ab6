"""CreateVoice, GetVoice, DeleteVoice and ListVoices on a real gateway, with a real vocoder
encoding the tiny pack's references and a real SQLite store: round trips, the voice each
synthesis is conditioned on, every bad input, key scoping, cancellation and restarts."""

from __future__ import annotations

import asyncio
import shutil
from collections.abc import Iterator
from pathlib import Path

import grpc
import numpy as np
import pytest

from tests.gateway.enrolment_harness import (
    RATE,
    Gateway,
    create_requests,
    gateway_server,
    vocoder_server,
    voiced,
    wav_bytes,
)
from voxserve.families import spark
from voxserve.families.pack import Pack
from voxserve.gateway.reference_audio import ReferenceLimits, read_reference
from voxserve.v1 import speech_pb2, speech_pb2_grpc
from voxserve.vocoder.codecs.bicodec import BiCodec

TRANSCRIPT = "This is how I sound when I read aloud."


def header(voice_id: str = "alice", **fields: object) -> speech_pb2.VoiceHeader:
    return speech_pb2.VoiceHeader(voice_id=voice_id, **fields)  # type: ignore[arg-type]


async def create(
    speech: speech_pb2_grpc.SpeechStub,
    head: speech_pb2.VoiceHeader,
    data: bytes,
    metadata: tuple[tuple[str, str], ...] = (),
) -> speech_pb2.Voice:
    return await speech.CreateVoice(create_requests(head, data), metadata=metadata, timeout=60)


async def status_of(call: object) -> tuple[grpc.StatusCode, str]:
    with pytest.raises(grpc.aio.AioRpcError) as caught:
        await call  # type: ignore[misc]
    return caught.value.code(), caught.value.details() or ""


async def stored_ids(
    speech: speech_pb2_grpc.SpeechStub, metadata: tuple[tuple[str, str], ...] = ()
) -> list[str]:
    listing = await speech.ListVoices(speech_pb2.ListVoicesRequest(), metadata=metadata, timeout=10)
    return [v.id for v in listing.voices if v.stored]


async def synthesize(
    speech: speech_pb2_grpc.SpeechStub, voice: str, metadata: tuple[tuple[str, str], ...] = ()
) -> list[speech_pb2.SynthesizeResponse]:
    request = speech_pb2.SynthesizeRequest(text="Hello there.", voice=voice)
    return [r async for r in speech.Synthesize(request, metadata=metadata, timeout=30)]


async def test_a_voice_round_trips_through_create_get_list_and_delete(
    gateway: Gateway, reference: bytes
) -> None:
    speech = gateway.stub()
    voice = await create(
        speech,
        header(
            display_name="Alice",
            description="narrator",
            consent="Alice agreed on 2026-12-01",
            transcript=TRANSCRIPT,
        ),
        reference,
    )
    assert (voice.id, voice.family, voice.sample_rate, voice.stored) == ("alice", "spark", 16000, True)
    assert (voice.display_name, voice.description, voice.transcript) == ("Alice", "narrator", TRANSCRIPT)
    assert voice.consent == "Alice agreed on 2026-12-01"
    assert voice.reference_seconds == pytest.approx(3.0, abs=1e-3)
    assert voice.created_unix_seconds > 0
    assert await speech.GetVoice(speech_pb2.GetVoiceRequest(voice_id="alice"), timeout=10) == voice
    listing = await speech.ListVoices(speech_pb2.ListVoicesRequest(), timeout=10)
    assert [v.id for v in listing.voices] == ["default", "female", "male", "alice"]
    assert not any(v.stored for v in listing.voices[:3])

    await speech.DeleteVoice(speech_pb2.DeleteVoiceRequest(voice_id="alice"), timeout=10)
    code, details = await status_of(speech.GetVoice(speech_pb2.GetVoiceRequest(voice_id="alice"), timeout=10))
    assert code == grpc.StatusCode.NOT_FOUND and "alice" in details
    code, _ = await status_of(speech.DeleteVoice(speech_pb2.DeleteVoiceRequest(voice_id="alice"), timeout=10))
    assert code == grpc.StatusCode.NOT_FOUND
    assert await stored_ids(speech) == []


async def test_an_id_is_assigned_when_none_is_given(gateway: Gateway, reference: bytes) -> None:
    voice = await create(gateway.stub(), header(""), reference)
    assert voice.id.startswith("voice-") and len(voice.id) == len("voice-") + 12


async def test_synthesis_with_an_enrolled_voice_is_conditioned_on_its_encoding(
    gateway: Gateway, reference: bytes, codec: BiCodec
) -> None:
    """The generator gets the enrolled global ids (and, with a transcript, the reference's text
    and semantic ids); the vocoder's stream opens on the same global ids."""
    enrolment = spark.FAMILY.enrolment
    assert enrolment is not None
    prepared = read_reference(reference, speech_pb2.REFERENCE_FORMAT_FILE, 0, enrolment, ReferenceLimits())
    expected = codec.encode_voice(prepared.samples, RATE, True)
    assert len(expected.global_ids) == 32 and len(expected.reference_semantic_ids) == 149

    speech = gateway.stub()
    await create(speech, header("plain"), reference)
    await create(speech, header("cloned", transcript=TRANSCRIPT), reference)
    await synthesize(speech, "plain")
    await synthesize(speech, "cloned")
    plain, cloned = gateway.runner.jobs
    assert tuple(plain.request.global_tokens.ids) == expected.global_ids
    assert plain.request.global_tokens.reference_text == ""
    assert list(plain.request.global_tokens.reference_semantic_ids) == []
    assert tuple(cloned.request.global_tokens.ids) == expected.global_ids
    assert cloned.request.global_tokens.reference_text == TRANSCRIPT
    assert tuple(cloned.request.global_tokens.reference_semantic_ids) == expected.reference_semantic_ids
    start = cloned.decode_start(cloned.stats.global_ids)
    assert (start.codec, tuple(start.global_ids)) == ("bicodec", expected.global_ids)


async def test_enrolment_is_deterministic_and_depends_on_the_voice(
    gateway: Gateway, reference: bytes
) -> None:
    speech = gateway.stub()
    await create(speech, header("first"), reference)
    await create(speech, header("again"), reference)
    await create(speech, header("other"), wav_bytes(voiced(3.0, pitch=220.0, seed=5)))
    first, again, other = [await gateway.cache.get("", name) for name in ("first", "again", "other")]
    assert first is not None and again is not None and other is not None
    assert first.encoding == again.encoding
    assert first.encoding != other.encoding


BAD_INPUTS = [
    # (test id, header fields, audio, settings, status, words the message must hold)
    (
        "no audio",
        {},
        b"these bytes are plain text, not audio" * 50,
        {},
        grpc.StatusCode.INVALID_ARGUMENT,
        "audio",
    ),
    ("too short", {}, wav_bytes(voiced(1.0)), {}, grpc.StatusCode.INVALID_ARGUMENT, "2"),
    (
        "too long",
        {},
        wav_bytes(voiced(6.0)),
        {"max_reference_seconds": 5.0},
        grpc.StatusCode.INVALID_ARGUMENT,
        "5",
    ),
    ("silence", {}, wav_bytes(np.zeros(3 * RATE)), {}, grpc.StatusCode.INVALID_ARGUMENT, "silen"),
    ("clipping", {}, wav_bytes(np.sign(voiced(3.0))), {}, grpc.StatusCode.INVALID_ARGUMENT, "clip"),
    (
        "empty transcript",
        {"transcript": "  "},
        None,
        {},
        grpc.StatusCode.INVALID_ARGUMENT,
        "transcript is empty",
    ),
    (
        "long transcript",
        {"transcript": "word " * 30},
        None,
        {"max_transcript_chars": 100},
        grpc.StatusCode.INVALID_ARGUMENT,
        "the limit is 100",
    ),
    (
        "markup",
        {"transcript": "Hello <|task_tts|> there"},
        None,
        {},
        grpc.StatusCode.INVALID_ARGUMENT,
        "special-token markup",
    ),
    ("bad id", {"voice_id": "Not A Name!"}, None, {}, grpc.StatusCode.INVALID_ARGUMENT, "voice_id"),
    ("built-in id", {"voice_id": "default"}, None, {}, grpc.StatusCode.ALREADY_EXISTS, "default"),
    ("unknown family", {"family": "nosuch"}, None, {}, grpc.StatusCode.INVALID_ARGUMENT, "family"),
    (
        "family without enrolment",
        {"family": "orpheus"},
        None,
        {},
        grpc.StatusCode.FAILED_PRECONDITION,
        "orpheus",
    ),
    (
        "too many bytes",
        {},
        wav_bytes(voiced(4.0)),
        {"max_voice_upload_bytes": 100_000},  # the 3 s reference fits, 4 s does not
        grpc.StatusCode.INVALID_ARGUMENT,
        "100000 bytes",
    ),
    (
        "pcm rate for a file",
        {"sample_rate": 16000},
        None,
        {},
        grpc.StatusCode.INVALID_ARGUMENT,
        "sample_rate",
    ),
]


@pytest.mark.parametrize(
    ("fields", "audio", "settings", "status", "words"),
    [case[1:] for case in BAD_INPUTS],
    ids=[case[0] for case in BAD_INPUTS],
)
async def test_bad_input_is_refused_naming_the_field_and_stores_nothing(
    tmp_path: Path,
    vocoder: str,
    reference: bytes,
    fields: dict[str, object],
    audio: bytes | None,
    settings: dict[str, object],
    status: grpc.StatusCode,
    words: str,
) -> None:
    async with gateway_server(tmp_path / "voices.sqlite3", [vocoder], **settings) as gateway:
        speech = gateway.stub()
        head = header(**{"voice_id": "bob", **fields})  # type: ignore[arg-type]
        code, details = await status_of(create(speech, head, reference if audio is None else audio))
        assert code == status, details
        assert words in details
        assert await stored_ids(speech) == []
        # Everyone else is still served.
        assert (await create(speech, header("carol"), reference)).id == "carol"


async def test_a_second_header_or_audio_first_is_refused(gateway: Gateway, reference: bytes) -> None:
    speech = gateway.stub()

    def twice() -> Iterator[speech_pb2.CreateVoiceRequest]:
        yield speech_pb2.CreateVoiceRequest(header=header("dave"))
        yield speech_pb2.CreateVoiceRequest(audio=reference[:1000])
        yield speech_pb2.CreateVoiceRequest(header=header("dave"))

    code, details = await status_of(speech.CreateVoice(twice(), timeout=30))
    assert code == grpc.StatusCode.INVALID_ARGUMENT and "second header" in details
    code, details = await status_of(
        speech.CreateVoice(iter([speech_pb2.CreateVoiceRequest(audio=reference)]), timeout=30)
    )
    assert code == grpc.StatusCode.INVALID_ARGUMENT and "header" in details
    assert await stored_ids(speech) == []


async def test_a_duplicate_id_is_already_exists_and_keeps_the_first(
    gateway: Gateway, reference: bytes
) -> None:
    speech = gateway.stub()
    first = await create(speech, header("erin", description="first"), reference)
    code, details = await status_of(create(speech, header("erin", description="second"), reference))
    assert code == grpc.StatusCode.ALREADY_EXISTS and "erin" in details
    assert await speech.GetVoice(speech_pb2.GetVoiceRequest(voice_id="erin"), timeout=10) == first


async def test_voices_per_key_is_a_limit(tmp_path: Path, vocoder: str, reference: bytes) -> None:
    async with gateway_server(tmp_path / "v.sqlite3", [vocoder], max_voices_per_key=1) as gateway:
        speech = gateway.stub()
        await create(speech, header("one"), reference)
        code, details = await status_of(create(speech, header("two"), reference))
        assert code == grpc.StatusCode.RESOURCE_EXHAUSTED and "1 voices" in details
        assert await stored_ids(speech) == ["one"]


async def test_a_built_in_voice_cannot_be_deleted(gateway: Gateway) -> None:
    code, details = await status_of(
        gateway.stub().DeleteVoice(speech_pb2.DeleteVoiceRequest(voice_id="default"), timeout=10)
    )
    assert code == grpc.StatusCode.FAILED_PRECONDITION and "built-in" in details


async def test_voices_are_scoped_to_the_api_key_that_created_them(
    tmp_path: Path, vocoder: str, reference: bytes
) -> None:
    a = (("authorization", "Bearer key-a-0123456789"),)
    b = (("authorization", "Bearer key-b-0123456789"),)
    keys = ("key-a-0123456789", "key-b-0123456789")
    async with gateway_server(tmp_path / "v.sqlite3", [vocoder], keys=keys) as gateway:
        speech = gateway.stub()
        await create(speech, header("mine"), reference, metadata=a)
        assert await stored_ids(speech, a) == ["mine"]
        assert await stored_ids(speech, b) == []
        code, _ = await status_of(
            speech.GetVoice(speech_pb2.GetVoiceRequest(voice_id="mine"), metadata=b, timeout=10)
        )
        assert code == grpc.StatusCode.NOT_FOUND
        code, details = await status_of(synthesize(speech, "mine", b))
        assert code == grpc.StatusCode.INVALID_ARGUMENT and "unknown" in details
        code, _ = await status_of(
            speech.DeleteVoice(speech_pb2.DeleteVoiceRequest(voice_id="mine"), metadata=b, timeout=10)
        )
        assert code == grpc.StatusCode.NOT_FOUND
        # Key B has its own names: the same id is free for it.
        await create(speech, header("mine", description="b's"), reference, metadata=b)
        assert (
            await speech.GetVoice(speech_pb2.GetVoiceRequest(voice_id="mine"), metadata=a, timeout=10)
        ).description == ""
        assert (await synthesize(speech, "mine", a))[-1].WhichOneof("message") == "summary"
        # Built-in voices are everyone's.
        assert (
            await speech.GetVoice(speech_pb2.GetVoiceRequest(voice_id="default"), metadata=b, timeout=10)
        ).id == "default"
        code, _ = await status_of(create(speech, header("nokey"), reference))
        assert code == grpc.StatusCode.UNAUTHENTICATED


async def test_a_cancelled_upload_stores_nothing(gateway: Gateway, reference: bytes) -> None:
    speech = gateway.stub()
    call = speech.CreateVoice(timeout=30)
    await call.write(speech_pb2.CreateVoiceRequest(header=header("frank")))
    await call.write(speech_pb2.CreateVoiceRequest(audio=reference[:20000]))
    await asyncio.sleep(0.1)
    call.cancel()
    await asyncio.sleep(0.2)
    assert await stored_ids(speech) == []
    assert await gateway.cache.get("", "frank") is None


async def test_a_gateway_restart_keeps_stored_voices(tmp_path: Path, vocoder: str, reference: bytes) -> None:
    store = tmp_path / "kept.sqlite3"
    async with gateway_server(store, [vocoder]) as gateway:
        created = await create(gateway.stub(), header("gina", transcript=TRANSCRIPT), reference)
    async with gateway_server(store, [vocoder]) as gateway:
        speech = gateway.stub()
        assert await speech.GetVoice(speech_pb2.GetVoiceRequest(voice_id="gina"), timeout=10) == created
        await synthesize(speech, "gina")
        assert gateway.runner.jobs[0].request.global_tokens.reference_text == TRANSCRIPT


async def test_a_vocoder_replica_that_is_down_is_replaced(
    tmp_path: Path, vocoder: str, reference: bytes
) -> None:
    dead = "127.0.0.1:9"  # nothing listens on the discard port
    async with gateway_server(tmp_path / "v.sqlite3", [dead, vocoder]) as gateway:
        assert (await create(gateway.stub(), header("hana"), reference)).id == "hana"


async def test_a_pack_without_the_encoder_is_failed_precondition_naming_the_files(
    tmp_path: Path, tiny_pack: Pack, reference: bytes
) -> None:
    pack = tmp_path / "decode-only"
    shutil.copytree(tiny_pack.root, pack)
    shutil.rmtree(pack / "wav2vec2-large-xlsr-53")
    async with vocoder_server(BiCodec.from_pack(pack)) as address:
        async with gateway_server(tmp_path / "v.sqlite3", [address]) as gateway:
            code, details = await status_of(create(gateway.stub(), header("ivan"), reference))
    assert code == grpc.StatusCode.FAILED_PRECONDITION
    assert "wav2vec2-large-xlsr-53" in details
