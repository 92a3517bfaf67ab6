"""Text to segments: the gateway speaks long text one segment (one language model request) at a time.

A segment ends at a sentence end where it can. Sentences are packed into one segment up to
`max_chars`; a longer sentence is cut at the last clause mark that fits, else the last space, else
anywhere but inside a tag (`<laugh>`) or between a letter and its combining marks. Text with no
letter or digit outside tags (a lone `<laugh>`, a stray `...`) is never a segment of its own: it
joins the next piece, or the previous one at the end, as the model has nothing to say for it alone.

Streaming (`SentenceBuffer`) releases each sentence as soon as it is known to be complete, and a
sentence longer than `max_chars` piece by piece as each piece becomes certain. It never packs
sentences, so its segments do not depend on how the text was cut into deltas: fed in any deltas and
then finished, it gives exactly `split_text(text, max_chars, pack=False)`, except that
- unspeakable text that ends the input after the last segment went out is dropped;
- a mark arriving right after a CJK or Devanagari sentence end (a closing quote) starts the next
  segment, as that sentence went out at once;
- after a hard cut, the word before a `.` may be cut short, and so read as an initial or not.
"""

from __future__ import annotations

import re
import unicodedata
from collections.abc import Iterator
from itertools import pairwise

_CLOSERS = "\"'”’)\\]»」』）"
_SCRIPT_ENDS = "।॥。！？"  # they end a sentence with no space after them
_TAG = re.compile(r"<[A-Za-z_][\w-]{0,31}>", re.ASCII)
# A tag still arriving at the end of a buffer is kept whole too, lest a cut land inside it.
_ATOMIC = re.compile(r"<[A-Za-z_][\w-]{0,31}(?:>|\Z)", re.ASCII)
_TAG_ARRIVING = re.compile(r"<(?:[A-Za-z_][\w-]{0,31})?\Z", re.ASCII)
_END = re.compile(rf"(?P<marks>[.!?…{_SCRIPT_ENDS}]+)[{_CLOSERS}]*")
# A Latin `,;:` needs a space after it, or "1,000" and "3:45" would be cut.
_CLAUSE = re.compile(rf"[,;:][{_CLOSERS}]*(?= )|[—–，、；：][{_CLOSERS}]*")
_CONTROL = re.compile(r"(?!\s)[\x00-\x1f\x7f-\x9f]")
_SPACES = re.compile(r"\s+")
_JOINERS = frozenset("\u200c\u200d")  # ZWNJ, ZWJ
_ABBREVIATIONS = frozenset({"mr", "mrs", "ms", "dr", "prof", "st", "jr", "sr", "vs", "etc", "e.g", "i.e"})

MIN_MAX_CHARS = 34
"""The longest tag, which is never cut."""

Span = tuple[int, int]


def normalize(text: str) -> str:
    """Control characters dropped, any whitespace run one ASCII space, stripped.

    No NFC/NFKC: Devanagari nukta letters are composition exclusions that it would rewrite.
    """
    return _SPACES.sub(" ", _CONTROL.sub("", text)).strip(" ")


def speakable(text: str) -> bool:
    """Whether `text` has a letter or a digit outside tags."""
    return any(unicodedata.category(c)[0] in "LN" for c in _TAG.sub("", text))


def split_text(text: str, max_chars: int, *, pack: bool = True) -> list[str]:
    """The whole of `text` (normalized first) as segments of at most `max_chars` characters.

    `pack=False` gives each sentence its own segment(s), as `SentenceBuffer` does. Text with
    nothing speakable gives no segment.
    """
    _check(max_chars)
    text = normalize(text)
    if not speakable(text):
        return []
    out: list[Span] = []
    packable = False  # the last segment is a whole sentence
    for s, e in _sentences(text, final=True):
        if pack and packable and e - out[-1][0] <= max_chars:
            out[-1] = (out[-1][0], e)
            continue
        pieces = _pieces(text, (s, e), max_chars, final=True)
        out += pieces
        packable = len(pieces) == 1
    return [text[s:e] for s, e in out]


class SentenceBuffer:
    """Text arriving in deltas (an LLM writing) to segments, each released once it is complete."""

    def __init__(self, max_chars: int) -> None:
        _check(max_chars)
        self.max_chars = max_chars
        self._text = ""
        """Normalized text not yet released; it keeps one trailing space, which completes a `.`."""

    @property
    def pending(self) -> str:
        return self._text.strip(" ")

    def feed(self, delta: str) -> list[str]:
        """Appends `delta`; returns the segments complete now."""
        delta = _SPACES.sub(" ", _CONTROL.sub("", delta))
        if not self._text or self._text.endswith(" "):
            delta = delta.lstrip(" ")
        text = self._text = self._text + delta
        if not text:
            return []
        *done, last = _sentences(text, final=False)
        ended = not text[max(_sentence_ends(text, 0, len(text)), default=0) :].strip(" ")
        # The last sentence waits unless it has ended and is speakable: it may go on, or join the next.
        waits = not ended or not speakable(text[slice(*last)])
        if not waits:
            done.append(last)
        out = [p for span in done for p in _pieces(text, span, self.max_chars, final=True)]
        self._text = ""
        if waits:
            # Its pieces but the last are certain; that one is at most `max_chars` (and unspeakable text).
            *certain, (start, _) = _pieces(text, last, self.max_chars, final=False)
            out += certain
            self._text = text[start:]
        return [text[s:e] for s, e in out]

    def flush(self) -> list[str]:
        """Releases the buffered text, ended or not, unless it is unspeakable: that waits for more.

        So does a tag still arriving at the end ("<la"), which would otherwise be read out.
        """
        arriving = _TAG_ARRIVING.search(self._text)
        cut = arriving.start() if arriving else len(self._text)
        if not speakable(self._text[:cut]):
            return []
        segments = split_text(self._text[:cut], self.max_chars, pack=False)
        self._text = self._text[cut:]
        return segments

    def finish(self) -> list[str]:
        """End of input: releases everything; unspeakable text with nothing to join is dropped."""
        segments = split_text(self._text, self.max_chars, pack=False)
        self._text = ""
        return segments


