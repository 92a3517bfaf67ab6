"""The segmenter: sentence ends per script, long sentences, tags, and streamed deltas."""

from __future__ import annotations

import random
import re
from itertools import pairwise

import pytest

from voxserve.gateway.segmenter import MIN_MAX_CHARS, SentenceBuffer, normalize, speakable, split_text

TAG = re.compile(r"<[A-Za-z_][\w-]{0,31}>")
WORDS = ["hello", "world", "the", "quick", "Brown", "fox", "3.14", "1,000", "Dr.", "e.g.", "J.", "it's"]
WORDS += ["नमस्ते", "क़िताब", "क्\u200dष", "दुनिया", "३२", "你好", "世界", "今天", "a" * 45, "天" * 50]
TAGS = ["<laugh>", "<sigh>", "<excited>", "<long_tag-2>"]
MARKS = [".", "!", "?", "?!", "...", ",", ";", ":", " —", "–", '."', "!)", "।", "॥", "。", "！", "，", "、"]
SPACES = [" ", " ", " ", "  ", "\n", "\t", "\u00a0", "\u3000", " \r\n "]


def squash(text: str) -> str:
    return text.replace(" ", "")


def random_text(rng: random.Random, words: int, spaced: bool = False) -> str:
    """Words with tags before and marks after some of them; never more than a tag and a mark in a row.

    `spaced`: whitespace after every word, so that only the long words are cut hard.
    """
    out = []
    for _ in range(words):
        if rng.random() < 0.15:
            out.append(rng.choice(TAGS) + rng.choice(["", " "]))
        out.append(rng.choice(WORDS))
        if rng.random() < 0.4:
            out.append(rng.choice(MARKS))
        out.append(rng.choice(SPACES if spaced else [*SPACES, "", "", "\x00", "\x07"]))
    return "".join(out)


def sentence_text(rng: random.Random, sentences: int) -> str:
    """Sentences that each fit 60 characters, in English, Hindi and Chinese, some with a leading tag."""
    out = []
    for _ in range(sentences):
        script = rng.choice(["en", "hi", "zh"])
        tag = rng.choice(TAGS) + " " if rng.random() < 0.2 else ""
        if script == "en":
            words = rng.choices(["hello", "Dr.", "Mrs.", "3.14", "e.g.", "J. R.", "fox", "etc.", "ok,"], k=4)
            out.append(tag + " ".join(words) + rng.choice([".", "!", "?", "?!", "...", '."', "!)"]) + " ")
        elif script == "hi":
            out.append(tag + " ".join(rng.choices(["नमस्ते", "क़िताब", "दुनिया", "३२,"], k=3)) + "। ")
        else:
            out.append(tag + "".join(rng.choices(["你好", "世界", "今天，"], k=3)) + rng.choice("。！？"))
        out[-1] = out[-1].replace(" ", rng.choice(SPACES))
    return "".join(out)


def deltas(rng: random.Random, text: str, longest: int) -> list[str]:
    cuts = [0]
    while cuts[-1] < len(text):
        cuts.append(cuts[-1] + rng.randint(1, longest))
    return [text[a:b] for a, b in pairwise(cuts)]


def stream(text: str, max_chars: int, longest: int, rng: random.Random) -> list[str]:
    buffer = SentenceBuffer(max_chars)
    out = []
    for delta in deltas(rng, text, longest):
        out += buffer.feed(delta)
        assert len(buffer.pending) <= 2 * max_chars
    return out + buffer.finish()


def test_normalize_whitespace_and_controls() -> None:
    assert normalize("  Hello\n\tworld\u00a0!\u3000\u2028x \x85 y  ") == "Hello world ! x y"
    assert normalize("a\x00b\x1b[0m \x7f c") == "ab[0m c"
    assert normalize("\n\t ") == ""


def test_normalize_keeps_nukta_letters_and_joiners() -> None:
    for text in ["\u0915\u093c", "\u0958", "क्\u200dष", "क्\u200cष"]:
        assert normalize(text) == text


