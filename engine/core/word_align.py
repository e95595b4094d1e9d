"""Widen answer spans to whole words (`DecodeOptions.align_to_words`).

The decoder's spans start and end at word pieces, so one can start or end inside a word ("Bron" of "Broncos"). An
aligned span starts where the word holding its first character starts and ends where the word holding its last
character ends; words are the tokenizer's own (`QATokenizer.word_spans`: BERT's pre-tokenizer splits at spaces and
punctuation, so "Broncos," stays "Broncos").

Text written without spaces between words is left as the model cut it: a side of a span is not widened when the
characters it would add hold one of a script written without spaces (Han, kana, Thai, Lao, Khmer, Myanmar,
Tibetan), where a tokenizer's "word" may be a whole phrase or sentence. BERT's normalizer makes each CJK character a
word of its own, so such spans are unchanged anyway; a Latin word inside Chinese text is still completed.

Only the pieces at a span's ends are tokenized: for tokenizers whose pipeline never looks across a space
(`QATokenizer.splits_at_spaces`), the whitespace-free piece holding a span's first (or last) character tokenizes
as it does inside the whole text. Other tokenizers get the whole text tokenized once per text.
"""

from __future__ import annotations

import bisect
import re

from spanqa.engine.core.tokenizer import QATokenizer

__all__ = ["WordAligner", "has_spaceless_script"]

_SPACELESS_SCRIPTS = re.compile(
    "[\u0e00-\u0eff"  # Thai, Lao
    "\u0f00-\u0fff"  # Tibetan
    "\u1000-\u109f"  # Myanmar
    "\u1780-\u17ff"  # Khmer
    "\u3040-\u30ff\u31f0-\u31ff\uff66-\uff9f"  # Hiragana, Katakana (and half-width)
    "\u3400-\u4dbf\u4e00-\u9fff\uf900-\ufaff\U00020000-\U0003134f]"  # Han
)
_WHITESPACE = re.compile(r"\s")
# How far from a span's ends the pieces around them may reach; a word longer than this is not widened.
_MAX_REACH = 512
_MAX_PIECES = 65536  # pieces whose words are remembered (a few MiB at most), forgotten all at once beyond


def has_spaceless_script(text: str) -> bool:
    """Whether `text` holds a character of a script written without spaces between words."""
    return _SPACELESS_SCRIPTS.search(text) is not None


class WordAligner:
    """Widens spans of texts to whole words with one tokenizer; one per engine. It remembers the words of the pieces
    it tokenized (a whitespace-free piece tokenizes alike wherever it occurs), and, for tokenizers that need a whole
    text tokenized, the last text's words."""

    def __init__(self, tokenizer: QATokenizer) -> None:
        self._tokenizer = tokenizer
        self._local = tokenizer.splits_at_spaces
        self._pieces: dict[str, tuple[list[int], list[int]]] = {}  # piece -> its words' starts and ends
        self._cached: tuple[str, list[int], list[int]] | None = None  # text, word starts, word ends

    def align(self, text: str, start: int, end: int) -> tuple[int, int]:
        """The span [start, end) of `text` widened to whole words (see the module docstring); end exclusive."""
        if end <= start:
            return start, end
        if self._local:
            offset, (starts, ends), reach = self._piece(text, start)
        else:
            offset, (starts, ends), reach = 0, self._whole(text), (-1, len(text) + 1)
        new_start = start
        word = bisect.bisect_right(starts, start - offset) - 1  # the last word starting at or before `start`
        if word >= 0 and ends[word] > start - offset:
            candidate = starts[word] + offset
            if candidate > reach[0] and not has_spaceless_script(text[candidate:start]):
                new_start = candidate
        if self._local:
            offset, (starts, ends), reach = self._piece(text, end - 1)
        new_end = end
        word = bisect.bisect_left(ends, end - offset)  # the first word ending at or after `end`
        if word < len(ends) and starts[word] < end - offset:
            candidate = ends[word] + offset
            if candidate < reach[1] and not has_spaceless_script(text[end:candidate]):
                new_end = candidate
        return new_start, new_end

    def _piece(self, text: str, position: int) -> tuple[int, tuple[list[int], list[int]], tuple[int, int]]:
        """The words of the whitespace-free piece of `text` around `position`, and the piece's offset. `reach` is
        where a word must start after (and end before) to be trusted whole: the piece's edges where it was cut
        short of a whitespace (_MAX_REACH), else just outside the piece."""
        low = max(0, position - _MAX_REACH)
        left = position
        while left > low and not _WHITESPACE.match(text, left - 1):
            left -= 1
        high = min(len(text), position + 1 + _MAX_REACH)
        found = _WHITESPACE.search(text, position, high)
        right = found.start() if found else high
        piece = text[left:right]
        words = self._pieces.get(piece)
        if words is None:
            if len(self._pieces) >= _MAX_PIECES:
                self._pieces.clear()
            spans = self._tokenizer.word_spans(piece)
            words = self._pieces[piece] = ([s for s, _ in spans], [e for _, e in spans])
        cut_left = left == low and low > 0 and not _WHITESPACE.match(text, left - 1)
        cut_right = right == high and high < len(text)
        return left, words, (left if cut_left else left - 1, right if cut_right else right + 1)

    def _whole(self, text: str) -> tuple[list[int], list[int]]:
        if self._cached is None or self._cached[0] is not text:
            spans = self._tokenizer.word_spans(text)
            self._cached = (text, [s for s, _ in spans], [e for _, e in spans])
        return self._cached[1], self._cached[2]
