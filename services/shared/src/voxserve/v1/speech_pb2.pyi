from voxserve.v1 import generator_pb2 as _generator_pb2
from voxserve.v1 import vocoder_pb2 as _vocoder_pb2
from google.protobuf.internal import containers as _containers
from google.protobuf.internal import enum_type_wrapper as _enum_type_wrapper
from google.protobuf import descriptor as _descriptor
from google.protobuf import message as _message
from collections.abc import Iterable as _Iterable, Mapping as _Mapping
from typing import ClassVar as _ClassVar, Optional as _Optional, Union as _Union

DESCRIPTOR: _descriptor.FileDescriptor

class AudioEncoding(int, metaclass=_enum_type_wrapper.EnumTypeWrapper):
    __slots__ = ()
    AUDIO_ENCODING_UNSPECIFIED: _ClassVar[AudioEncoding]
    PCM16: _ClassVar[AudioEncoding]
    WAV: _ClassVar[AudioEncoding]
    MULAW: _ClassVar[AudioEncoding]
    OGG_OPUS: _ClassVar[AudioEncoding]

class ReferenceFormat(int, metaclass=_enum_type_wrapper.EnumTypeWrapper):
    __slots__ = ()
    REFERENCE_FORMAT_FILE: _ClassVar[ReferenceFormat]
    REFERENCE_FORMAT_PCM16: _ClassVar[ReferenceFormat]
AUDIO_ENCODING_UNSPECIFIED: AudioEncoding
PCM16: AudioEncoding
WAV: AudioEncoding
MULAW: AudioEncoding
OGG_OPUS: AudioEncoding
REFERENCE_FORMAT_FILE: ReferenceFormat
REFERENCE_FORMAT_PCM16: ReferenceFormat

class SynthesizeRequest(_message.Message):
    __slots__ = ("text", "voice", "style", "encoding", "sampling", "seed", "sample_rate")
    TEXT_FIELD_NUMBER: _ClassVar[int]
    VOICE_FIELD_NUMBER: _ClassVar[int]
    STYLE_FIELD_NUMBER: _ClassVar[int]
    ENCODING_FIELD_NUMBER: _ClassVar[int]
    SAMPLING_FIELD_NUMBER: _ClassVar[int]
    SEED_FIELD_NUMBER: _ClassVar[int]
    SAMPLE_RATE_FIELD_NUMBER: _ClassVar[int]
    text: str
    voice: str
    style: _generator_pb2.VoiceStyle
    encoding: AudioEncoding
    sampling: _generator_pb2.SamplingParams
    seed: int
    sample_rate: int
    def __init__(self, text: _Optional[str] = ..., voice: _Optional[str] = ..., style: _Optional[_Union[_generator_pb2.VoiceStyle, _Mapping]] = ..., encoding: _Optional[_Union[AudioEncoding, str]] = ..., sampling: _Optional[_Union[_generator_pb2.SamplingParams, _Mapping]] = ..., seed: _Optional[int] = ..., sample_rate: _Optional[int] = ...) -> None: ...

class SynthesizeStreamRequest(_message.Message):
    __slots__ = ("config", "text", "flush", "end")
    CONFIG_FIELD_NUMBER: _ClassVar[int]
    TEXT_FIELD_NUMBER: _ClassVar[int]
    FLUSH_FIELD_NUMBER: _ClassVar[int]
    END_FIELD_NUMBER: _ClassVar[int]
    config: SynthesizeRequest
    text: str
    flush: Flush
    end: EndOfInput
    def __init__(self, config: _Optional[_Union[SynthesizeRequest, _Mapping]] = ..., text: _Optional[str] = ..., flush: _Optional[_Union[Flush, _Mapping]] = ..., end: _Optional[_Union[EndOfInput, _Mapping]] = ...) -> None: ...

class Flush(_message.Message):
    __slots__ = ()
    def __init__(self) -> None: ...

class EndOfInput(_message.Message):
    __slots__ = ()
    def __init__(self) -> None: ...

