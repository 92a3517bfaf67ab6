"""Two gateway replicas on one PostgreSQL store: a voice enrolled through one is usable through
the other at once, a deletion through one is seen by the other within the cache bound, and the
voices outlive the gateways."""

from __future__ import annotations

import time
from collections.abc import AsyncIterator

import grpc
import pytest

from tests.gateway.enrolment_harness import create_requests, gateway_server, vocoder_server, voiced, wav_bytes
from voxserve.families.pack import Pack
from voxserve.v1 import speech_pb2
from voxserve.vocoder.codecs.bicodec import BiCodec

CACHE_SECONDS = 1.0


@pytest.fixture
async def vocoder(tiny_pack: Pack) -> AsyncIterator[str]:
    async with vocoder_server(BiCodec.from_pack(tiny_pack.root)) as address:
        yield address


async def test_replicas_share_voices_and_see_deletions_within_the_bound(
    postgres_url: str, vocoder: str
) -> None:
    reference = wav_bytes(voiced(3.0))
    settings = {"voice_cache_seconds": CACHE_SECONDS}
    async with (
        gateway_server(postgres_url, [vocoder], **settings) as one,
        gateway_server(postgres_url, [vocoder], **settings) as two,
    ):
        first, second = one.stub(), two.stub()
        header = speech_pb2.VoiceHeader(voice_id="shared", transcript="A shared voice.")
        created = await first.CreateVoice(create_requests(header, reference), timeout=60)
        # Seen through the other replica at once, and usable there.
        assert await second.GetVoice(speech_pb2.GetVoiceRequest(voice_id="shared"), timeout=10) == created
        request = speech_pb2.SynthesizeRequest(text="Hello there.", voice="shared")
        assert [r async for r in second.Synthesize(request, timeout=30)][-1].HasField("summary")
        assert two.runner.jobs[0].request.global_tokens.reference_text == "A shared voice."

        await first.DeleteVoice(speech_pb2.DeleteVoiceRequest(voice_id="shared"), timeout=10)
        deleted = time.monotonic()
        while True:
            try:
                await second.GetVoice(speech_pb2.GetVoiceRequest(voice_id="shared"), timeout=10)
            except grpc.aio.AioRpcError as exc:
                assert exc.code() == grpc.StatusCode.NOT_FOUND
                break
            assert time.monotonic() - deleted <= CACHE_SECONDS, "the deletion was not seen within the bound"
        print(f"deletion seen by the other replica after {1000 * (time.monotonic() - deleted):.1f} ms")


async def test_stored_voices_outlive_every_gateway(postgres_url: str, vocoder: str) -> None:
    reference = wav_bytes(voiced(3.0))
    async with gateway_server(postgres_url, [vocoder]) as gateway:
        header = speech_pb2.VoiceHeader(voice_id="kept", display_name="Kept")
        created = await gateway.stub().CreateVoice(create_requests(header, reference), timeout=60)
    async with gateway_server(postgres_url, [vocoder]) as gateway:
        speech = gateway.stub()
        assert await speech.GetVoice(speech_pb2.GetVoiceRequest(voice_id="kept"), timeout=10) == created
        listing = await speech.ListVoices(speech_pb2.ListVoicesRequest(), timeout=10)
        assert [v.id for v in listing.voices if v.stored] == ["kept"]
