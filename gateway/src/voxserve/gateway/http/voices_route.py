"""`/v1/audio/voices`: list, enrol (multipart upload, through the same path as gRPC
CreateVoice), show and delete voices, scoped to the caller's API key as on gRPC."""

from __future__ import annotations

from collections.abc import AsyncIterator
from typing import Any

from google.protobuf.json_format import MessageToDict
from starlette.datastructures import UploadFile
from starlette.exceptions import HTTPException
from starlette.requests import Request
from starlette.responses import JSONResponse, Response

from voxserve.common.status import CallError, FailedPrecondition, NotFound
from voxserve.gateway.config import GatewayConfig
from voxserve.gateway.enrolment import VoiceEnrolment
from voxserve.gateway.http.errors import ApiError, bad_request
from voxserve.gateway.voice_directory import VoiceDirectory
from voxserve.gateway.voices import Voice
from voxserve.v1 import speech_pb2

UPLOAD_CHUNK_BYTES = 64 * 1024
# Form fields -> VoiceHeader fields (and back, to name the form field in errors).
HEADER_FIELDS = {
    "id": "voice_id",
    "name": "display_name",
    "description": "description",
    "family": "family",
    "consent": "consent",
}
FORM_FIELD = {header: form for form, header in HEADER_FIELDS.items()} | {
    "transcript": "transcript",
    "audio": "file",
}
# Room for the form's other fields and the multipart framing beside the audio file.
FORM_OVERHEAD_BYTES = 64 * 1024


def voice_object(voice: Voice) -> dict[str, Any]:
    fields = MessageToDict(voice.to_proto(), preserving_proto_field_name=True)
    return {"id": voice.id, "object": "voice", "name": fields.get("display_name") or voice.id, **fields}


class VoicesRoute:
    def __init__(self, directory: VoiceDirectory, enrolment: VoiceEnrolment | None, config: GatewayConfig):
        self.directory = directory
        self.enrolment = enrolment
        self.config = config

    async def list(self, request: Request) -> Response:
        voices = await self.directory.voices(request.state.voice_scope)
        return JSONResponse({"object": "list", "data": [voice_object(v) for v in voices]})

    async def get(self, request: Request) -> Response:
        voice_id = request.path_params["voice_id"]
        voice = await self.directory.find(request.state.voice_scope, voice_id)
        if voice is None:
            raise ApiError(404, f"voice {voice_id[:64]!r} is not a voice of this API key", param="voice_id")
        return JSONResponse(voice_object(voice))

    async def delete(self, request: Request) -> Response:
        voice_id = request.path_params["voice_id"]
        if not await self.directory.remove(request.state.voice_scope, voice_id):
            raise ApiError(
                404, f"voice {voice_id[:64]!r} is not a stored voice of this API key", param="voice_id"
            )
        return JSONResponse({"id": voice_id, "object": "voice", "deleted": True})

    async def create(self, request: Request) -> Response:
        if self.enrolment is None:
            raise ApiError.of(
                FailedPrecondition("this gateway has no voice store: voices cannot be enrolled")
            )
        limit = self.config.max_voice_upload_bytes
        size = request.headers.get("content-length", "")
        if size.isdigit() and int(size) > limit + FORM_OVERHEAD_BYTES:
            raise ApiError(
                413, f"the upload has {size} bytes; the audio file limit is {limit} bytes", param="file"
            )
        try:
            form = await request.form(max_files=1, max_fields=len(FORM_FIELD), max_part_size=limit)
        except HTTPException as exc:
            detail = str(getattr(exc, "detail", exc))
            if "maximum size" in detail or "exceeded" in detail:
                raise ApiError(
                    413, f"file: the audio is over the limit of {limit} bytes", param="file"
                ) from exc
            raise bad_request("file", f"the body is not a usable multipart form: {detail}") from exc
        try:
            upload = form.get("file")
            if not isinstance(upload, UploadFile):
                raise bad_request("file", "file is required: the reference audio, as a multipart file field")
            header = speech_pb2.VoiceHeader()
            for form_name, header_name in HEADER_FIELDS.items():
                value = form.get(form_name)
                if isinstance(value, str):
                    setattr(header, header_name, value)
            if isinstance(transcript := form.get("transcript"), str) and transcript:
                header.transcript = transcript
            try:
                with self.enrolment.admission.enter():
                    voice = await self.enrolment.create(
                        request.state.voice_scope, _messages(header, upload), lambda: None
                    )
            except CallError as exc:
                raise _form_error(exc) from exc
        finally:
            await form.close()
        return JSONResponse(voice_object(voice), status_code=201)


async def _messages(
    header: speech_pb2.VoiceHeader, upload: UploadFile
) -> AsyncIterator[speech_pb2.CreateVoiceRequest]:
    yield speech_pb2.CreateVoiceRequest(header=header)
    while chunk := await upload.read(UPLOAD_CHUNK_BYTES):
        yield speech_pb2.CreateVoiceRequest(audio=chunk)


def _form_error(error: CallError) -> ApiError:
    """The gRPC path's error, with its message and `param` naming the form's fields."""
    api = ApiError.of(error)
    for header_name, form_name in FORM_FIELD.items():
        api.message = api.message.replace(f"header.{header_name}", form_name)
    if api.message.startswith("audio:"):
        api.message = "file:" + api.message.removeprefix("audio:")
    if isinstance(error, NotFound):
        api.status = 404
    if api.param is not None:
        api.param = FORM_FIELD.get(api.param.removeprefix("header."), api.param.removeprefix("header."))
    if api.status == 400 and "exceeds the limit" in api.message:
        api.status = 413
    return api
