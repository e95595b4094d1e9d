"""The windows of a very long context, cut without tokenizing the context whole.

Tokenizing a 10 MB context in one call holds the Rust tokenizer's per-character alignments and one `Encoding` per
window (tokens as strings, words, masks) at once: about 2 GB. Here the context is tokenized in slices of about
`slice_chars` characters, each cut at an ASCII space, and only each token's id and character offsets are kept (12
bytes a token). For tokenizers whose pipeline never looks across a space (`QATokenizer.splits_at_spaces`), the slices'
tokens are exactly the whole context's tokens, so no overlap between slices is needed. The windows are then laid out
as the tokenizer's own `only_second` truncation lays them out (`Encoding.truncate` in the tokenizers library): runs of
`room` context tokens starting every `room - stride` tokens, the last one ending at the context's last token, each
wrapped in the question's template ([CLS] question [SEP] ... [SEP]) read off one real pair encoding.
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass

import numpy as np

from spanqa.engine.core.tokenizer import QATokenizer
from spanqa.engine.core.window_options import WindowOptions

OUTSIDE_CONTEXT = -1  # offset value of every token that is not part of the context (question, specials, padding)

# Big enough that slices cost little per call, small enough that one slice's tokenizer state stays a few MB.
DEFAULT_SLICE_CHARS = 1 << 16


def slice_bounds(context: str, slice_chars: int) -> Iterator[tuple[int, int]]:
    """[start, stop) of consecutive slices covering the context, each but the last ending just before an ASCII space
    (the space opens the next slice), at most `slice_chars` long unless no space falls inside that length."""
    if slice_chars < 1:
        raise ValueError(f"slice_chars must be >= 1, got {slice_chars}")
    start, size = 0, len(context)
    while size - start > slice_chars:
        cut = context.rfind(" ", start + 1, start + slice_chars + 1)
        if cut < 0:  # no space inside the slice: extend it to the next space
            cut = context.find(" ", start + slice_chars + 1)
            if cut < 0:
                break
        yield start, cut
        start = cut
    if start < size:
        yield start, size


def context_tokens(tokenizer: QATokenizer, context: str, slice_chars: int) -> tuple[np.ndarray, np.ndarray]:
    """The context's token ids (int32 [N]) and character offsets into it (int32 [N, 2]), slice by slice."""
    ids, offsets = [], []
    for start, stop in slice_bounds(context, slice_chars):
        (encoding,) = tokenizer.encode_texts([context[start:stop]])
        ids.append(np.asarray(encoding.ids, dtype=np.int32))
        offsets.append(np.asarray(encoding.offsets, dtype=np.int32).reshape(-1, 2) + np.int32(start))
        del encoding  # the next slice's tokenizer state replaces this one's
    if not ids:
        return np.zeros(0, dtype=np.int32), np.zeros((0, 2), dtype=np.int32)
    return np.concatenate(ids), np.concatenate(offsets)


@dataclass(frozen=True)
class Template:
    """A window around its context tokens, from one real pair encoding: the tokens before and after them."""

    prefix_ids: np.ndarray  # int32: [CLS] question [SEP], say
    prefix_type_ids: np.ndarray
    suffix_ids: np.ndarray  # int32: [SEP], say
    suffix_type_ids: np.ndarray
    context_type_id: int

    @property
    def special_length(self) -> int:
        return len(self.prefix_ids) + len(self.suffix_ids)


def read_template(tokenizer: QATokenizer, question: str, probe: str, options: WindowOptions) -> Template | None:
    """The template the tokenizer puts around `probe` (some context text) after `question`; None when the probe
    gives no context token to find the template's seam by."""
    (encoding,) = tokenizer.encode_pairs([question], [probe], options.max_length, options.stride).encodings[:1]
    sequence_ids = encoding.sequence_ids
    if 1 not in sequence_ids:
        return None
    first = sequence_ids.index(1)
    last = len(sequence_ids) - 1 - sequence_ids[::-1].index(1)
    ids = np.asarray(encoding.ids, dtype=np.int32)
    type_ids = np.asarray(encoding.type_ids, dtype=np.int32)
    return Template(ids[:first], type_ids[:first], ids[last + 1 :], type_ids[last + 1 :], int(type_ids[first]))


@dataclass(frozen=True)
class SlicedContext:
    """One long context's windows: window k holds context tokens starts[k]:stops[k] inside the template."""

    ids: np.ndarray  # int32 [N], the context's tokens
    offsets: np.ndarray  # int32 [N, 2]
    template: Template
    starts: np.ndarray  # int64 [W]
    stops: np.ndarray  # int64 [W]

    def __len__(self) -> int:
        return len(self.starts)

    def window_length(self, window: int) -> int:
        """Tokens in window `window`: its context tokens inside the template."""
        return int(self.stops[window] - self.starts[window]) + self.template.special_length

    def fill(self, window: int, ids: np.ndarray, type_ids: np.ndarray, offsets: np.ndarray) -> tuple[int, int] | None:
        """Write window `window` into the given rows; return its first and last context token positions (None when
        it holds no context token)."""
        template = self.template
        first, count = len(template.prefix_ids), int(self.stops[window] - self.starts[window])
        tokens = slice(self.starts[window], self.stops[window])
        ids[:first], type_ids[:first] = template.prefix_ids, template.prefix_type_ids
        ids[first : first + count] = self.ids[tokens]
        type_ids[first : first + count] = template.context_type_id
        ids[first + count :], type_ids[first + count :] = template.suffix_ids, template.suffix_type_ids
        offsets[:] = OUTSIDE_CONTEXT
        offsets[first : first + count] = self.offsets[tokens]
        return (first, first + count - 1) if count else None


def window_spans(num_tokens: int, room: int, stride: int) -> tuple[np.ndarray, np.ndarray]:
    """[start, stop) of each window's context tokens, as the tokenizers library's right-side truncation to `room`
    tokens with `stride` cuts them: every `room - stride` tokens until a window reaches the last token."""
    if num_tokens <= room:
        return np.zeros(1, dtype=np.int64), np.full(1, num_tokens, dtype=np.int64)
    if room <= stride:
        raise ValueError(f"{room} context tokens per window must exceed the stride ({stride})")
    step = room - stride
    count = -(-(num_tokens - room) // step) + 1  # windows until one ends at the last token
    starts = np.arange(count, dtype=np.int64) * step
    return starts, np.minimum(starts + room, num_tokens)


def slice_context(
    tokenizer: QATokenizer, question: str, context: str, options: WindowOptions, slice_chars: int
) -> SlicedContext | None:
    """The windows of (question, context), the question already capped; None when the context has no token (the
    caller then windows it whole, which for no token is cheap)."""
    ids, offsets = context_tokens(tokenizer, context, slice_chars)
    if not len(ids):
        return None
    # A few tokens' text, so that the probe surely gives some token even where one token's own text would not.
    template = read_template(tokenizer, question, context[offsets[0, 0] : offsets[:8, 1].max()], options)
    if template is None:
        return None
    room = options.max_length - template.special_length
    starts, stops = window_spans(len(ids), room, options.stride)
    return SlicedContext(ids, offsets, template, starts, stops)
