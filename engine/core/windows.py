"""Split question/context pairs into overlapping model windows, the way the notebook does.

Question first, `truncation="only_second"`, max_length 384, stride 128, with offsets and sequence ids. Windows are
not padded here: they are stored flat (one array for all tokens plus row splits), so the engine can bucket them by
length and pad each batch only as far as its longest window.
"""

from __future__ import annotations

import logging
import re
import unicodedata
from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np

from tokenizers import Encoding

from spanqa.engine.core.context_slices import DEFAULT_SLICE_CHARS, OUTSIDE_CONTEXT, SlicedContext, slice_context
from spanqa.engine.core.data import QAExample
from spanqa.engine.core.tokenizer import PairBatch, QATokenizer, QuestionTooLongError
from spanqa.engine.core.window_options import WindowOptions

logger = logging.getLogger(__name__)

# Combining marks are never ASCII, so only non-ASCII runs are searched for them (unicodedata has no \p{Mn} class).
_NON_ASCII = re.compile(r"[^\x00-\x7f]+")


@dataclass(frozen=True)
class PaddedWindows:
    """A batch of windows padded to its longest member, ready for a model."""

    input_ids: np.ndarray  # int64 [B, L]
    attention_mask: np.ndarray  # int64 [B, L]
    token_type_ids: np.ndarray  # int64 [B, L]
    offsets: np.ndarray  # int32 [B, L, 2], OUTSIDE_CONTEXT beyond each window and outside the context
    lengths: np.ndarray  # int64 [B]
    cls_index: np.ndarray  # int64 [B]
    example_index: np.ndarray  # int64 [B]

    def take(self, rows: np.ndarray) -> PaddedWindows:
        """The windows at `rows` (an index array), in that order, padded only as far as the longest of them."""
        width = int(self.lengths[rows].max()) if len(rows) else 0
        return PaddedWindows(
            self.input_ids[rows, :width], self.attention_mask[rows, :width], self.token_type_ids[rows, :width],
            self.offsets[rows, :width], self.lengths[rows], self.cls_index[rows], self.example_index[rows],
        )  # fmt: skip


@dataclass
class Windows:
    """All windows of a list of examples, stored flat: window i is tokens row_splits[i]:row_splits[i+1]."""

    input_ids: np.ndarray  # int32 [T]
    token_type_ids: np.ndarray  # int32 [T]
    offsets: np.ndarray  # int32 [T, 2], character offsets into the context; OUTSIDE_CONTEXT elsewhere
    row_splits: np.ndarray  # int64 [W + 1]
    example_index: np.ndarray  # int64 [W]; an example's windows are consecutive and in context order
    cls_index: np.ndarray  # int64 [W]
    start_positions: np.ndarray | None = None  # int64 [W] training labels, CLS when the answer is not fully inside
    end_positions: np.ndarray | None = None

    def __len__(self) -> int:
        return len(self.example_index)

    @property
    def lengths(self) -> np.ndarray:
        return np.diff(self.row_splits)

    def padded(self, rows: Sequence[int] | np.ndarray, pad_token_id: int, width: int | None = None) -> PaddedWindows:
        """Those windows padded to `width` (None: their longest)."""
        rows = np.asarray(rows, dtype=np.int64)
        lengths = self.lengths[rows]
        longest = int(lengths.max()) if len(rows) else 0
        if width is None or width < longest:
            width = longest
        input_ids = np.full((len(rows), width), pad_token_id, dtype=np.int64)
        token_type_ids = np.zeros((len(rows), width), dtype=np.int64)
        offsets = np.full((len(rows), width, 2), OUTSIDE_CONTEXT, dtype=np.int32)
        attention_mask = (np.arange(width) < lengths[:, None]).astype(np.int64)
        for out_row, (row, length) in enumerate(zip(rows, lengths)):
            tokens = slice(self.row_splits[row], self.row_splits[row + 1])
            input_ids[out_row, :length] = self.input_ids[tokens]
            token_type_ids[out_row, :length] = self.token_type_ids[tokens]
            offsets[out_row, :length] = self.offsets[tokens]
        return PaddedWindows(
            input_ids, attention_mask, token_type_ids, offsets, lengths, self.cls_index[rows], self.example_index[rows]
        )