def test_speakable() -> None:
    assert speakable("<laugh> hi")
    assert speakable("३")
    assert not speakable("<laugh> <sigh>")
    assert not speakable("... !? । 。")
    assert not speakable("")


def test_english_sentence_ends() -> None:
    text = 'He said "Hi!" Then she left... Did she?! Yes (really.) ok'
    assert split_text(text, 80, pack=False) == [
        'He said "Hi!"',
        "Then she left...",
        "Did she?!",
        "Yes (really.)",
        "ok",
    ]


def test_hindi_sentence_ends() -> None:
    text = "नमस्ते। आप कैसे हैं? मैं ठीक हूँ॥ अच्छा।बस"
    assert split_text(text, 40, pack=False) == ["नमस्ते।", "आप कैसे हैं?", "मैं ठीक हूँ॥", "अच्छा।", "बस"]


def test_chinese_sentence_ends() -> None:
    assert split_text("你好。今天天气很好！去公园吧？好", 40, pack=False) == [
        "你好。",
        "今天天气很好！",
        "去公园吧？",
        "好",
    ]


def test_abbreviations_decimals_and_initials_do_not_end_a_sentence() -> None:
    text = "Dr. Smith paid 3.14 dollars to J. R. Tolkien vs. Mrs. Brown etc. today, e.g. now. Next."
    assert split_text(text, 200, pack=False) == [text[:-6], "Next."]


def test_a_dot_without_space_after_it_is_no_end() -> None:
    assert split_text("See example.com now. And", 40, pack=False) == ["See example.com now.", "And"]


def test_sentences_are_packed_within_max_chars() -> None:
    text = "One two three. Four five six. Seven eight nine. Ten."
    assert split_text(text, 34) == ["One two three. Four five six.", "Seven eight nine. Ten."]
    assert split_text(text, 200) == [text]


def test_long_sentence_splits_at_clauses_then_spaces() -> None:
    text = (
        "one two three four five six seven, eight nine ten eleven twelve, "
        "thirteen fourteen fifteen sixteen seventeen eighteen nineteen twenty."
    )
    assert split_text(text, 40) == [
        "one two three four five six seven,",
        "eight nine ten eleven twelve,",
        "thirteen fourteen fifteen sixteen",
        "seventeen eighteen nineteen twenty.",
    ]


def test_clauses_are_packed_and_numbers_are_not_clause_ends() -> None:
    text = "At 3:45 we paid 1,000 rupees, then left; it rained all day long — nobody minded it."
    assert split_text(text, 40) == [
        "At 3:45 we paid 1,000 rupees, then left;",
        "it rained all day long —",
        "nobody minded it.",
    ]


def test_run_without_spaces_is_cut_hard_but_never_inside_a_tag() -> None:
    assert split_text("天" * 80, 34) == ["天" * 34, "天" * 34, "天" * 12]
    text = "天" * 30 + "<laugh>" + "地" * 40
    segments = split_text(text, 34)
    assert segments == ["天" * 30, "<laugh>" + "地" * 27, "地" * 13]


def test_hard_cut_keeps_marks_with_their_letter() -> None:
    text = "क" * 34 + "\u093f" + "ख" * 10
    assert split_text(text, 34) == ["क" * 33, "क\u093f" + "ख" * 10]


def test_unspeakable_pieces_join_the_next_or_the_last() -> None:
    assert split_text("Wow! ... Great. Fine! <laugh>", 40, pack=False) == [
        "Wow!",
        "... Great.",
        "Fine! <laugh>",
    ]
    assert split_text("<sigh>", 40) == []
    assert split_text("!?", 40) == []


def test_tag_only_clause_joins_the_next_clause() -> None:
    text = "We waited for a very long time, <laugh>, and then the bus finally came."
    assert split_text(text, 40) == [
        "We waited for a very long time,",
        "<laugh>, and then the bus finally came.",
    ]


def test_max_chars_below_a_tag_is_refused() -> None:
    with pytest.raises(ValueError, match="max_chars"):
        split_text("hello", MIN_MAX_CHARS - 1)
    with pytest.raises(ValueError, match="max_chars"):
        SentenceBuffer(10)