class SynthesizeResponse(_message.Message):
    __slots__ = ("audio", "summary")
    AUDIO_FIELD_NUMBER: _ClassVar[int]
    SUMMARY_FIELD_NUMBER: _ClassVar[int]
    audio: AudioData
    summary: Summary
    def __init__(self, audio: _Optional[_Union[AudioData, _Mapping]] = ..., summary: _Optional[_Union[Summary, _Mapping]] = ...) -> None: ...

class AudioData(_message.Message):
    __slots__ = ("data", "sample_rate", "sample_offset")
    DATA_FIELD_NUMBER: _ClassVar[int]
    SAMPLE_RATE_FIELD_NUMBER: _ClassVar[int]
    SAMPLE_OFFSET_FIELD_NUMBER: _ClassVar[int]
    data: bytes
    sample_rate: int
    sample_offset: int
    def __init__(self, data: _Optional[bytes] = ..., sample_rate: _Optional[int] = ..., sample_offset: _Optional[int] = ...) -> None: ...

class Summary(_message.Message):
    __slots__ = ("first_audio_seconds", "audio_seconds", "real_time_factor", "total_seconds", "prompt_tokens", "semantic_tokens", "samples", "finish_reason", "request_id", "first_token_seconds", "segments", "timeline")
    FIRST_AUDIO_SECONDS_FIELD_NUMBER: _ClassVar[int]
    AUDIO_SECONDS_FIELD_NUMBER: _ClassVar[int]
    REAL_TIME_FACTOR_FIELD_NUMBER: _ClassVar[int]
    TOTAL_SECONDS_FIELD_NUMBER: _ClassVar[int]
    PROMPT_TOKENS_FIELD_NUMBER: _ClassVar[int]
    SEMANTIC_TOKENS_FIELD_NUMBER: _ClassVar[int]
    SAMPLES_FIELD_NUMBER: _ClassVar[int]
    FINISH_REASON_FIELD_NUMBER: _ClassVar[int]
    REQUEST_ID_FIELD_NUMBER: _ClassVar[int]
    FIRST_TOKEN_SECONDS_FIELD_NUMBER: _ClassVar[int]
    SEGMENTS_FIELD_NUMBER: _ClassVar[int]
    TIMELINE_FIELD_NUMBER: _ClassVar[int]
    first_audio_seconds: float
    audio_seconds: float
    real_time_factor: float
    total_seconds: float
    prompt_tokens: int
    semantic_tokens: int
    samples: int
    finish_reason: _generator_pb2.GenerateResult.FinishReason
    request_id: str
    first_token_seconds: float
    segments: int
    timeline: Timeline
    def __init__(self, first_audio_seconds: _Optional[float] = ..., audio_seconds: _Optional[float] = ..., real_time_factor: _Optional[float] = ..., total_seconds: _Optional[float] = ..., prompt_tokens: _Optional[int] = ..., semantic_tokens: _Optional[int] = ..., samples: _Optional[int] = ..., finish_reason: _Optional[_Union[_generator_pb2.GenerateResult.FinishReason, str]] = ..., request_id: _Optional[str] = ..., first_token_seconds: _Optional[float] = ..., segments: _Optional[int] = ..., timeline: _Optional[_Union[Timeline, _Mapping]] = ...) -> None: ...

class Timeline(_message.Message):
    __slots__ = ("received_unix_seconds", "first_token_seconds", "first_audio_seconds", "segments", "done_seconds")
    RECEIVED_UNIX_SECONDS_FIELD_NUMBER: _ClassVar[int]
    FIRST_TOKEN_SECONDS_FIELD_NUMBER: _ClassVar[int]
    FIRST_AUDIO_SECONDS_FIELD_NUMBER: _ClassVar[int]
    SEGMENTS_FIELD_NUMBER: _ClassVar[int]
    DONE_SECONDS_FIELD_NUMBER: _ClassVar[int]
    received_unix_seconds: float
    first_token_seconds: float
    first_audio_seconds: float
    segments: _containers.RepeatedCompositeFieldContainer[SegmentTiming]
    done_seconds: float
    def __init__(self, received_unix_seconds: _Optional[float] = ..., first_token_seconds: _Optional[float] = ..., first_audio_seconds: _Optional[float] = ..., segments: _Optional[_Iterable[_Union[SegmentTiming, _Mapping]]] = ..., done_seconds: _Optional[float] = ...) -> None: ...