def _check(max_chars: int) -> None:
    if max_chars < MIN_MAX_CHARS:
        raise ValueError(f"max_chars must be at least {MIN_MAX_CHARS}, got {max_chars}")


def _strip(text: str, s: int, e: int) -> Span:
    chunk = text[s:e]
    return s + len(chunk) - len(chunk.lstrip(" ")), s + len(chunk.rstrip(" "))


def _sentences(text: str, final: bool) -> list[Span]:
    """Sentence spans, an unspeakable one joined to the next (to the previous at the end of `final` text).

    Not `final`: the text may go on, so an unspeakable last sentence stays apart to join what comes.
    """
    bounds = [0, *_sentence_ends(text, 0, len(text)), len(text)]
    out: list[Span] = []
    waiting: int | None = None  # where unspeakable sentences waiting for the next one start
    for a, b in pairwise(bounds):
        s, e = _strip(text, a if waiting is None else waiting, b)
        if speakable(text[s:e]):
            out.append((s, e))
            waiting = None
        elif s < e:
            waiting = s
    if waiting is not None and final and out:
        out[-1] = (out[-1][0], len(text.rstrip(" ")))
    elif waiting is not None:
        out.append(_strip(text, waiting, len(text)))
    return out


def _sentence_ends(text: str, s: int, e: int) -> Iterator[int]:
    """Positions just after the sentence ends in `text[s:e]` that are known to be ends.

    A Latin mark is one only with a space after it: until then the next character may make it
    "3.14" or "e.g.", or be a closing quote.
    """
    for m in _END.finditer(text, s, e):
        end = m.end()
        if any(c in _SCRIPT_ENDS for c in m["marks"]):
            yield end
        elif end < e and text[end] == " " and not _abbreviation(text, m):
            yield end


def _abbreviation(text: str, m: re.Match[str]) -> bool:
    """Whether the `.` of `m` ends an abbreviation or an initial ("J. R. Smith") rather than a sentence."""
    if m[0] != ".":
        return False
    start = m.start()
    while start > 0 and (text[start - 1].isalnum() or text[start - 1] == "."):
        start -= 1
    word = text[start : m.start()]
    return word.lower() in _ABBREVIATIONS or (len(word) == 1 and word.isupper())


def _pieces(text: str, span: Span, max_chars: int, final: bool) -> list[Span]:
    """`span` (one sentence) in pieces of at most `max_chars`, each as long as `_cut` allows.

    A piece depends only on the text up to `max_chars` (and a tag) past its start, so a stream can
    release it once that much has arrived and still cut where whole text would.
    """
    s, e = span
    stop = _speakable_end(text, s, e)
    out = []
    while e - s > max_chars:
        # Whole text cannot cut at or after `stop`, which would leave an unspeakable last piece.
        cut = _cut(text, s, max_chars, e, stop if final else e)
        if not final and cut >= stop and e - stop <= max_chars:
            break  # the sentence might end here, which would move the cut: wait for more text
        out.append(_strip(text, s, cut))
        s = _strip(text, cut, e)[0]
    return [*out, (s, e)] if s < e else out


def _cut(text: str, s: int, max_chars: int, e: int, stop: int) -> int:
    """The last clause boundary within `max_chars` of `s`, else the last space, else the last character.

    Never right after an unspeakable part (a tag joins what follows it) nor at or after `stop`.
    """
    reach = s + max_chars
    levels = (
        [m.end() for m in _CLAUSE.finditer(text, s, reach + 1) if m.end() <= reach],
        [i for i in range(s + 1, reach + 1) if text[i] == " "],
        _hard_cuts(text, s, reach, e),
    )
    for cuts in levels:
        previous, best = s, 0
        for cut in cuts:
            if cut < stop and speakable(text[previous:cut]):
                best = cut
            previous = cut
        if best:
            return best
    # Unspeakable text longer than max_chars (a pile of tags) or a letter with that many marks.
    return levels[2][-1] if levels[2] else reach


def _hard_cuts(text: str, s: int, reach: int, e: int) -> list[int]:
    # A tag starting within reach ends within MIN_MAX_CHARS of it, so that much text shows it whole.
    tags = _ATOMIC.finditer(text, s, min(e, reach + MIN_MAX_CHARS))
    inside = {i for m in tags for i in range(m.start() + 1, m.end())}
    return [
        i
        for i in range(s + 1, reach + 1)
        # A vowel sign, virama or nukta cut from its consonant would be spoken on its own.
        if i not in inside
        and unicodedata.category(text[i])[0] != "M"
        and _JOINERS.isdisjoint(text[i - 1 : i + 1])
    ]


def _speakable_end(text: str, s: int, e: int) -> int:
    tags = {i for m in _ATOMIC.finditer(text, s, e) for i in range(m.start(), m.end())}
    for i in range(e - 1, s - 1, -1):
        if i not in tags and unicodedata.category(text[i])[0] in "LN":
            return i + 1
    return s