class PaddedBatches(Sequence[tuple[np.ndarray, PaddedWindows]]):
    """Batches of windows, batch i being (rows[i], those windows padded to their longest), padded only when read:
    a context of millions of tokens then never has all its windows padded at once, only the batch in use."""

    def __init__(
        self, windows: Windows, rows: Sequence[np.ndarray], pad_token_id: int, widths: Sequence[int] | None = None
    ) -> None:
        """`widths`: each batch's padded width (runtime/batching.py's width buckets); None: its longest row."""
        self.windows, self.rows, self.pad_token_id = windows, list(rows), pad_token_id
        lengths = windows.lengths
        self.widths = list(widths) if widths is not None else [
            int(lengths[batch].max()) if len(batch) else 0 for batch in self.rows
        ]  # fmt: skip

    def __len__(self) -> int:
        return len(self.rows)

    def __getitem__(self, index: int) -> tuple[np.ndarray, PaddedWindows]:  # type: ignore[override]
        rows = self.rows[index]
        return rows, self.windows.padded(rows, self.pad_token_id, self.widths[index])

    @property
    def padded_tokens(self) -> int:
        """Rows x width summed over the batches, without padding them."""
        return sum(len(rows) * width for rows, width in zip(self.rows, self.widths))


def make_windows(
    tokenizer: QATokenizer,
    examples: Sequence[QAExample],
    options: WindowOptions = WindowOptions(),
    with_labels: bool = False,
    slice_chars: int | None = DEFAULT_SLICE_CHARS,
) -> Windows:
    """Tokenize examples into windows: `QATokenizer.from_folder(model_dir)`, or `QATokenizer.from_transformers(tok)`
    for a transformers fast tokenizer.

    A context longer than `slice_chars` characters is tokenized in slices (`core.context_slices`), so that its
    memory is its windows' arrays and not the tokenizer's state for the whole text; the windows are the same either
    way. None tokenizes every context whole (as does a tokenizer whose pipeline may look across spaces).
    """
    if not isinstance(tokenizer, QATokenizer):
        raise TypeError(
            f"make_windows takes a QATokenizer, got {type(tokenizer).__name__}; wrap a transformers fast tokenizer "
            "with QATokenizer.from_transformers"
        )
    _check_room(tokenizer, options)
    # The notebook strips questions: leading spaces become tokens for some vocabularies and waste the window.
    questions = [example.question.strip() for example in examples]
    sources = _window_sources(tokenizer, examples, questions, options, slice_chars)
    example_index = np.fromiter((i for i, windows in enumerate(sources) for _ in windows), dtype=np.int64)
    flat = [source for windows in sources for source in windows]
    del sources
    lengths = np.fromiter(map(_source_length, flat), dtype=np.int64, count=len(flat))
    row_splits = np.zeros(len(flat) + 1, dtype=np.int64)
    np.cumsum(lengths, out=row_splits[1:])

    input_ids = np.empty(row_splits[-1], dtype=np.int32)
    token_type_ids = np.empty(row_splits[-1], dtype=np.int32)
    offsets = np.empty((row_splits[-1], 2), dtype=np.int32)
    cls_index = np.zeros(len(flat), dtype=np.int64)
    cls_token_id = tokenizer.cls_token_id
    mark_runs: dict[int, list[tuple[int, int]]] = {}  # per context, computed once for all its windows
    context_spans = []
    for window, source in enumerate(flat):
        tokens = slice(row_splits[window], row_splits[window + 1])
        if isinstance(source, tuple):
            sliced, number = source
            span = sliced.fill(number, input_ids[tokens], token_type_ids[tokens], offsets[tokens])
        else:
            example = int(example_index[window])
            if example not in mark_runs:
                mark_runs[example] = _combining_mark_runs(examples[example].context)
            runs = mark_runs[example]
            span = _fill_from_encoding(source, input_ids[tokens], token_type_ids[tokens], offsets[tokens], runs)
        flat[window] = None  # each window's source goes as soon as it is written
        cls_index[window] = _cls_position(input_ids[tokens], cls_token_id)
        context_spans.append((None, None) if span is None else span)

    windows = Windows(input_ids, token_type_ids, offsets, row_splits, example_index, cls_index)
    if with_labels:
        windows.start_positions, windows.end_positions = _label_windows(windows, examples, context_spans)
    return windows


# A window's source: a pair encoding from the tokenizer, or window k of a context cut in slices.
_Source = Encoding | tuple[SlicedContext, int]


