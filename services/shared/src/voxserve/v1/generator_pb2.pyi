from google.protobuf.internal import containers as _containers
from google.protobuf.internal import enum_type_wrapper as _enum_type_wrapper
from google.protobuf import descriptor as _descriptor
from google.protobuf import message as _message
from collections.abc import Iterable as _Iterable, Mapping as _Mapping
from typing import ClassVar as _ClassVar, Optional as _Optional, Union as _Union

DESCRIPTOR: _descriptor.FileDescriptor

class SamplingParams(_message.Message):
    __slots__ = ("temperature", "top_k", "top_p", "repetition_penalty", "max_tokens", "min_tokens", "seed", "min_p", "guidance", "exaggeration")
    TEMPERATURE_FIELD_NUMBER: _ClassVar[int]
    TOP_K_FIELD_NUMBER: _ClassVar[int]
    TOP_P_FIELD_NUMBER: _ClassVar[int]
    REPETITION_PENALTY_FIELD_NUMBER: _ClassVar[int]
    MAX_TOKENS_FIELD_NUMBER: _ClassVar[int]
    MIN_TOKENS_FIELD_NUMBER: _ClassVar[int]
    SEED_FIELD_NUMBER: _ClassVar[int]
    MIN_P_FIELD_NUMBER: _ClassVar[int]
    GUIDANCE_FIELD_NUMBER: _ClassVar[int]
    EXAGGERATION_FIELD_NUMBER: _ClassVar[int]
    temperature: float
    top_k: int
    top_p: float
    repetition_penalty: float
    max_tokens: int
    min_tokens: int
    seed: int
    min_p: float
    guidance: float
    exaggeration: float
    def __init__(self, temperature: _Optional[float] = ..., top_k: _Optional[int] = ..., top_p: _Optional[float] = ..., repetition_penalty: _Optional[float] = ..., max_tokens: _Optional[int] = ..., min_tokens: _Optional[int] = ..., seed: _Optional[int] = ..., min_p: _Optional[float] = ..., guidance: _Optional[float] = ..., exaggeration: _Optional[float] = ...) -> None: ...

class VoiceStyle(_message.Message):
    __slots__ = ("gender", "pitch", "speed")
    class Gender(int, metaclass=_enum_type_wrapper.EnumTypeWrapper):
        __slots__ = ()
        GENDER_UNSPECIFIED: _ClassVar[VoiceStyle.Gender]
        FEMALE: _ClassVar[VoiceStyle.Gender]
        MALE: _ClassVar[VoiceStyle.Gender]
    GENDER_UNSPECIFIED: VoiceStyle.Gender
    FEMALE: VoiceStyle.Gender
    MALE: VoiceStyle.Gender
    GENDER_FIELD_NUMBER: _ClassVar[int]
    PITCH_FIELD_NUMBER: _ClassVar[int]
    SPEED_FIELD_NUMBER: _ClassVar[int]
    gender: VoiceStyle.Gender
    pitch: int
    speed: int
    def __init__(self, gender: _Optional[_Union[VoiceStyle.Gender, str]] = ..., pitch: _Optional[int] = ..., speed: _Optional[int] = ...) -> None: ...

class GenerateRequest(_message.Message):
    __slots__ = ("text", "global_tokens", "style", "speaker", "chatterbox", "sampling")
    TEXT_FIELD_NUMBER: _ClassVar[int]
    GLOBAL_TOKENS_FIELD_NUMBER: _ClassVar[int]
    STYLE_FIELD_NUMBER: _ClassVar[int]
    SPEAKER_FIELD_NUMBER: _ClassVar[int]
    CHATTERBOX_FIELD_NUMBER: _ClassVar[int]
    SAMPLING_FIELD_NUMBER: _ClassVar[int]
    text: str
    global_tokens: GlobalTokens
    style: VoiceStyle
    speaker: Speaker
    chatterbox: ChatterboxVoice
    sampling: SamplingParams
    def __init__(self, text: _Optional[str] = ..., global_tokens: _Optional[_Union[GlobalTokens, _Mapping]] = ..., style: _Optional[_Union[VoiceStyle, _Mapping]] = ..., speaker: _Optional[_Union[Speaker, _Mapping]] = ..., chatterbox: _Optional[_Union[ChatterboxVoice, _Mapping]] = ..., sampling: _Optional[_Union[SamplingParams, _Mapping]] = ...) -> None: ...

