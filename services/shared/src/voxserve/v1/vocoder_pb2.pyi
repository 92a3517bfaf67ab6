from voxserve.v1 import generator_pb2 as _generator_pb2
from google.protobuf.internal import containers as _containers
from google.protobuf import descriptor as _descriptor
from google.protobuf import message as _message
from collections.abc import Iterable as _Iterable, Mapping as _Mapping
from typing import ClassVar as _ClassVar, Optional as _Optional, Union as _Union

DESCRIPTOR: _descriptor.FileDescriptor

class EncodeVoiceRequest(_message.Message):
    __slots__ = ("codec", "pcm_f32", "sample_rate", "reference_tokens")
    CODEC_FIELD_NUMBER: _ClassVar[int]
    PCM_F32_FIELD_NUMBER: _ClassVar[int]
    SAMPLE_RATE_FIELD_NUMBER: _ClassVar[int]
    REFERENCE_TOKENS_FIELD_NUMBER: _ClassVar[int]
    codec: str
    pcm_f32: bytes
    sample_rate: int
    reference_tokens: bool
    def __init__(self, codec: _Optional[str] = ..., pcm_f32: _Optional[bytes] = ..., sample_rate: _Optional[int] = ..., reference_tokens: _Optional[bool] = ...) -> None: ...

class EncodedVoice(_message.Message):
    __slots__ = ("global_ids", "reference_semantic_ids", "s3_prompt", "chatterbox")
    GLOBAL_IDS_FIELD_NUMBER: _ClassVar[int]
    REFERENCE_SEMANTIC_IDS_FIELD_NUMBER: _ClassVar[int]
    S3_PROMPT_FIELD_NUMBER: _ClassVar[int]
    CHATTERBOX_FIELD_NUMBER: _ClassVar[int]
    global_ids: _containers.RepeatedScalarFieldContainer[int]
    reference_semantic_ids: _containers.RepeatedScalarFieldContainer[int]
    s3_prompt: S3Prompt
    chatterbox: _generator_pb2.ChatterboxVoice
    def __init__(self, global_ids: _Optional[_Iterable[int]] = ..., reference_semantic_ids: _Optional[_Iterable[int]] = ..., s3_prompt: _Optional[_Union[S3Prompt, _Mapping]] = ..., chatterbox: _Optional[_Union[_generator_pb2.ChatterboxVoice, _Mapping]] = ...) -> None: ...

class DecodeRequest(_message.Message):
    __slots__ = ("start", "frame", "end")
    START_FIELD_NUMBER: _ClassVar[int]
    FRAME_FIELD_NUMBER: _ClassVar[int]
    END_FIELD_NUMBER: _ClassVar[int]
    start: DecodeStart
    frame: DecodeFrame
    end: DecodeEnd
    def __init__(self, start: _Optional[_Union[DecodeStart, _Mapping]] = ..., frame: _Optional[_Union[DecodeFrame, _Mapping]] = ..., end: _Optional[_Union[DecodeEnd, _Mapping]] = ...) -> None: ...

class DecodeStart(_message.Message):
    __slots__ = ("codec", "global_ids", "seed", "s3_prompt", "resume_from_sample", "replay_chunk_ends")
    CODEC_FIELD_NUMBER: _ClassVar[int]
    GLOBAL_IDS_FIELD_NUMBER: _ClassVar[int]
    SEED_FIELD_NUMBER: _ClassVar[int]
    S3_PROMPT_FIELD_NUMBER: _ClassVar[int]
    RESUME_FROM_SAMPLE_FIELD_NUMBER: _ClassVar[int]
    REPLAY_CHUNK_ENDS_FIELD_NUMBER: _ClassVar[int]
    codec: str
    global_ids: _containers.RepeatedScalarFieldContainer[int]
    seed: int
    s3_prompt: S3Prompt
    resume_from_sample: int
    replay_chunk_ends: _containers.RepeatedScalarFieldContainer[int]
    def __init__(self, codec: _Optional[str] = ..., global_ids: _Optional[_Iterable[int]] = ..., seed: _Optional[int] = ..., s3_prompt: _Optional[_Union[S3Prompt, _Mapping]] = ..., resume_from_sample: _Optional[int] = ..., replay_chunk_ends: _Optional[_Iterable[int]] = ...) -> None: ...

class S3Prompt(_message.Message):
    __slots__ = ("prompt_tokens", "prompt_mel_f32", "xvector")
    PROMPT_TOKENS_FIELD_NUMBER: _ClassVar[int]
    PROMPT_MEL_F32_FIELD_NUMBER: _ClassVar[int]
    XVECTOR_FIELD_NUMBER: _ClassVar[int]
    prompt_tokens: _containers.RepeatedScalarFieldContainer[int]
    prompt_mel_f32: bytes
    xvector: _containers.RepeatedScalarFieldContainer[float]
    def __init__(self, prompt_tokens: _Optional[_Iterable[int]] = ..., prompt_mel_f32: _Optional[bytes] = ..., xvector: _Optional[_Iterable[float]] = ...) -> None: ...

class DecodeFrame(_message.Message):
    __slots__ = ("token_ids",)
    TOKEN_IDS_FIELD_NUMBER: _ClassVar[int]
    token_ids: _containers.RepeatedScalarFieldContainer[int]
    def __init__(self, token_ids: _Optional[_Iterable[int]] = ...) -> None: ...

class DecodeEnd(_message.Message):
    __slots__ = ()
    def __init__(self) -> None: ...

class AudioChunk(_message.Message):
    __slots__ = ("pcm_f32", "sample_offset", "sample_rate", "final")
    PCM_F32_FIELD_NUMBER: _ClassVar[int]
    SAMPLE_OFFSET_FIELD_NUMBER: _ClassVar[int]
    SAMPLE_RATE_FIELD_NUMBER: _ClassVar[int]
    FINAL_FIELD_NUMBER: _ClassVar[int]
    pcm_f32: bytes
    sample_offset: int
    sample_rate: int
    final: bool
    def __init__(self, pcm_f32: _Optional[bytes] = ..., sample_offset: _Optional[int] = ..., sample_rate: _Optional[int] = ..., final: _Optional[bool] = ...) -> None: ...
