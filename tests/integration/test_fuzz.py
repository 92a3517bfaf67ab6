"""Property-based input hardening: random and boundary messages for every RPC, sent to the real stack.

Every call goes to the running servers of the session `stack`. Per call:
- it ends within CALL_TIMEOUT and never with DEADLINE_EXCEEDED: cheap input never hangs a service;
- it ends OK or with a status from REFUSALS and non-empty details, never UNKNOWN or INTERNAL
  (an unhandled exception), and the status is the server's own (not the client refusing trailers
  over its metadata limit);
- where the protos document the verdict, the status is exactly that: a message that breaks a
  documented limit or the call protocol gets INVALID_ARGUMENT, one built only of valid parts gets
  OK with well-formed responses. Input whose verdict the protos leave open (control characters,
  text with nothing to speak, an s3_prompt sent to bicodec) is held to the first two only.
Valid messages ask for at most MAX_TOKENS semantic tokens per segment, so each call is quick.
After each test, all three services are alive and a normal request through the gateway works.
Every RPC takes a message of MAX_MESSAGE_BYTES and refuses one byte more with RESOURCE_EXHAUSTED.

Examples are derandomized (`derandomize=True`): every run sends the same inputs. To see what was
sent and answered, run with `--hypothesis-show-statistics`.
"""

from __future__ import annotations

import enum
import math
import struct
import time
from collections.abc import Callable, Iterable, Iterator, Sequence
from dataclasses import dataclass
from typing import Any

import grpc
import numpy as np
import pytest
from google.protobuf import text_format
from google.protobuf.message import Message
from grpc_health.v1 import health_pb2, health_pb2_grpc
from hypothesis import HealthCheck, currently_in_test_context, event, given, settings
from hypothesis import strategies as st

from tests.conftest import VOCODER_MAX_STREAM_TOKENS
from voxserve.client import synthesize
from voxserve.common.request_id import METADATA_KEY
from voxserve.common.server import MAX_MESSAGE_BYTES
from voxserve.stack import SERVICES, LocalStack
from voxserve.v1 import (
    generator_pb2,
    generator_pb2_grpc,
    speech_pb2,
    speech_pb2_grpc,
    vocoder_pb2,
    vocoder_pb2_grpc,
)

OK = grpc.StatusCode.OK
INVALID = grpc.StatusCode.INVALID_ARGUMENT
# The statuses a clear refusal may carry (each with details saying why).
REFUSALS = frozenset(
    {
        INVALID,
        grpc.StatusCode.RESOURCE_EXHAUSTED,
        grpc.StatusCode.OUT_OF_RANGE,
        grpc.StatusCode.FAILED_PRECONDITION,
        grpc.StatusCode.UNAUTHENTICATED,
    }
)
CALL_TIMEOUT = 30.0
MAX_TOKENS = 8  # semantic tokens a valid message asks for, per segment

# Documented limits (speech.proto, generator.proto, vocoder.proto; the stack's settings).
TEXT_LIMIT = 2000  # gateway and generator max_text_chars
STREAM_TEXT_LIMIT = 20000  # gateway max_stream_text_chars
GENERATOR_MAX_TOKENS = 3000
NUM_GLOBAL, GLOBAL_VOCAB, SEMANTIC_VOCAB = 32, 4096, 8192
SPARK_RATE, SAMPLES_PER_TOKEN = 16000, 320
ENCODINGS = (
    speech_pb2.AUDIO_ENCODING_UNSPECIFIED,
    speech_pb2.PCM16,
    speech_pb2.WAV,
    speech_pb2.MULAW,
    speech_pb2.OGG_OPUS,
)
OPUS_RATES = (8000, 12000, 16000, 24000, 48000)
DEFAULT_RATE = {speech_pb2.MULAW: 8000, speech_pb2.OGG_OPUS: 48000}
WAV_HEADER_BYTES = 44

INT32 = st.integers(-(2**31), 2**31 - 1)
UINT32 = st.integers(0, 2**32 - 1)
INT64 = st.integers(-(2**63), 2**63 - 1)

# The fuzz tests' settings (each adds its max_examples): no per-example deadline (the calls have
# their own), the same examples on every run, and the stack fixtures are fine to share.
FUZZ = settings(
    deadline=None,
    derandomize=True,
    suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow],
)


# --- verdicts -------------------------------------------------------------------------------------


class V(enum.Enum):
    """What the protos say a message must get."""

    OK = "valid"
    BAD = "invalid"
    ANY = "unspecified"


def worst(*verdicts: V) -> V:
    if V.BAD in verdicts:
        return V.BAD
    return V.OK if all(v is V.OK for v in verdicts) else V.ANY


@dataclass(frozen=True)
class Labelled:
    """A drawn text and its verdict; `note` describes a long one briefly, `speaks` says whether it
    has words to speak for sure."""

    value: Any
    verdict: V
    note: str = ""
    speaks: bool = False

    def __repr__(self) -> str:
        return f"Labelled({self.note or _short(repr(self.value))}, {self.verdict.name})"


def _short(text: str, limit: int = 300) -> str:
    return text if len(text) <= limit else f"{text[: limit // 2]} ...[{len(text)} chars]... {text[-40:]}"


def show(message: Message) -> str:
    """The message as one line of text format, long strings, bytes and lists cut short."""
    copy = type(message)()
    copy.CopyFrom(message)
    notes: list[str] = []
    _abbreviate(copy, notes)
    text = text_format.MessageToString(copy, as_one_line=True, as_utf8=True)
    return f"{text} [{'; '.join(notes)}]" if notes else text


def _abbreviate(message: Message, notes: list[str]) -> None:
    for field, value in message.ListFields():
        if field.type == field.TYPE_MESSAGE:
            for child in value if field.is_repeated else [value]:
                _abbreviate(child, notes)
        elif field.is_repeated and len(value) > 40:
            notes.append(f"{field.name}: {len(value)} values, the first 8 shown")
            del value[8:]
        elif field.type in (field.TYPE_STRING, field.TYPE_BYTES) and len(value) > 80:
            setattr(message, field.name, value[:24])
            notes.append(f"{field.name}: {len(value)} long, the first 24 shown")


def sampling_verdict(s: generator_pb2.SamplingParams) -> V:
    """generator.proto's ranges, checked on the float32 values the message carries."""
    ok = True
    if s.HasField("temperature"):
        ok &= 0 <= s.temperature <= 2
    if s.HasField("top_k"):
        ok &= 0 <= s.top_k <= 10000
    if s.HasField("top_p"):
        ok &= 0 < s.top_p <= 1
    if s.HasField("repetition_penalty"):
        ok &= 0 < s.repetition_penalty <= 2
    if s.HasField("max_tokens"):
        ok &= 1 <= s.max_tokens <= GENERATOR_MAX_TOKENS
    if s.HasField("min_tokens"):
        ok &= 0 <= s.min_tokens <= (s.max_tokens if s.HasField("max_tokens") else GENERATOR_MAX_TOKENS)
    return V.OK if ok else V.BAD