@pytest.mark.parametrize("seed", range(300))
def test_split_text_loses_nothing(seed: int) -> None:
    rng = random.Random(seed)
    text = normalize(random_text(rng, rng.randint(1, 40)))
    max_chars = rng.choice([34, 40, 60, 150])
    segments = split_text(text, max_chars, pack=rng.random() < 0.5)
    if not speakable(text):
        assert segments == []
        return
    assert squash("".join(segments)) == squash(text)
    for segment in segments:
        assert 0 < len(segment) <= max_chars
        assert segment == segment.strip()
        assert speakable(segment)


@pytest.mark.parametrize("seed", range(300))
def test_tags_are_never_cut(seed: int) -> None:
    rng = random.Random(seed)
    text = normalize(random_text(rng, rng.randint(1, 40)))
    for segment in split_text(text, rng.choice([34, 40, 60])):
        assert not re.search(r"[<>]", TAG.sub("", segment))


@pytest.mark.parametrize("seed", range(300))
def test_streaming_loses_nothing_but_an_unspeakable_tail(seed: int) -> None:
    rng = random.Random(seed)
    text = random_text(rng, rng.randint(1, 40))
    max_chars = rng.choice([34, 40, 60, 150])
    buffer = SentenceBuffer(max_chars)
    segments = []
    for delta in deltas(rng, text, 5):
        segments += buffer.feed(delta)
        if rng.random() < 0.05:
            segments += buffer.flush()
        assert len(buffer.pending) <= 2 * max_chars
    segments += buffer.finish()
    assert buffer.pending == ""
    expected, got = squash(normalize(text)), squash("".join(segments))
    assert expected.startswith(got)
    assert not speakable(expected[len(got) :])
    for segment in segments:
        assert 0 < len(segment) <= max_chars
        assert segment == segment.strip()
        assert not re.search(r"[<>]", TAG.sub("", segment))


@pytest.mark.parametrize("seed", range(300))
def test_streaming_gives_the_per_sentence_split(seed: int) -> None:
    rng = random.Random(seed)
    text = sentence_text(rng, rng.randint(1, 8))
    per_sentence = split_text(text, 60, pack=False)
    assert stream(text, 60, rng.randint(1, 3), rng) == per_sentence
    # Packing only joins whole sentences.
    packed = split_text(text, 60)
    starts = {squash("".join(per_sentence[:i])) for i in range(len(per_sentence))}
    assert {squash("".join(packed[:i])) for i in range(len(packed))} <= starts


@pytest.mark.parametrize("seed", range(300))
def test_streaming_gives_the_per_sentence_split_of_any_text(seed: int) -> None:
    """Long sentences, tags, marks and hard cuts too: the same pieces, but for a dropped unspeakable tail."""
    rng = random.Random(seed)
    text = random_text(rng, rng.randint(1, 40), spaced=True)
    max_chars = rng.choice([34, 40, 60])
    whole = split_text(text, max_chars, pack=False)
    streamed = stream(text, max_chars, rng.randint(1, 5), rng)
    if streamed != whole:
        assert streamed[:-1] == whole[:-1]
        assert whole[-1].startswith(streamed[-1])
        assert not speakable(whole[-1][len(streamed[-1]) :])


def test_streaming_releases_each_sentence_once_complete() -> None:
    buffer = SentenceBuffer(40)
    assert buffer.feed("Hello world. How") == ["Hello world."]
    assert buffer.feed(" are you?") == []
    assert buffer.feed(" 你好。") == ["How are you?", "你好。"]
    assert buffer.feed("नमस्ते।") == ["नमस्ते।"]
    assert buffer.pending == ""


def test_streaming_trailing_dot_waits_for_whitespace() -> None:
    buffer = SentenceBuffer(40)
    assert buffer.feed("It costs 3.") == []
    assert buffer.feed("14 dollars.") == []
    assert buffer.feed(" Dr.") == ["It costs 3.14 dollars."]
    assert buffer.feed(" Who") == []
    assert buffer.feed("?") == []
    assert buffer.feed("\n") == ["Dr. Who?"]