class SegmentTiming(_message.Message):
    __slots__ = ("index", "characters", "started_seconds", "first_token_seconds", "first_audio_seconds", "finished_seconds", "prompt_tokens", "semantic_tokens", "samples", "finish_reason")
    INDEX_FIELD_NUMBER: _ClassVar[int]
    CHARACTERS_FIELD_NUMBER: _ClassVar[int]
    STARTED_SECONDS_FIELD_NUMBER: _ClassVar[int]
    FIRST_TOKEN_SECONDS_FIELD_NUMBER: _ClassVar[int]
    FIRST_AUDIO_SECONDS_FIELD_NUMBER: _ClassVar[int]
    FINISHED_SECONDS_FIELD_NUMBER: _ClassVar[int]
    PROMPT_TOKENS_FIELD_NUMBER: _ClassVar[int]
    SEMANTIC_TOKENS_FIELD_NUMBER: _ClassVar[int]
    SAMPLES_FIELD_NUMBER: _ClassVar[int]
    FINISH_REASON_FIELD_NUMBER: _ClassVar[int]
    index: int
    characters: int
    started_seconds: float
    first_token_seconds: float
    first_audio_seconds: float
    finished_seconds: float
    prompt_tokens: int
    semantic_tokens: int
    samples: int
    finish_reason: _generator_pb2.GenerateResult.FinishReason
    def __init__(self, index: _Optional[int] = ..., characters: _Optional[int] = ..., started_seconds: _Optional[float] = ..., first_token_seconds: _Optional[float] = ..., first_audio_seconds: _Optional[float] = ..., finished_seconds: _Optional[float] = ..., prompt_tokens: _Optional[int] = ..., semantic_tokens: _Optional[int] = ..., samples: _Optional[int] = ..., finish_reason: _Optional[_Union[_generator_pb2.GenerateResult.FinishReason, str]] = ...) -> None: ...

class ListVoicesRequest(_message.Message):
    __slots__ = ()
    def __init__(self) -> None: ...

class Voice(_message.Message):
    __slots__ = ("id", "family", "sample_rate", "description", "controllable", "pack", "speaker", "stored", "display_name", "transcript", "consent", "created_unix_seconds", "reference_seconds", "conditioning")
    ID_FIELD_NUMBER: _ClassVar[int]
    FAMILY_FIELD_NUMBER: _ClassVar[int]
    SAMPLE_RATE_FIELD_NUMBER: _ClassVar[int]
    DESCRIPTION_FIELD_NUMBER: _ClassVar[int]
    CONTROLLABLE_FIELD_NUMBER: _ClassVar[int]
    PACK_FIELD_NUMBER: _ClassVar[int]
    SPEAKER_FIELD_NUMBER: _ClassVar[int]
    STORED_FIELD_NUMBER: _ClassVar[int]
    DISPLAY_NAME_FIELD_NUMBER: _ClassVar[int]
    TRANSCRIPT_FIELD_NUMBER: _ClassVar[int]
    CONSENT_FIELD_NUMBER: _ClassVar[int]
    CREATED_UNIX_SECONDS_FIELD_NUMBER: _ClassVar[int]
    REFERENCE_SECONDS_FIELD_NUMBER: _ClassVar[int]
    CONDITIONING_FIELD_NUMBER: _ClassVar[int]
    id: str
    family: str
    sample_rate: int
    description: str
    controllable: bool
    pack: str
    speaker: str
    stored: bool
    display_name: str
    transcript: str
    consent: str
    created_unix_seconds: float
    reference_seconds: float
    conditioning: _vocoder_pb2.EncodedVoice
    def __init__(self, id: _Optional[str] = ..., family: _Optional[str] = ..., sample_rate: _Optional[int] = ..., description: _Optional[str] = ..., controllable: _Optional[bool] = ..., pack: _Optional[str] = ..., speaker: _Optional[str] = ..., stored: _Optional[bool] = ..., display_name: _Optional[str] = ..., transcript: _Optional[str] = ..., consent: _Optional[str] = ..., created_unix_seconds: _Optional[float] = ..., reference_seconds: _Optional[float] = ..., conditioning: _Optional[_Union[_vocoder_pb2.EncodedVoice, _Mapping]] = ...) -> None: ...