def style_verdict(style: generator_pb2.VoiceStyle) -> V:
    known = style.gender in generator_pb2.VoiceStyle.Gender.values()
    return V.OK if known and style.pitch <= 4 and style.speed <= 4 else V.BAD


def global_ids_verdict(ids: Sequence[int]) -> V:
    return V.OK if len(ids) == NUM_GLOBAL and all(0 <= g < GLOBAL_VOCAB for g in ids) else V.BAD


def output_rate(request: speech_pb2.SynthesizeRequest) -> int | None:
    """The output rate speech.proto gives the encoding and sample_rate; None: they are invalid."""
    encoding, rate = request.encoding, request.sample_rate
    if encoding not in ENCODINGS:
        return None
    if rate == 0:
        return DEFAULT_RATE.get(encoding, SPARK_RATE)
    if encoding == speech_pb2.OGG_OPUS:
        return rate if rate in OPUS_RATES else None
    return rate if 8000 <= rate <= 48000 else None


def config_verdict(request: speech_pb2.SynthesizeRequest, voices: dict[str, speech_pb2.Voice]) -> V:
    """Everything of a SynthesizeRequest but its text: voice, style, encoding, rate, sampling."""
    voice = voices.get(request.voice or "default")
    if voice is None and request.voice:
        return V.BAD
    style = V.OK
    if request.HasField("style") and (voice is None or voice.controllable):
        style = style_verdict(request.style)  # fixed voices ignore the style
    rate = V.OK if output_rate(request) is not None else V.BAD
    return worst(style, rate, sampling_verdict(request.sampling))


# --- strategies -----------------------------------------------------------------------------------
#
# Each composite first draws `clean`: half the examples are built of valid parts only, so that
# they get all the way through generation and decoding; the other half draw each field from its
# valid or its invalid values (one in `bad_in` invalid) and break the call protocol now and then.
# The simplest choices (those Hypothesis tries first and shrinks towards) are the valid ones, so a
# failing example shrinks to the one invalid part that matters.


def weighted(good: st.SearchStrategy[Any], bad: st.SearchStrategy[Any], bad_in: int = 5) -> Any:
    """`bad` one draw in `bad_in`, else `good`."""
    return st.integers(0, bad_in - 1).flatmap(lambda i: bad if i == bad_in - 1 else good)


def cleanly(draw: st.DrawFn) -> bool:
    return not draw(st.booleans())


@dataclass(frozen=True)
class Field:
    """A field's valid values and its invalid (or unspecified) ones."""

    good: st.SearchStrategy[Any]
    bad: st.SearchStrategy[Any]

    def pick(self, draw: st.DrawFn, clean: bool, bad_in: int = 4) -> Any:
        return draw(self.good if clean else weighted(self.good, self.bad, bad_in))


LETTER_WORDS = [
    "hello",
    "world",
    "Speech",
    "naïve",
    "café",
    "Zürich",
    "x",
    "नमस्ते",
    "क़िस्मत",
    "दुनिया",
    "你好",
    "世界",
    "こんにちは",
    "Привет",
    "مرحبا",
    "42",
    "3.14",
    "1,000",
]
DECOR = ["😀", "👍🏽", "<laugh>", "<sigh>", "...", "—", "«oui»", "(aside)", "e.g.", "Dr.", "J."]
SEPARATORS = [" ", " ", " ", ", ", ". ", "! ", "? ", "; ", " — ", "। ", "。", "，"]
ENDINGS = ["", ".", "!", "?", "…", "।", "。", "?!"]
PADS = ["", " ", "\t", "\n", "  \r\n", "\u3000", "\u2028", "\xa0"]
# Characters that tend to break text handling: controls, joiners, marks, BOM, separators, tags.
ODD_CHARS = (
    "\x00\x07\x1b\x7f\x85\x9f\u200b\u200c\u200d\u2060\ufeff\u2028\u2029\u0301\u094d\u093c\u0900"
    "क।॥中。！😀\U0001f3fd\ufffd\U0010fffd<>|/\\.,!? \t\n\r"
)
FRAGMENTS = ["<laugh>", "<|im_end|>", "<|", "|>", "<la", "<_x-1>", "...", "Mr.", "3.14", "\r\n", "  "]
# Text whose verdict the protos leave open: nothing to speak, controls only, markup halves.
ODD_TEXTS = [
    "<laugh>",
    "<laugh> <sigh>",
    "...",
    "?!",
    "😀",
    "👍🏽 😀",
    "—",
    "\x00\x07",
    "\u200b",
    "\u200d",
    "\u094d",
    "<|",
    "|>",
    "<|>",
]
# Special-token markup, which the generator refuses (its tokenizer would read it as control
# tokens); the gateway may cut a long one into segments that hold none.
MARKUP_TEXTS = ["<|im_end|>", "hi <|im_end|> there", "<|task_tts|>", "<||>", "a<|bicodec_global_1|>b"]
UNITS = {
    "latin": "The quick brown fox jumps over the lazy dog.",
    "devanagari": "नमस्ते दुनिया, यह एक परीक्षा है।",
    "cjk": "你好世界。这是一个测试。",
    "mixed": "Hello नमस्ते 你好 😀 <laugh> world, 3.14!",
}
# One long sentence: a stream speaks each sentence on its own, so sentence ends would make a long
# delta hundreds of segments (a CJK sentence is a few characters); clause marks do not.
CLAUSES = {
    "latin": "the quick brown fox jumps over the lazy dog,",
    "devanagari": "नमस्ते दुनिया, यह एक परीक्षा है,",
    "cjk": "你好世界，这是一个测试，",
    "mixed": "Hello नमस्ते 你好 😀 <laugh> world, 3.14,",
}
EMPTY_TEXTS = ["", " ", "\t\n ", "\u3000", "\n\n\n"]


@st.composite
def good_texts(draw: st.DrawFn, max_words: int = 8) -> str:
    """Speakable text with nothing to normalize: single spaces, no controls, no edge spaces."""
    words = [draw(st.sampled_from(LETTER_WORDS))]
    words += draw(st.lists(st.sampled_from(LETTER_WORDS + DECOR), max_size=max_words - 1))
    text = words[0]
    for word in words[1:]:
        text += draw(st.sampled_from(SEPARATORS)) + word
    return text + draw(st.sampled_from(ENDINGS))