def test_streaming_whitespace_across_deltas() -> None:
    for parts in (["Hello", " ", "world."], ["Hello ", "\n world."], ["Hello", "\x00 \t", "  world", "."]):
        buffer = SentenceBuffer(40)
        assert [s for part in parts for s in buffer.feed(part)] + buffer.finish() == ["Hello world."]


def test_streaming_tag_split_across_deltas() -> None:
    buffer = SentenceBuffer(40)
    assert buffer.feed("<lau") == []
    assert buffer.feed("gh> ok. ") == ["<laugh> ok."]


def test_streaming_long_sentence_released_in_clauses() -> None:
    buffer = SentenceBuffer(40)
    out = buffer.feed("one two three four five six seven, eight nine ten")
    assert out == ["one two three four five six seven,"]
    assert buffer.pending == "eight nine ten"
    out = buffer.feed(" eleven twelve thirteen fourteen fifteen sixteen")
    assert out == ["eight nine ten eleven twelve thirteen"]
    assert buffer.feed(".") == []
    assert buffer.finish() == ["fourteen fifteen sixteen."]


def test_streaming_buffer_stays_within_max_chars() -> None:
    text = "one two, three four five; " * 20 + "天" * 100 + " aaaa" * 30
    buffer = SentenceBuffer(40)
    out = []
    for char in text:
        out += buffer.feed(char)
        assert len(buffer.pending) <= 40
    out += buffer.finish()
    assert squash("".join(out)) == squash(text)
    assert max(map(len, out)) <= 40


def test_streaming_long_sentence_keeps_its_unspeakable_end_until_the_sentence_goes_on() -> None:
    buffer = SentenceBuffer(34)
    assert buffer.feed("天" * 34 + "...") == []
    assert buffer.pending == "天" * 34 + "..."
    assert buffer.feed("地") == ["天" * 34]
    assert buffer.finish() == ["...地"]
    # Had it ended there, whole text would have kept the last character with the dots.
    assert split_text("天" * 34 + "...", 34) == ["天" * 33, "天..."]
    assert SentenceBuffer(34).feed("天" * 34 + "... ") == ["天" * 33, "天..."]


def test_streaming_hard_cut_waits_for_a_tag_still_arriving() -> None:
    buffer = SentenceBuffer(34)
    out = [s for c in "天" * 30 + "<laugh>" + "地" * 10 for s in buffer.feed(c)]
    assert out == ["天" * 30]
    assert buffer.finish() == ["<laugh>" + "地" * 10]


def test_flush_releases_a_partial_sentence() -> None:
    buffer = SentenceBuffer(40)
    assert buffer.feed("Hello wor") == []
    assert buffer.flush() == ["Hello wor"]
    assert buffer.pending == ""
    assert buffer.feed("ld. ") == ["ld."]


def test_flush_keeps_a_tag_still_arriving() -> None:
    buffer = SentenceBuffer(40)
    assert buffer.feed("Hi there <la") == []
    assert buffer.flush() == ["Hi there"]
    assert buffer.pending == "<la"
    assert buffer.feed("ugh> yes.") == []
    assert buffer.finish() == ["<laugh> yes."]


def test_flush_keeps_a_tag_only_buffer() -> None:
    buffer = SentenceBuffer(40)
    assert buffer.feed("Hi! <laugh>") == ["Hi!"]
    assert buffer.flush() == []
    assert buffer.pending == "<laugh>"
    assert buffer.feed(" yes. ") == ["<laugh> yes."]


def test_finish() -> None:
    buffer = SentenceBuffer(40)
    assert buffer.feed("Hello world") == []
    assert buffer.finish() == ["Hello world"]
    assert buffer.feed("Hi <laugh>") == []
    assert buffer.finish() == ["Hi <laugh>"]
    assert buffer.feed("Hi! <laugh>") == ["Hi!"]
    assert buffer.finish() == []
    assert buffer.pending == ""
    assert buffer.finish() == []