class CreateVoiceRequest(_message.Message):
    __slots__ = ("header", "audio")
    HEADER_FIELD_NUMBER: _ClassVar[int]
    AUDIO_FIELD_NUMBER: _ClassVar[int]
    header: VoiceHeader
    audio: bytes
    def __init__(self, header: _Optional[_Union[VoiceHeader, _Mapping]] = ..., audio: _Optional[bytes] = ...) -> None: ...

class VoiceHeader(_message.Message):
    __slots__ = ("voice_id", "display_name", "description", "family", "pack", "transcript", "consent", "format", "sample_rate", "exaggeration")
    VOICE_ID_FIELD_NUMBER: _ClassVar[int]
    DISPLAY_NAME_FIELD_NUMBER: _ClassVar[int]
    DESCRIPTION_FIELD_NUMBER: _ClassVar[int]
    FAMILY_FIELD_NUMBER: _ClassVar[int]
    PACK_FIELD_NUMBER: _ClassVar[int]
    TRANSCRIPT_FIELD_NUMBER: _ClassVar[int]
    CONSENT_FIELD_NUMBER: _ClassVar[int]
    FORMAT_FIELD_NUMBER: _ClassVar[int]
    SAMPLE_RATE_FIELD_NUMBER: _ClassVar[int]
    EXAGGERATION_FIELD_NUMBER: _ClassVar[int]
    voice_id: str
    display_name: str
    description: str
    family: str
    pack: str
    transcript: str
    consent: str
    format: ReferenceFormat
    sample_rate: int
    exaggeration: float
    def __init__(self, voice_id: _Optional[str] = ..., display_name: _Optional[str] = ..., description: _Optional[str] = ..., family: _Optional[str] = ..., pack: _Optional[str] = ..., transcript: _Optional[str] = ..., consent: _Optional[str] = ..., format: _Optional[_Union[ReferenceFormat, str]] = ..., sample_rate: _Optional[int] = ..., exaggeration: _Optional[float] = ...) -> None: ...

class GetVoiceRequest(_message.Message):
    __slots__ = ("voice_id", "include_conditioning")
    VOICE_ID_FIELD_NUMBER: _ClassVar[int]
    INCLUDE_CONDITIONING_FIELD_NUMBER: _ClassVar[int]
    voice_id: str
    include_conditioning: bool
    def __init__(self, voice_id: _Optional[str] = ..., include_conditioning: _Optional[bool] = ...) -> None: ...

class DeleteVoiceRequest(_message.Message):
    __slots__ = ("voice_id",)
    VOICE_ID_FIELD_NUMBER: _ClassVar[int]
    voice_id: str
    def __init__(self, voice_id: _Optional[str] = ...) -> None: ...

class DeleteVoiceResponse(_message.Message):
    __slots__ = ()
    def __init__(self) -> None: ...

class ListVoicesResponse(_message.Message):
    __slots__ = ("voices",)
    VOICES_FIELD_NUMBER: _ClassVar[int]
    voices: _containers.RepeatedCompositeFieldContainer[Voice]
    def __init__(self, voices: _Optional[_Iterable[_Union[Voice, _Mapping]]] = ...) -> None: ...