def _window_sources(
    tokenizer: QATokenizer, examples: Sequence[QAExample], questions: list[str], options: WindowOptions,
    slice_chars: int | None,
) -> list[list[_Source]]:  # fmt: skip
    """Each example's windows, in order: from the tokenizer's own truncation, or from its context cut in slices."""
    sources: list[list[_Source]] = [[] for _ in examples]
    long = [] if not _can_slice(tokenizer, slice_chars) else [
        i for i, example in enumerate(examples) if len(example.context) > slice_chars
    ]  # fmt: skip
    whole = sorted(set(range(len(examples))) - set(long))
    if long:
        capped = _cap_questions(tokenizer, [questions[i] for i in long], [examples[i] for i in long], options)
        for i, question in zip(long, capped):
            sliced = slice_context(tokenizer, question, examples[i].context, options, slice_chars)
            if sliced is None:  # no context token at all: one window, cheap to cut whole
                sources[i] = _encode_whole(tokenizer, [question], [""], [examples[i]], options)[0]
            else:
                _extend_over_combining_marks(sliced.offsets, _combining_mark_runs(examples[i].context))
                sources[i] = [(sliced, window) for window in range(len(sliced))]
    if whole:
        kept = [examples[i] for i in whole]
        pieces = _encode_whole(tokenizer, [questions[i] for i in whole], [e.context for e in kept], kept, options)
        for i, piece in zip(whole, pieces):
            sources[i] = piece
    return sources


def _can_slice(tokenizer: QATokenizer, slice_chars: int | None) -> bool:
    # Left-side truncation lays windows out from the context's end; only the right side's layout is reproduced.
    return slice_chars is not None and tokenizer.splits_at_spaces and tokenizer.special.truncation_side == "right"


def _source_length(source: _Source) -> int:
    if isinstance(source, tuple):
        sliced, number = source
        return sliced.window_length(number)
    return len(source.ids)


def _encode_whole(
    tokenizer: QATokenizer, questions: list[str], contexts: list[str], examples: Sequence[QAExample],
    options: WindowOptions,
) -> list[list[Encoding]]:  # fmt: skip
    """Each example's windows as the tokenizer's own truncation cuts them, the whole context in one call."""
    # Tokenize once; only when some question is over the cap (rare) cut those questions and tokenize again.
    # The pair encoding already holds each question's token count, so no separate question pass is needed.
    encoded = _encode_pairs(tokenizer, questions, contexts, options)
    if encoded is None or _longest_question(encoded) > options.max_question_tokens:
        questions = _cap_questions(tokenizer, questions, examples, options)
        encoded = _encode_pairs(tokenizer, questions, contexts, options)
    pieces: list[list[Encoding]] = [[] for _ in examples]
    for pair, encoding in zip(encoded.example_index, encoded.encodings):
        pieces[pair].append(encoding)
    return pieces


def _fill_from_encoding(
    encoding: Encoding, ids: np.ndarray, type_ids: np.ndarray, offsets: np.ndarray, mark_runs: list | None
) -> tuple[int, int] | None:
    ids[:] = encoding.ids
    type_ids[:] = encoding.type_ids
    context_start, context_end = _context_token_range(encoding.sequence_ids)
    offsets[:] = OUTSIDE_CONTEXT
    if context_start is None:
        return None
    offsets[context_start : context_end + 1] = encoding.offsets[context_start : context_end + 1]
    if mark_runs:
        _extend_over_combining_marks(offsets[context_start : context_end + 1], mark_runs)
    return context_start, context_end


def _encode_pairs(
    tokenizer: QATokenizer, questions: list[str], contexts: list[str], options: WindowOptions
) -> PairBatch | None:
    """The windows, or None when a question leaves the context no room (the tokenizer refuses the batch)."""
    try:
        return tokenizer.encode_pairs(questions, contexts, options.max_length, options.stride)
    except QuestionTooLongError:
        return None


def _longest_question(encoded: PairBatch) -> int:
    """The most question tokens in any window (every window of an example repeats its whole question)."""
    return max((encoding.sequence_ids.count(0) for encoding in encoded.encodings), default=0)