def long_text(script: str, length: int, units: dict[str, str] = UNITS) -> str:
    """Exactly `length` characters of `script` text with nothing to normalize."""
    unit = units[script]
    text = " ".join([unit] * (length // len(unit) + 1))[:length]
    return text[:-1] + "a" if text.endswith(" ") else text


def long_texts(lengths: Sequence[int], scripts: Sequence[str] = tuple(UNITS)) -> st.SearchStrategy[Labelled]:
    def build(script: str, length: int) -> Labelled:
        verdict = V.OK if length <= TEXT_LIMIT else V.BAD
        return Labelled(long_text(script, length), verdict, f"long_text({script!r}, {length})")

    return st.builds(build, st.sampled_from(scripts), st.sampled_from(lengths))


def long_markup(char: str, verdict: V) -> Labelled:
    """Special-token markup as long as the text limit allows: a refusal that echoes it must still
    fit the client's metadata limit (16 KiB after percent-encoding)."""
    return Labelled(f"<|{char * (TEXT_LIMIT - 4)}|>", verdict, f"'<|' + {char!r} * 1996 + '|>'")


random_texts = st.lists(
    st.one_of(
        st.text(st.characters(codec="utf-8"), max_size=12),
        st.text(st.sampled_from(ODD_CHARS), max_size=12),
        st.sampled_from(FRAGMENTS),
    ),
    max_size=10,
).map("".join)
good_labelled = good_texts().map(lambda t: Labelled(t, V.OK, speaks=True))
padded_labelled = st.tuples(st.sampled_from(PADS), good_texts(), st.sampled_from(PADS)).map(
    lambda p: Labelled("".join(p), V.OK)
)
empty_labelled = st.sampled_from(EMPTY_TEXTS).map(lambda t: Labelled(t, V.BAD))
odd_labelled = st.sampled_from(ODD_TEXTS).map(lambda t: Labelled(t, V.ANY))
markup_labelled = st.sampled_from(MARKUP_TEXTS).map(lambda t: Labelled(t, V.ANY))
random_labelled = random_texts.map(lambda t: Labelled(t, V.ANY))

# Gateway text: 1 .. 2000 characters, counted after whitespace runs are collapsed.
SYNTHESIZE_TEXT = Field(
    st.one_of(good_labelled, good_labelled, padded_labelled, long_texts([1, 250, 251, 1999, 2000])),
    st.one_of(
        long_texts([2001, 2002, 5000]),
        st.builds(  # whether edge whitespace counts toward the limit is left open
            lambda s: Labelled(f"  {long_text(s, TEXT_LIMIT)}\n ", V.ANY, f"padded long_text({s!r}, 2000)"),
            st.sampled_from(tuple(UNITS)),
        ),
        empty_labelled,
        odd_labelled,
        markup_labelled,
        st.builds(lambda c: long_markup(c, V.ANY), st.sampled_from(["a", "न", "😀"])),
        random_labelled,
        random_labelled,
    ),
)
# Generator text: 1 .. 2000 characters after stripping. A long non-Latin text's prompt may not fit
# the model's context (INVALID_ARGUMENT), so its verdict is open.
GENERATOR_TEXT = Field(
    st.one_of(good_labelled, good_labelled, padded_labelled, long_texts([1, 1999, 2000], scripts=["latin"])),
    st.one_of(
        long_texts([2000], scripts=["devanagari", "cjk", "mixed"]).map(
            lambda t: Labelled(t.value, V.ANY, t.note)
        ),
        long_texts([2001, 2002, 5000]),
        empty_labelled,
        odd_labelled,
        random_labelled,
        random_labelled,
        markup_labelled.map(lambda t: Labelled(t.value, V.BAD)),
        st.builds(lambda c: long_markup(c, V.BAD), st.sampled_from(["a", "न", "😀"])),
    ),
)

VOICE = Field(
    st.sampled_from(["", "default", "female", "male"]),
    st.one_of(
        st.sampled_from(["nobody", "Default", " default", "default ", "default\x00", "मादा", "x" * 1000]),
        # Long ids, echoed in the error: its details must still fit the client's metadata limit.
        st.builds(lambda c, n: c * n, st.sampled_from(["v", "é", "😀"]), st.sampled_from([6000, 20000])),
        st.text(max_size=20),
    ),
)
ENCODING = Field(
    st.sampled_from(ENCODINGS), st.one_of(st.sampled_from([5, 6, 100, -1, 2**31 - 1, -(2**31)]), INT32)
)
SAMPLE_RATE = Field(
    st.one_of(st.sampled_from([0, 8000, 12000, 16000, 22050, 24000, 44100, 48000]), st.integers(8000, 48000)),
    st.one_of(st.sampled_from([7999, 48001, 1, -1, -8000, -(2**31), 2**31 - 1]), INT32),
)
OPUS_SAMPLE_RATE = st.sampled_from([0, *OPUS_RATES])

NAN, INF = math.nan, math.inf


def float32s(low: float, high: float, *, exclude_min: bool = False) -> st.SearchStrategy[float]:
    """Values a float field can hold exactly, in [low, high]."""
    return st.floats(low, high, width=32, exclude_min=exclude_min)


# Optional sampling fields: values inside and at the limits, and past them (float32 neighbours).
TEMPERATURE = Field(
    st.one_of(st.sampled_from([0.0, -0.0, 2.0, 1e-45, 0.8]), float32s(0, 2)),
    st.one_of(st.sampled_from([NAN, INF, -INF, -1e-45, 2.0000002, 3.0, -1.0]), st.floats(width=32)),
)
TOP_K = Field(
    st.one_of(st.sampled_from([0, 1, 50, 10000]), st.integers(0, 10000)),
    st.one_of(st.sampled_from([-1, 10001, -(2**31), 2**31 - 1]), INT32),
)
TOP_P = Field(
    st.one_of(st.sampled_from([1.0, 1e-45, 0.5]), float32s(0, 1, exclude_min=True)),
    st.one_of(st.sampled_from([0.0, -0.0, 1.0000001, NAN, INF, -1.0]), st.floats(width=32)),
)
REPETITION_PENALTY = Field(
    st.one_of(st.sampled_from([1.0, 2.0, 1e-45]), float32s(0, 2, exclude_min=True)),
    st.one_of(st.sampled_from([0.0, -0.0, 2.0000002, NAN, INF, -INF, -1.0]), st.floats(width=32)),
)
MAX_TOKENS_FIELD = Field(st.integers(1, MAX_TOKENS), st.sampled_from([0, -1, 3001, 2**31 - 1, -(2**31)]))
SEED = st.one_of(st.none(), st.sampled_from([0, -1, 2**63 - 1, -(2**63)]), INT64)


@st.composite
def samplings(draw: st.DrawFn, clean: bool) -> generator_pb2.SamplingParams:
    """Every field at, inside and past its limits; max_tokens always set, small when valid."""
    fields: dict[str, Any] = {}
    for name, field in [
        ("temperature", TEMPERATURE),
        ("top_k", TOP_K),
        ("top_p", TOP_P),
        ("repetition_penalty", REPETITION_PENALTY),
    ]:
        if draw(st.integers(0, 2)) == 2:  # set one time in three
            fields[name] = field.pick(draw, clean, bad_in=3)
    fields["max_tokens"] = MAX_TOKENS_FIELD.pick(draw, clean)
    top = max(fields["max_tokens"], 0)
    if draw(st.booleans()):
        fields["min_tokens"] = Field(
            st.integers(0, min(top, MAX_TOKENS)),
            st.sampled_from([-1, min(top + 1, 2**31 - 1), 3001, 2**31 - 1, -(2**31)]),
        ).pick(draw, clean, bad_in=3)
    seed = draw(SEED)
    if seed is not None:
        fields["seed"] = seed
    return generator_pb2.SamplingParams(**fields)


GENDER = Field(st.sampled_from([0, 1, 2]), st.one_of(st.sampled_from([3, -1, 2**31 - 1]), INT32))
LEVEL = Field(st.integers(0, 4), st.one_of(st.sampled_from([5, 2**32 - 1]), UINT32))


@st.composite
def styles(draw: st.DrawFn, clean: bool) -> generator_pb2.VoiceStyle:
    return generator_pb2.VoiceStyle(
        gender=GENDER.pick(draw, clean), pitch=LEVEL.pick(draw, clean), speed=LEVEL.pick(draw, clean)
    )


GLOBAL_IDS = Field(
    st.one_of(
        st.lists(st.integers(0, GLOBAL_VOCAB - 1), min_size=NUM_GLOBAL, max_size=NUM_GLOBAL),
        st.sampled_from([[0] * NUM_GLOBAL, [GLOBAL_VOCAB - 1] * NUM_GLOBAL]),
    ),
    st.one_of(
        st.builds(  # wrong counts
            lambda n, g: [g] * n, st.sampled_from([0, 1, 31, 33, 64, 1000]), st.integers(0, GLOBAL_VOCAB - 1)
        ),
        st.builds(  # one id out of range
            lambda ids, i, bad: [*ids[:i], bad, *ids[i + 1 :]],
            st.lists(st.integers(0, GLOBAL_VOCAB - 1), min_size=NUM_GLOBAL, max_size=NUM_GLOBAL),
            st.integers(0, NUM_GLOBAL - 1),
            st.one_of(
                st.sampled_from([-1, GLOBAL_VOCAB, 2**31 - 1, -(2**31)]),
                st.integers(GLOBAL_VOCAB, 2**31 - 1),
                st.integers(-(2**31), -1),
            ),
        ),
    ),
)

request_ids = st.text(st.characters(min_codepoint=0x21, max_codepoint=0x7E), max_size=100)


@dataclass(frozen=True)
class SpeechCall:
    request: speech_pb2.SynthesizeRequest
    text: Labelled
    request_id: str

    def __repr__(self) -> str:
        return f"SpeechCall(text={self.text!r}, request={show(self.request)}, request_id={self.request_id!r})"


@st.composite
def synthesize_requests(
    draw: st.DrawFn, clean: bool | None = None, text: Field = SYNTHESIZE_TEXT
) -> SpeechCall:
    clean = cleanly(draw) if clean is None else clean
    labelled = text.pick(draw, clean, bad_in=3)
    encoding = ENCODING.pick(draw, clean)
    opus = clean and encoding == speech_pb2.OGG_OPUS
    request = speech_pb2.SynthesizeRequest(
        text=labelled.value,
        voice=VOICE.pick(draw, clean),
        encoding=encoding,
        sample_rate=draw(OPUS_SAMPLE_RATE) if opus else SAMPLE_RATE.pick(draw, clean),
        sampling=draw(samplings(clean)),
        seed=draw(st.one_of(st.just(0), INT64)),
    )
    if draw(st.booleans()):
        request.style.CopyFrom(draw(styles(clean)))
    return SpeechCall(request, labelled, draw(request_ids))


def clause_texts(lengths: Sequence[int]) -> st.SearchStrategy[Labelled]:
    return st.builds(
        lambda s, n: Labelled(long_text(s, n, CLAUSES), V.OK, f"long_text({s!r}, {n}, CLAUSES)", True),
        st.sampled_from(tuple(CLAUSES)),
        st.sampled_from(lengths),
    )


# A config's text is the first delta: the stream's limit applies, not Synthesize's 2000.
STREAM_CONFIG_TEXT = Field(
    st.one_of(good_labelled, st.just(Labelled("", V.OK)), clause_texts([TEXT_LIMIT + 100])),
    st.one_of(random_labelled, odd_labelled),
)
STREAM_DELTA = Field(
    st.one_of(
        good_texts(max_words=4).map(lambda t: Labelled(t, V.OK, speaks=True)),
        good_texts(max_words=4).map(lambda t: Labelled(t + " ", V.OK, speaks=True)),
        st.sampled_from([" ", "\n", ". ", "<la", "ugh> "]).map(lambda t: Labelled(t, V.OK)),
        clause_texts([300, 1200]),
    ),
    st.one_of(
        st.just(Labelled("", V.ANY)),  # "any length from one character"
        odd_labelled,
        random_labelled,
        # Over the stream's limit in one delta: stream_verdict finds it INVALID by the total.
        st.just(Labelled("a" * (STREAM_TEXT_LIMIT + 1), V.OK, "'a' * 20001", True)),
    ),
)


@dataclass(frozen=True)
class StreamOp:
    """One SynthesizeStream message; `text` labels a config's text or a delta."""

    kind: str  # config | text | flush | end | empty
    message: speech_pb2.SynthesizeStreamRequest
    text: Labelled | None = None

    def __repr__(self) -> str:
        if self.kind == "config":
            return f"config({self.text!r}, {show(self.message.config)})"
        return f"text({self.text!r})" if self.kind == "text" else self.kind


FLUSH = StreamOp("flush", speech_pb2.SynthesizeStreamRequest(flush=speech_pb2.Flush()))
END_OF_INPUT = StreamOp("end", speech_pb2.SynthesizeStreamRequest(end=speech_pb2.EndOfInput()))
EMPTY_STREAM_MESSAGE = StreamOp("empty", speech_pb2.SynthesizeStreamRequest())


def config_ops(clean: bool) -> st.SearchStrategy[StreamOp]:
    return synthesize_requests(clean, text=STREAM_CONFIG_TEXT).map(
        lambda call: StreamOp("config", speech_pb2.SynthesizeStreamRequest(config=call.request), call.text)
    )


def text_ops(clean: bool) -> st.SearchStrategy[StreamOp]:
    deltas = STREAM_DELTA.good if clean else weighted(STREAM_DELTA.good, STREAM_DELTA.bad, 3)
    return deltas.map(lambda t: StreamOp("text", speech_pb2.SynthesizeStreamRequest(text=t.value), t))


@st.composite
def stream_calls(draw: st.DrawFn) -> list[StreamOp]:
    """A config, text deltas and flushes, an end of input or a half-close; when not `clean`, now
    and then a missing or second config, an empty message, or a message after the end."""
    clean = cleanly(draw)
    misplaced = st.one_of(st.just(END_OF_INPUT), config_ops(False), st.just(EMPTY_STREAM_MESSAGE))
    body = st.one_of(text_ops(clean), text_ops(clean), text_ops(clean), st.just(FLUSH))
    if clean:
        head = draw(config_ops(True))
    else:
        head = draw(weighted(config_ops(False), st.one_of(text_ops(False), st.just(FLUSH), misplaced), 6))
        body = weighted(body, misplaced, 8)
    ops = [head, *draw(st.lists(body, max_size=4))]
    if draw(st.integers(0, 3)):
        ops.append(END_OF_INPUT)
    if not clean and draw(st.integers(0, 4)) == 4:  # something after the end of input
        after = st.one_of(text_ops(True), st.just(FLUSH), st.just(END_OF_INPUT), config_ops(True))
        ops += [END_OF_INPUT, draw(after)]
    return ops


def stream_verdict(ops: Sequence[StreamOp], voices: dict[str, speech_pb2.Voice]) -> V:
    """speech.proto's protocol: a config first and once, text never after the end, at most
    20000 characters in all. Whether text with nothing to speak is refused is left open."""
    if not ops or ops[0].kind != "config":
        return V.BAD
    first = ops[0]
    assert first.text is not None
    verdicts = [config_verdict(first.message.config, voices), first.text.verdict]
    characters = len(first.message.config.text)
    speakable = first.text.speaks
    ended = False
    for op in ops[1:]:
        if ended:
            verdicts.append(V.BAD if op.kind == "text" else V.ANY)
        elif op.kind == "config":
            verdicts.append(V.BAD)
        elif op.kind == "empty":
            verdicts.append(V.ANY)
        elif op.kind == "end":
            ended = True
        elif op.kind == "text":
            assert op.text is not None
            characters += len(op.message.text)
            verdicts.append(op.text.verdict)
            speakable |= op.text.speaks
    if characters > STREAM_TEXT_LIMIT:
        verdicts.append(V.BAD)
    if not speakable:
        verdicts.append(V.ANY)
    return worst(*verdicts)


@dataclass(frozen=True)
class GenerateCall:
    request: generator_pb2.GenerateRequest
    text: Labelled

    def __repr__(self) -> str:
        return f"GenerateCall(text={self.text!r}, request={show(self.request)})"


@st.composite
def generate_requests(draw: st.DrawFn) -> GenerateCall:
    clean = cleanly(draw)
    text = GENERATOR_TEXT.pick(draw, clean, bad_in=3)
    request = generator_pb2.GenerateRequest(text=text.value, sampling=draw(samplings(clean)))
    voice = draw(st.sampled_from(["global_tokens", "style", "global_tokens", "none"]))
    if voice == "global_tokens":
        request.global_tokens.SetInParent()  # set even with no ids
        request.global_tokens.ids.extend(GLOBAL_IDS.pick(draw, clean, bad_in=3))
    elif voice == "style":
        request.style.CopyFrom(draw(styles(clean)))
    return GenerateCall(request, text)


def generate_verdict(call: GenerateCall) -> V:
    request = call.request
    voice = request.WhichOneof("voice")
    if voice == "global_tokens":
        voice_verdict = global_ids_verdict(request.global_tokens.ids)
    elif voice == "style":
        voice_verdict = style_verdict(request.style)
    else:
        voice_verdict = V.ANY  # generator.proto does not say what no voice means
    return worst(call.text.verdict, voice_verdict, sampling_verdict(request.sampling))


def start_message(
    codec: str, global_ids: list[int], seed: int = 0, s3_prompt: vocoder_pb2.S3Prompt | None = None
) -> vocoder_pb2.DecodeRequest:
    start = vocoder_pb2.DecodeStart(codec=codec, global_ids=global_ids, seed=seed)
    if s3_prompt is not None:
        start.s3_prompt.CopyFrom(s3_prompt)
    return vocoder_pb2.DecodeRequest(start=start)


def frame_message(ids: list[int]) -> vocoder_pb2.DecodeRequest:
    return vocoder_pb2.DecodeRequest(frame=vocoder_pb2.DecodeFrame(token_ids=ids))


DECODE_END = vocoder_pb2.DecodeRequest(end=vocoder_pb2.DecodeEnd())
EMPTY_DECODE = vocoder_pb2.DecodeRequest()
GOOD_GLOBALS = list(range(NUM_GLOBAL))
GOOD_START = start_message("bicodec", GOOD_GLOBALS)

CODEC = Field(
    st.just("bicodec"),
    st.one_of(
        st.sampled_from(["", "BiCodec", "bicodec ", " bicodec", "bicodec\x00", "snac", "s3gen"]),
        # Long names, echoed in the error: its details must still fit the client's metadata limit.
        st.builds(lambda c, n: c * n, st.sampled_from(["x", "😀"]), st.sampled_from([6000, 20000])),
        st.text(max_size=20),
    ),
)
S3_PROMPTS = st.builds(  # garbage where bicodec expects nothing
    vocoder_pb2.S3Prompt,
    prompt_tokens=st.lists(INT32, max_size=8),
    prompt_mel_f32=st.binary(max_size=64),
    xvector=st.lists(st.floats(width=32), max_size=8),
)
TOKEN_IDS = Field(
    st.one_of(
        st.lists(st.integers(0, SEMANTIC_VOCAB - 1), max_size=50),
        st.sampled_from([[0], [SEMANTIC_VOCAB - 1], []]),
        st.builds(lambda t: [t] * 200, st.integers(0, SEMANTIC_VOCAB - 1)),
    ),
    st.one_of(
        st.builds(  # one id out of range
            lambda ids, i, bad: [*ids[:i], bad, *ids[i:]],
            st.lists(st.integers(0, SEMANTIC_VOCAB - 1), max_size=20),
            st.integers(0, 20),
            st.one_of(st.sampled_from([-1, SEMANTIC_VOCAB, 2**31 - 1, -(2**31)]), INT32),
        ),
        st.builds(  # at and past the stream limit in one frame, up to 100k tokens
            lambda n, t: [t] * n,
            st.sampled_from([VOCODER_MAX_STREAM_TOKENS, VOCODER_MAX_STREAM_TOKENS + 1, 100_000]),
            st.integers(0, SEMANTIC_VOCAB - 1),
        ),
    ),
)


@st.composite
def decode_starts(draw: st.DrawFn, clean: bool) -> vocoder_pb2.DecodeRequest:
    s3_prompt = None if clean or draw(st.integers(0, 3)) < 3 else draw(S3_PROMPTS)
    return start_message(
        CODEC.pick(draw, clean, bad_in=4),
        GLOBAL_IDS.pick(draw, clean, bad_in=4),
        draw(st.one_of(st.just(0), INT64)),
        s3_prompt,
    )


@dataclass(frozen=True)
class DecodeCall:
    messages: list[vocoder_pb2.DecodeRequest]

    def __repr__(self) -> str:
        return f"DecodeCall([{', '.join(show(m) for m in self.messages)}])"


@st.composite
def decode_calls(draw: st.DrawFn) -> DecodeCall:
    """start, frames, end; when not `clean`, bad fields and now and then a protocol mutation:
    a message dropped, or one inserted anywhere (frames before start, a second start, messages
    after end, an empty message)."""
    clean = cleanly(draw)
    frames = st.builds(frame_message, TOKEN_IDS.good if clean else weighted(TOKEN_IDS.good, TOKEN_IDS.bad, 6))
    messages = [draw(decode_starts(clean)), *draw(st.lists(frames, max_size=3)), DECODE_END]
    anything = st.one_of(decode_starts(False), frames, st.just(DECODE_END), st.just(EMPTY_DECODE))
    for _ in range(0 if clean else draw(st.sampled_from([0, 1, 1, 2]))):
        mutation = draw(st.sampled_from(["drop", "insert", "append"]))
        if mutation == "drop":
            del messages[draw(st.integers(0, len(messages) - 1))]
        elif mutation == "insert":
            messages.insert(draw(st.integers(0, len(messages))), draw(anything))
        else:
            messages.append(draw(anything))
    return DecodeCall(messages)


def decode_verdict(messages: Sequence[vocoder_pb2.DecodeRequest]) -> tuple[V, int]:
    """vocoder.proto's protocol: start first (a known codec, 32 global ids in range), then frames
    of ids in [0, 8192), then end and nothing after; and the stream's token limit. Also returns
    the tokens sent."""
    if not messages or messages[0].WhichOneof("message") != "start":
        return V.BAD, 0
    start = messages[0].start
    verdicts = [V.OK if start.codec == "bicodec" else V.BAD, global_ids_verdict(start.global_ids)]
    if start.HasField("s3_prompt"):
        verdicts.append(V.ANY)  # an s3gen voice sent to bicodec: left open
    tokens, ended = 0, False
    for message in messages[1:]:
        kind = message.WhichOneof("message")
        if ended or kind in ("start", None):
            verdicts.append(V.BAD)
        elif kind == "frame":
            ids = message.frame.token_ids
            tokens += len(ids)
            verdicts.append(V.OK if all(0 <= t < SEMANTIC_VOCAB for t in ids) else V.BAD)
        else:
            ended = True
    if not ended or tokens > VOCODER_MAX_STREAM_TOKENS:
        verdicts.append(V.BAD)
    return worst(*verdicts), tokens


# --- calls and properties -------------------------------------------------------------------------


@dataclass
class Outcome:
    code: grpc.StatusCode
    details: str
    responses: list[Any]
    seconds: float


def outcome(call: Callable[[], Iterable[Any]]) -> Outcome:
    started = time.monotonic()
    responses: list[Any] = []
    try:
        for response in call():
            responses.append(response)
    except grpc.RpcError as exc:
        return Outcome(exc.code(), exc.details() or "", responses, time.monotonic() - started)
    return Outcome(OK, "", responses, time.monotonic() - started)


def check(result: Outcome, verdict: V, what: str) -> None:
    """The per-call properties; `what` is the input, for the failure message."""
    status = f"{result.code.name} after {result.seconds:.2f} s: {result.details!r}"
    if currently_in_test_context():  # tallied by --hypothesis-show-statistics
        unusual = result.code not in (OK, INVALID)
        event(f"{verdict.name} -> {result.code.name}" + (f": {result.details[:80]}" if unusual else ""))
    assert result.code != grpc.StatusCode.DEADLINE_EXCEEDED, f"no answer in {CALL_TIMEOUT} s for {what}"
    assert result.code == OK or result.code in REFUSALS, f"{status} for {what}"
    if result.code != OK:
        assert result.details.strip(), f"{status}: no details for {what}"
        # The server's own status, not the client's refusal of trailers too big to take.
        assert "received metadata size exceeds" not in result.details, f"{status} for {what}"
    if verdict is V.BAD:
        assert result.code == INVALID, f"{status} for invalid input {what}"
    elif verdict is V.OK:
        assert result.code == OK, f"{status} for valid input {what}"


def check_speech_audio(
    responses: Sequence[speech_pb2.SynthesizeResponse], request: speech_pb2.SynthesizeRequest
) -> None:
    """A successful Synthesize(Stream): audio in order at the asked rate, then one Summary."""
    assert responses and responses[-1].HasField("summary"), "the last message must be the Summary"
    audio = [r.audio for r in responses[:-1]]
    assert all(r.HasField("audio") for r in responses[:-1]), "one Summary, after all audio"
    summary = responses[-1].summary
    rate = output_rate(request)
    assert all(a.sample_rate == rate for a in audio), f"audio not at {rate} Hz"
    assert summary.segments >= 1
    assert summary.semantic_tokens <= request.sampling.max_tokens * summary.segments
    encoding = request.encoding or speech_pb2.PCM16
    if encoding == speech_pb2.OGG_OPUS:
        return
    width = 1 if encoding == speech_pb2.MULAW else 2
    header = WAV_HEADER_BYTES if encoding == speech_pb2.WAV else 0
    sent = 0
    for i, piece in enumerate(audio):
        assert piece.sample_offset == sent, f"audio message {i} at sample {piece.sample_offset}, not {sent}"
        sent += (len(piece.data) - (header if i == 0 else 0)) // width
    assert sent == summary.samples


def check_frames(frames: Sequence[generator_pb2.TokenFrame], request: generator_pb2.GenerateRequest) -> None:
    """A successful Generate: the voice once, first; semantic ids in range; the result last."""
    assert frames and frames[-1].HasField("result"), "the last frame must carry the result"
    assert not any(f.HasField("result") for f in frames[:-1]), "only the last frame carries the result"
    with_globals = [i for i, f in enumerate(frames) if f.global_ids]
    first_tokens = next((i for i, f in enumerate(frames) if f.global_ids or f.semantic_ids), None)
    assert with_globals == [first_tokens], "global ids must come once, in the first frame with tokens"
    global_ids = list(frames[with_globals[0]].global_ids)
    assert global_ids_verdict(global_ids) is V.OK, f"global ids {global_ids}"
    if request.WhichOneof("voice") == "global_tokens":
        assert global_ids == list(request.global_tokens.ids)
    semantic = [t for f in frames for t in f.semantic_ids]
    assert all(0 <= t < SEMANTIC_VOCAB for t in semantic)
    result, sampling = frames[-1].result, request.sampling
    assert result.semantic_tokens == len(semantic) <= sampling.max_tokens
    assert len(semantic) >= sampling.min_tokens, f"{len(semantic)} tokens, min_tokens {sampling.min_tokens}"
    assert result.prompt_tokens > 0
    assert result.finish_reason in (generator_pb2.GenerateResult.STOP, generator_pb2.GenerateResult.LENGTH)
    if result.finish_reason == generator_pb2.GenerateResult.LENGTH:
        assert len(semantic) == sampling.max_tokens, "LENGTH before max_tokens"


def check_chunks(chunks: Sequence[vocoder_pb2.AudioChunk], tokens: int) -> None:
    """A successful Decode: contiguous chunks, the last final, N tokens -> N x 320 samples in [-1, 1]."""
    assert chunks and chunks[-1].final and not any(c.final for c in chunks[:-1]), "exactly the last is final"
    samples = 0
    for i, chunk in enumerate(chunks):
        assert chunk.sample_offset == samples, f"chunk {i} at sample {chunk.sample_offset}, not {samples}"
        assert chunk.sample_rate == SPARK_RATE
        pcm = np.frombuffer(chunk.pcm_f32, dtype="<f4")
        assert np.all(np.isfinite(pcm)) and np.all(np.abs(pcm) <= 1.0), (
            f"chunk {i} has samples out of [-1, 1]"
        )
        samples += pcm.size
    assert samples == tokens * SAMPLES_PER_TOKEN


# --- fixtures -------------------------------------------------------------------------------------


@dataclass
class Stubs:
    speech: speech_pb2_grpc.SpeechStub
    generator: generator_pb2_grpc.GeneratorStub
    vocoder: vocoder_pb2_grpc.VocoderStub
    channels: dict[str, grpc.Channel]
    voices: dict[str, speech_pb2.Voice]


@pytest.fixture(scope="module")
def stubs(stack: LocalStack) -> Iterator[Stubs]:
    channels = {name: grpc.insecure_channel(stack.ports.address(name)) for name in SERVICES}
    speech = speech_pb2_grpc.SpeechStub(channels["gateway"])
    voices = {v.id: v for v in speech.ListVoices(speech_pb2.ListVoicesRequest(), timeout=CALL_TIMEOUT).voices}
    assert "default" in voices
    yield Stubs(
        speech,
        generator_pb2_grpc.GeneratorStub(channels["generator"]),
        vocoder_pb2_grpc.VocoderStub(channels["vocoder"]),
        channels,
        voices,
    )
    for channel in channels.values():
        channel.close()


def health_status(address: str) -> int:
    with grpc.insecure_channel(address) as channel:
        reply = health_pb2_grpc.HealthStub(channel).Check(health_pb2.HealthCheckRequest(), timeout=5)
    return reply.status


@pytest.fixture(autouse=True)
def still_serving(stack: LocalStack) -> Iterator[None]:
    """After each test: every process alive and SERVING, and a normal request works end to end."""
    yield
    for name in SERVICES:
        assert stack.processes[name].poll() is None, f"the {name} exited"
        assert health_status(stack.ports.address(name)) == health_pb2.HealthCheckResponse.SERVING
    result = synthesize(
        stack.ports.address("gateway"),
        "Still serving.",
        sampling=generator_pb2.SamplingParams(max_tokens=15),
        timeout=CALL_TIMEOUT,
    )
    assert result.samples == SAMPLES_PER_TOKEN * result.summary.semantic_tokens > 0


# --- the fuzz tests -------------------------------------------------------------------------------


@settings(FUZZ, max_examples=120)
@given(call=synthesize_requests())
def test_synthesize(stubs: Stubs, call: SpeechCall) -> None:
    request = call.request
    verdict = worst(call.text.verdict, config_verdict(request, stubs.voices))
    result = outcome(
        lambda: stubs.speech.Synthesize(
            request, timeout=CALL_TIMEOUT, metadata=((METADATA_KEY, call.request_id),)
        )
    )
    check(result, verdict, repr(call))
    if result.code == OK:
        check_speech_audio(result.responses, request)


@settings(FUZZ, max_examples=80)
@given(ops=stream_calls())
def test_synthesize_stream(stubs: Stubs, ops: list[StreamOp]) -> None:
    verdict = stream_verdict(ops, stubs.voices)
    result = outcome(
        lambda: stubs.speech.SynthesizeStream(iter([op.message for op in ops]), timeout=CALL_TIMEOUT)
    )
    check(result, verdict, repr(ops))
    if result.code == OK:
        check_speech_audio(result.responses, ops[0].message.config)


def varint(value: int) -> bytes:
    out = bytearray()
    while True:
        byte, value = value & 0x7F, value >> 7
        out.append(byte | (0x80 if value else 0))
        if not value:
            return bytes(out)


def unknown_field(number: int, wire_type: int, value: int, payload: bytes) -> bytes:
    """One field in protobuf wire format (varint, fixed64, length-delimited or fixed32)."""
    body = {
        0: varint(value % 2**64),
        1: struct.pack("<Q", value % 2**64),
        2: varint(len(payload)) + payload,
        5: struct.pack("<I", value % 2**32),
    }[wire_type]
    return varint(number << 3 | wire_type) + body


unknown_fields = st.lists(
    st.builds(
        unknown_field,
        st.one_of(st.integers(1, 20), st.integers(1, 2**29 - 1)),
        st.sampled_from([0, 1, 2, 5]),
        st.integers(0, 2**64 - 1),
        st.binary(max_size=40),
    ),
    max_size=5,
).map(b"".join)


@settings(FUZZ, max_examples=25)
@given(request=unknown_fields, request_id=request_ids)
def test_list_voices(stubs: Stubs, request: bytes, request_id: str) -> None:
    """ListVoicesRequest has no fields: any unknown ones are skipped and the answer is the same."""
    result = send_raw(stubs, "ListVoices", [request], metadata=[(METADATA_KEY, request_id)])
    check(result, V.OK, f"ListVoices({request!r}, request_id={request_id!r})")
    voices = speech_pb2.ListVoicesResponse.FromString(result.responses[0]).voices
    assert {v.id: v for v in voices} == stubs.voices


@settings(FUZZ, max_examples=150)
@given(call=generate_requests())
def test_generate(stubs: Stubs, call: GenerateCall) -> None:
    result = outcome(lambda: stubs.generator.Generate(call.request, timeout=CALL_TIMEOUT))
    check(result, generate_verdict(call), repr(call))
    if result.code == OK:
        check_frames(result.responses, call.request)


@settings(FUZZ, max_examples=150)
@given(call=decode_calls())
def test_decode(stubs: Stubs, call: DecodeCall) -> None:
    verdict, tokens = decode_verdict(call.messages)
    result = outcome(lambda: stubs.vocoder.Decode(iter(call.messages), timeout=CALL_TIMEOUT))
    check(result, verdict, repr(call))
    if result.code == OK:
        check_chunks(result.responses, tokens)


# --- the boundaries fuzzing found ----------------------------------------------------------------
#
# A refusal that quotes a long input in its details: gRPC sends the details in a trailer,
# percent-encoded (12 bytes per emoji), and one over the client's metadata limits (8 KiB soft,
# 16 KiB hard) reaches the client as RESOURCE_EXHAUSTED "received metadata size exceeds ... limit"
# instead of the INVALID_ARGUMENT the server meant. The random tests draw such inputs too; these
# run every time.

SHORT_SAMPLING = generator_pb2.SamplingParams(max_tokens=4)
METADATA_SOFT_LIMIT = 8192  # gRPC's default, in bytes


def echo_cases() -> dict[str, Callable[[Stubs], Outcome]]:
    stream_config = speech_pb2.SynthesizeRequest(voice="😀" * 6000, sampling=SHORT_SAMPLING)
    stream = [
        speech_pb2.SynthesizeStreamRequest(config=stream_config),
        speech_pb2.SynthesizeStreamRequest(text="Hello."),
    ]
    markup = long_markup("😀", V.BAD).value
    return {
        "Synthesize voice": lambda stubs: outcome(
            lambda: stubs.speech.Synthesize(
                speech_pb2.SynthesizeRequest(text="Hello.", voice="é" * 20000, sampling=SHORT_SAMPLING),
                timeout=CALL_TIMEOUT,
            )
        ),
        "SynthesizeStream config voice": lambda stubs: outcome(
            lambda: stubs.speech.SynthesizeStream(iter(stream), timeout=CALL_TIMEOUT)
        ),
        "Generate special-token markup": lambda stubs: outcome(
            lambda: stubs.generator.Generate(
                generator_pb2.GenerateRequest(
                    text=markup, global_tokens=generator_pb2.GlobalTokens(ids=GOOD_GLOBALS)
                ),
                timeout=CALL_TIMEOUT,
            )
        ),
        "Decode codec": lambda stubs: outcome(
            lambda: stubs.vocoder.Decode(
                iter([start_message("😀" * 20000, GOOD_GLOBALS), DECODE_END]), timeout=CALL_TIMEOUT
            )
        ),
    }


@pytest.mark.parametrize("case", list(echo_cases()))
def test_long_input_quoted_in_a_refusal(stubs: Stubs, case: str) -> None:
    """INVALID_ARGUMENT with its details, however long the input they quote: the details leave
    room for the other trailers inside gRPC's soft limit, past which calls are refused at random."""
    result = echo_cases()[case](stubs)
    check(result, V.BAD, case)
    encoded = sum(1 if 0x20 <= b <= 0x7E and b != ord("%") else 3 for b in result.details.encode())
    assert encoded < METADATA_SOFT_LIMIT - 1024, f"{encoded} bytes of details (percent-encoded) for {case}"


# --- message size limits --------------------------------------------------------------------------


def sized(build: Callable[[int], Message | bytes], size: int) -> bytes:
    """`build(n)` serialized, with n chosen so that it is exactly `size` bytes."""

    def encode(n: int) -> bytes:
        built = build(n)
        return built if isinstance(built, bytes) else built.SerializeToString()

    n = size
    for _ in range(8):
        data = encode(n)
        if len(data) == size:
            return data
        n += size - len(data)
    raise AssertionError(f"cannot build a message of {size} bytes")


def big_message(method: str, size: int) -> tuple[list[bytes], V]:
    """The request messages (serialized) of a call whose biggest message is `size` bytes, and
    what that call should get once the message is accepted."""
    if method == "Synthesize":
        return [sized(lambda n: speech_pb2.SynthesizeRequest(text="a" * n), size)], V.BAD
    if method == "SynthesizeStream":
        config = speech_pb2.SynthesizeStreamRequest(config=speech_pb2.SynthesizeRequest())
        big = sized(lambda n: speech_pb2.SynthesizeStreamRequest(text="a" * n), size)
        return [config.SerializeToString(), big], V.BAD
    if method == "ListVoices":
        return [sized(lambda n: unknown_field(15, 2, 0, b"\0" * n), size)], V.OK
    if method == "Generate":
        return [sized(lambda n: generator_pb2.GenerateRequest(text="a" * n), size)], V.BAD
    # Decode: a second start (refused once read) carrying a big s3 prompt, mid-stream.
    big = sized(
        lambda n: start_message("bicodec", GOOD_GLOBALS, 0, vocoder_pb2.S3Prompt(prompt_mel_f32=b"\0" * n)),
        size,
    )
    return [GOOD_START.SerializeToString(), big, DECODE_END.SerializeToString()], V.BAD


SERVICE_OF = {
    "Synthesize": "gateway",
    "SynthesizeStream": "gateway",
    "ListVoices": "gateway",
    "Generate": "generator",
    "Decode": "vocoder",
}


def send_raw(
    stubs: Stubs, method: str, messages: Sequence[bytes], metadata: Sequence[tuple[str, str]] = ()
) -> Outcome:
    """A call whose request messages are already serialized (responses come back as bytes)."""
    channel = stubs.channels[SERVICE_OF[method]]
    service = {"Generate": "Generator", "Decode": "Vocoder"}.get(method, "Speech")
    path, kw = f"/voxserve.v1.{service}/{method}", dict(timeout=CALL_TIMEOUT, metadata=tuple(metadata))
    if method in ("Decode", "SynthesizeStream"):
        return outcome(lambda: channel.stream_stream(path)(iter(messages), **kw))
    if method == "ListVoices":
        return outcome(lambda: [channel.unary_unary(path)(messages[0], **kw)])
    return outcome(lambda: channel.unary_stream(path)(messages[0], **kw))


def normal_call(stubs: Stubs, service: str) -> Outcome:
    if service == "generator":
        request = generator_pb2.GenerateRequest(
            text="Still here.",
            global_tokens=generator_pb2.GlobalTokens(ids=GOOD_GLOBALS),
            sampling=generator_pb2.SamplingParams(max_tokens=4),
        )
        return outcome(lambda: stubs.generator.Generate(request, timeout=CALL_TIMEOUT))
    if service == "vocoder":
        messages = [GOOD_START, frame_message([1, 2, 3]), DECODE_END]
        return outcome(lambda: stubs.vocoder.Decode(iter(messages), timeout=CALL_TIMEOUT))
    return outcome(lambda: [stubs.speech.ListVoices(speech_pb2.ListVoicesRequest(), timeout=CALL_TIMEOUT)])


@pytest.mark.parametrize("method", list(SERVICE_OF))
def test_message_size_limit(stubs: Stubs, method: str) -> None:
    """Every server takes messages of up to MAX_MESSAGE_BYTES and refuses one byte more with
    RESOURCE_EXHAUSTED; it keeps serving either way."""
    service = SERVICE_OF[method]
    for size in (MAX_MESSAGE_BYTES, MAX_MESSAGE_BYTES + 1):
        messages, verdict = big_message(method, size)
        assert max(map(len, messages)) == size
        result = send_raw(stubs, method, messages)
        what = f"{method} with a {size}-byte message"
        if size <= MAX_MESSAGE_BYTES:
            check(result, verdict, what)  # accepted, and answered for its content
        else:
            assert result.code == grpc.StatusCode.RESOURCE_EXHAUSTED, f"{result.code.name} for {what}"
            assert result.details.strip()
        served = normal_call(stubs, service)
        assert served.code == OK, f"{service} after {what}: {served.code.name} {served.details!r}"