class Speaker(_message.Message):
    __slots__ = ("name", "global_ids")
    NAME_FIELD_NUMBER: _ClassVar[int]
    GLOBAL_IDS_FIELD_NUMBER: _ClassVar[int]
    name: str
    global_ids: _containers.RepeatedScalarFieldContainer[int]
    def __init__(self, name: _Optional[str] = ..., global_ids: _Optional[_Iterable[int]] = ...) -> None: ...

class ChatterboxVoice(_message.Message):
    __slots__ = ("speaker_embedding", "prompt_tokens", "exaggeration")
    SPEAKER_EMBEDDING_FIELD_NUMBER: _ClassVar[int]
    PROMPT_TOKENS_FIELD_NUMBER: _ClassVar[int]
    EXAGGERATION_FIELD_NUMBER: _ClassVar[int]
    speaker_embedding: _containers.RepeatedScalarFieldContainer[float]
    prompt_tokens: _containers.RepeatedScalarFieldContainer[int]
    exaggeration: float
    def __init__(self, speaker_embedding: _Optional[_Iterable[float]] = ..., prompt_tokens: _Optional[_Iterable[int]] = ..., exaggeration: _Optional[float] = ...) -> None: ...

class GlobalTokens(_message.Message):
    __slots__ = ("ids", "reference_text", "reference_semantic_ids")
    IDS_FIELD_NUMBER: _ClassVar[int]
    REFERENCE_TEXT_FIELD_NUMBER: _ClassVar[int]
    REFERENCE_SEMANTIC_IDS_FIELD_NUMBER: _ClassVar[int]
    ids: _containers.RepeatedScalarFieldContainer[int]
    reference_text: str
    reference_semantic_ids: _containers.RepeatedScalarFieldContainer[int]
    def __init__(self, ids: _Optional[_Iterable[int]] = ..., reference_text: _Optional[str] = ..., reference_semantic_ids: _Optional[_Iterable[int]] = ...) -> None: ...

class TokenFrame(_message.Message):
    __slots__ = ("global_ids", "semantic_ids", "result")
    GLOBAL_IDS_FIELD_NUMBER: _ClassVar[int]
    SEMANTIC_IDS_FIELD_NUMBER: _ClassVar[int]
    RESULT_FIELD_NUMBER: _ClassVar[int]
    global_ids: _containers.RepeatedScalarFieldContainer[int]
    semantic_ids: _containers.RepeatedScalarFieldContainer[int]
    result: GenerateResult
    def __init__(self, global_ids: _Optional[_Iterable[int]] = ..., semantic_ids: _Optional[_Iterable[int]] = ..., result: _Optional[_Union[GenerateResult, _Mapping]] = ...) -> None: ...

class GenerateResult(_message.Message):
    __slots__ = ("finish_reason", "prompt_tokens", "semantic_tokens", "queue_seconds", "first_token_seconds", "total_seconds")
    class FinishReason(int, metaclass=_enum_type_wrapper.EnumTypeWrapper):
        __slots__ = ()
        FINISH_REASON_UNSPECIFIED: _ClassVar[GenerateResult.FinishReason]
        STOP: _ClassVar[GenerateResult.FinishReason]
        LENGTH: _ClassVar[GenerateResult.FinishReason]
    FINISH_REASON_UNSPECIFIED: GenerateResult.FinishReason
    STOP: GenerateResult.FinishReason
    LENGTH: GenerateResult.FinishReason
    FINISH_REASON_FIELD_NUMBER: _ClassVar[int]
    PROMPT_TOKENS_FIELD_NUMBER: _ClassVar[int]
    SEMANTIC_TOKENS_FIELD_NUMBER: _ClassVar[int]
    QUEUE_SECONDS_FIELD_NUMBER: _ClassVar[int]
    FIRST_TOKEN_SECONDS_FIELD_NUMBER: _ClassVar[int]
    TOTAL_SECONDS_FIELD_NUMBER: _ClassVar[int]
    finish_reason: GenerateResult.FinishReason
    prompt_tokens: int
    semantic_tokens: int
    queue_seconds: float
    first_token_seconds: float
    total_seconds: float
    def __init__(self, finish_reason: _Optional[_Union[GenerateResult.FinishReason, str]] = ..., prompt_tokens: _Optional[int] = ..., semantic_tokens: _Optional[int] = ..., queue_seconds: _Optional[float] = ..., first_token_seconds: _Optional[float] = ..., total_seconds: _Optional[float] = ...) -> None: ...