def _label_windows(windows: Windows, examples: Sequence[QAExample], context_spans) -> tuple[np.ndarray, np.ndarray]:
    """First and last token covering the first gold answer; CLS when it is not fully inside the window
    (or, in the odd case that no token overlaps it, when it consists only of characters the tokenizer drops)."""
    starts = windows.cls_index.copy()
    ends = windows.cls_index.copy()
    for window, (context_start, context_end) in enumerate(context_spans):
        example = examples[windows.example_index[window]]
        if not example.answer_texts or context_start is None:
            continue
        start_char = example.answer_starts[0]
        end_char = start_char + len(example.answer_texts[0])
        context_offsets = windows.offsets[windows.row_splits[window] :][context_start : context_end + 1]
        if not (context_offsets[0, 0] <= start_char and context_offsets[-1, 1] >= end_char):
            continue
        # The first token that ends after the answer starts and the last token that starts before it ends.
        # This equals the notebook's two while-loops whenever tokens cover the answer's first and last character;
        # where they do not (a stripped combining accent, say), the notebook's loops widen the label to a
        # neighbouring word, and this rule keeps to the tokens that overlap the answer.
        first = np.flatnonzero(context_offsets[:, 1] > start_char)
        last = np.flatnonzero(context_offsets[:, 0] < end_char)
        if len(first) and len(last) and first[0] <= last[-1]:
            starts[window] = context_start + first[0]
            ends[window] = context_start + last[-1]
    return starts, ends


def _extend_over_combining_marks(offsets: np.ndarray, runs: list[tuple[int, int]]) -> None:
    """Uncased vocabularies strip accents, so a token's offsets stop before a combining mark that follows it
    ("cafe" + U+0301). Extending the end over such marks (`_combining_mark_runs` of the context) keeps the accent in
    labels and extracted answers."""
    if not runs or not len(offsets):
        return
    run_starts, run_ends = np.array(runs).T
    ends = offsets[:, 1]
    position = np.minimum(np.searchsorted(run_starts, ends), len(run_starts) - 1)
    touches = run_starts[position] == ends
    ends[touches] = run_ends[position[touches]]


def _combining_mark_runs(context: str) -> list[tuple[int, int]]:
    """[start, end) of each maximal run of nonspacing marks (Unicode category Mn), in order."""
    runs: list[tuple[int, int]] = []
    if context.isascii():
        return runs
    for match in _NON_ASCII.finditer(context):
        for position in range(match.start(), match.end()):
            if unicodedata.category(context[position]) != "Mn":
                continue
            if runs and runs[-1][1] == position:
                runs[-1] = (runs[-1][0], position + 1)
            else:
                runs.append((position, position + 1))
    return runs


def _cap_questions(
    tokenizer: QATokenizer, questions: list[str], examples: Sequence[QAExample], options: WindowOptions
) -> list[str]:
    encodings = tokenizer.encode_texts(questions)
    too_long = [i for i, encoding in enumerate(encodings) if len(encoding.ids) > options.max_question_tokens]
    if not too_long:
        return questions
    capped = list(questions)
    for i in too_long:
        capped[i] = questions[i][: encodings[i].offsets[options.max_question_tokens - 1][1]]
    shown = ", ".join(repr(examples[i].id) for i in too_long[:5])
    logger.warning(
        "%d question(s) longer than %d tokens were truncated to fit the window (ids: %s%s)",
        len(too_long),
        options.max_question_tokens,
        shown,
        ", ..." if len(too_long) > 5 else "",
    )
    return capped


def _check_room(tokenizer: QATokenizer, options: WindowOptions) -> None:
    room = options.max_length - tokenizer.num_special_tokens_to_add(pair=True) - options.max_question_tokens
    if room <= options.stride:
        raise ValueError(
            f"max_length {options.max_length} leaves {room} context tokens after a {options.max_question_tokens}-token "
            f"question and special tokens; it must exceed the stride ({options.stride})"
        )


def _context_token_range(sequence_ids: list[int | None]) -> tuple[int | None, int | None]:
    try:
        first = sequence_ids.index(1)
    except ValueError:  # empty or whitespace-only context: the window holds no context token
        return None, None
    last = len(sequence_ids) - 1 - sequence_ids[::-1].index(1)
    return first, last


def _cls_position(ids: np.ndarray, cls_token_id: int | None) -> int:
    found = np.flatnonzero(ids == cls_token_id) if cls_token_id is not None else ()
    return int(found[0]) if len(found) else 0
