"""Long contexts: windows cut from a context tokenized in slices are the windows of the context tokenized whole, and
the engine, which decodes each batch as it comes back, gives the answers of one decode over all windows at once.

Slices of a few characters force hundreds of slice borders (inside words, in whitespace runs, next to multi-byte
and combining characters) on contexts that stay small, so every test is fast.
"""

from __future__ import annotations

import functools
import json
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from support.windows_oracle import SHIPPED_MODEL

import spanqa.engine.runtime.batching as batching
from spanqa.engine.core.context_slices import slice_bounds, window_spans
from spanqa.engine.core.data import QAExample
from spanqa.engine.core.decoder import DecodeOptions, decode_predictions
from spanqa.engine.core.ordered_decode import OrderedDecoder
from spanqa.engine.core.tokenizer import QATokenizer
from spanqa.engine.core.windows import WindowOptions, make_windows
from spanqa.engine.runtime.engine import QAEngine
from spanqa.engine.runtime.options import EngineOptions

SMALL = WindowOptions(max_length=40, stride=12, max_question_tokens=10)  # many windows from a short context
FIELDS = ("input_ids", "token_type_ids", "offsets", "row_splits", "example_index", "cls_index")
# Words and separators that stress the slice borders: multi-byte letters, CJK (one token a character), combining
# marks (kept inside offsets by make_windows), emoji, a literal special token, a word over WordPiece's 100-character
# limit, control characters the normalizer drops, and runs of every kind of whitespace.
PIECES = [
    "harbour", "crane", "lifted", "crates", "café", "naïve", "e\u0301", "\u0301", "東京", "の", "😀", "[SEP]",
    "[CLS]", "x" * 120, "don't", "3.14", "—", "\x00", "\x1c", "a\u200bb", "Ünïcödé", ",", ".",
]  # fmt: skip
SEPARATORS = [" ", " ", " ", "  ", "   ", "\t", "\n", " \n ", "\u00a0", "\u3000", ""]


@pytest.fixture(scope="module")
def qa_tokenizer() -> QATokenizer:
    return QATokenizer.from_folder(SHIPPED_MODEL)


def assert_same_windows(actual, expected) -> None:
    for field in FIELDS:
        np.testing.assert_array_equal(getattr(actual, field), getattr(expected, field), err_msg=field)
    for field in ("start_positions", "end_positions"):
        if getattr(expected, field) is not None:
            np.testing.assert_array_equal(getattr(actual, field), getattr(expected, field), err_msg=field)


def context_of(pieces: list[str], separators: list[str]) -> str:
    return "".join(piece + separator for piece, separator in zip(pieces, separators))


contexts = st.builds(
    context_of,
    st.lists(st.sampled_from(PIECES), min_size=0, max_size=120),
    st.lists(st.sampled_from(SEPARATORS), min_size=120, max_size=120),
)


@settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(
    context=contexts,
    slice_chars=st.integers(1, 40),
    question=st.sampled_from(["What was lifted?", "  who  ", "why " * 20, "東京?"]),
)
def test_sliced_windows_equal_whole_windows(qa_tokenizer, context, slice_chars, question):
    example = QAExample(id="q", question=question, context=context)
    short = QAExample(id="s", question="Which crane?", context="The crane.")
    examples = [short, example, short, example]
    whole = make_windows(qa_tokenizer, examples, SMALL, slice_chars=None)
    assert_same_windows(make_windows(qa_tokenizer, examples, SMALL, slice_chars=slice_chars), whole)


@pytest.mark.parametrize("slice_chars", [1, 3, 8, 64, 10_000])
def test_labels_are_the_same_when_sliced(qa_tokenizer, slice_chars):
    context = "  The harbour crane lifted crates of café tea\u0301 while 東京 clerks counted them twice. " * 12
    start = context.index("crates", 500)
    example = QAExample(id="q", question="What?", context=context, answer_texts=("crates",), answer_starts=(start,))
    whole = make_windows(qa_tokenizer, [example], SMALL, with_labels=True, slice_chars=None)
    sliced = make_windows(qa_tokenizer, [example], SMALL, with_labels=True, slice_chars=slice_chars)
    assert (whole.start_positions != whole.cls_index).any()  # the answer is inside some window
    assert_same_windows(sliced, whole)


@pytest.mark.parametrize(
    "context",
    [
        "short",  # shorter than a slice
        "one" + "x" * 300,  # no space to cut at: one slice
        " " * 500,  # whitespace only: no context token
        "   leading and trailing spaces   " * 20,
        "a " * 120,  # one token a word: window counts right at the truncation boundary
        "a " * 34,
        "a " * 35,  # "what ?" leaves 35 context tokens a window
        "a " * 36,
    ],
)
def test_edge_contexts(qa_tokenizer, context):
    example = QAExample(id="q", question="What?", context=context)
    whole = make_windows(qa_tokenizer, [example], SMALL, slice_chars=None)
    assert_same_windows(make_windows(qa_tokenizer, [example], SMALL, slice_chars=4), whole)


@given(text=st.text(alphabet="ab \n", max_size=200), slice_chars=st.integers(1, 30))
def test_slices_cover_the_text_and_cut_only_before_spaces(text, slice_chars):
    bounds = list(slice_bounds(text, slice_chars))
    assert "".join(text[start:stop] for start, stop in bounds) == text
    assert all(stop > start for start, stop in bounds)
    for (_, stop), (next_start, _) in zip(bounds, bounds[1:]):
        assert stop == next_start and text[stop] == " "
    for start, stop in bounds[:-1]:
        # longer than asked only when no space falls inside the asked length
        assert stop - start <= slice_chars or " " not in text[start + 1 : start + slice_chars + 1]


@pytest.mark.parametrize("num_tokens", [0, 1, 35, 36, 37, 59, 60, 61, 300])
def test_window_spans_follow_the_tokenizers_truncation(qa_tokenizer, num_tokens):
    room = SMALL.max_length - 3 - 1  # [CLS] ? [SEP] ... [SEP] for the one-token question "?"
    encoded = qa_tokenizer.encode_pairs(["?"], ["a " * num_tokens], SMALL.max_length, SMALL.stride)
    counts = [encoding.sequence_ids.count(1) for encoding in encoded.encodings]
    starts, stops = window_spans(num_tokens, room, SMALL.stride)
    assert (stops - starts).tolist() == counts
    assert starts[0] == 0 and stops[-1] == num_tokens


def test_only_tokenizers_that_never_look_across_spaces_are_sliced(qa_tokenizer):
    from tokenizers import Tokenizer, models, pre_tokenizers, processors

    assert qa_tokenizer.splits_at_spaces
    byte_level = Tokenizer(models.BPE())
    byte_level.pre_tokenizer = pre_tokenizers.ByteLevel()
    byte_level.post_processor = processors.TemplateProcessing(single="$A", pair="$A $B")
    assert not QATokenizer(byte_level, qa_tokenizer.special, "byte-level").splits_at_spaces


@settings(max_examples=40, deadline=None)
@given(
    data=st.data(),
    num_windows=st.integers(1, 30),
    batch_size=st.integers(1, 7),
    return_n_best=st.booleans(),
)
def test_decoding_batches_in_any_order_equals_one_decode(data, num_windows, batch_size, return_n_best):
    """Logits drawn from a few values, so that scores tie across windows: the tie rule must hold batch by batch."""
    width = 12
    lengths = np.asarray(data.draw(st.lists(st.integers(3, width), min_size=num_windows, max_size=num_windows)))
    example_index = np.sort(data.draw(st.lists(st.integers(0, 4), min_size=num_windows, max_size=num_windows)))
    rng = np.random.default_rng(data.draw(st.integers(0, 2**32 - 1)))
    start_logits = rng.integers(-2, 3, size=(num_windows, width)).astype(np.float32)
    end_logits = rng.integers(-2, 3, size=(num_windows, width)).astype(np.float32)
    offsets = np.stack([np.arange(width) * 2, np.arange(width) * 2 + 1], axis=-1).astype(np.int32)
    offsets = np.broadcast_to(offsets, (num_windows, width, 2)).copy()
    offsets[:, :2] = -1  # question and specials
    cls_index = np.zeros(num_windows, dtype=np.int64)
    contexts = ["x" * (2 * width)] * 5
    options = DecodeOptions(n_best=3, max_answer_length=4, return_n_best=return_n_best)
    expected = decode_predictions(
        contexts, start_logits, end_logits, offsets, lengths, cls_index, example_index, options
    )

    order = np.asarray(data.draw(st.permutations(range(num_windows))))
    decoder = OrderedDecoder(example_index, len(contexts), options)
    for first in range(0, num_windows, batch_size):
        rows = order[first : first + batch_size]
        width_now = int(lengths[rows].max())  # each batch padded only to its own longest, as the engine pads
        batch = _Batch(offsets[rows, :width_now], lengths[rows], cls_index[rows], example_index[rows])
        decoder.add(rows, start_logits[rows, :width_now], end_logits[rows, :width_now], batch)
    assert decoder.answers(contexts) == expected


class _Batch:
    """The fields of a PaddedWindows batch the decoder reads."""

    def __init__(self, offsets, lengths, cls_index, example_index):
        self.offsets, self.lengths, self.cls_index, self.example_index = offsets, lengths, cls_index, example_index


def unsliced_answers(engine: QAEngine, examples: list[QAExample]):
    """The engine's answers as it computed them before slicing and streaming: the whole context tokenized at once,
    every window padded, every batch's logits kept, one decode over all windows."""
    windows = make_windows(engine.tokenizer, examples, engine.window_options, slice_chars=None)
    everything = windows.padded(np.arange(len(windows)), engine._pad_token_id)
    start_logits = np.zeros(everything.input_ids.shape, dtype=np.float32)
    end_logits = np.zeros(everything.input_ids.shape, dtype=np.float32)
    options = engine.options
    for rows in batching.pack_batches(windows.lengths, options.max_batch_tokens, options.max_batch_windows):
        batch = everything.take(rows)
        start, end = engine.backend.run(batch)
        start_logits[rows, : start.shape[1]], end_logits[rows, : end.shape[1]] = start, end
    return decode_predictions(
        [example.context for example in examples], start_logits, end_logits, everything.offsets, everything.lengths,
        everything.cls_index, everything.example_index, options.decode, ids=[example.id for example in examples],
    )  # fmt: skip


@pytest.mark.parametrize("backend", ["onnx", "torch"])
def test_engine_answers_equal_the_unsliced_path(tiny_model, tiny_onnx, backend, monkeypatch, one_torch_thread):
    # Slices of 7 characters inside the engine: thousands of slice borders over these contexts.
    monkeypatch.setattr(batching, "make_windows", functools.partial(make_windows, slice_chars=7))
    options = EngineOptions(
        window=WindowOptions(max_length=48, stride=16, max_question_tokens=16), lookahead=4, max_batch_windows=3,
        decode=DecodeOptions(return_n_best=True, null_threshold=0.0),
    )
    engine = QAEngine(tiny_onnx if backend == "onnx" else tiny_model, options=options)
    repeated = "word " * 2000  # identical windows, identical logits: ties across windows everywhere
    sentences = "The harbour crane lifted crates of café tea\u0301 while 東京 clerks counted them  twice.\n" * 60
    examples = [
        QAExample(id="repeated", question="Which word?", context=repeated),
        QAExample(id="short", question="What?", context="A short context."),
        QAExample(id="sentences", question="What did the crane lift?", context=sentences),
        QAExample(id="blank", question="Anything?", context=" " * 300),
        QAExample(id="short2", question="Who counted?", context="The clerks counted."),
    ]
    expected = []
    for first in range(0, len(examples), options.lookahead):  # the engine's groups
        expected += unsliced_answers(engine, examples[first : first + options.lookahead])
    answers = list(engine.answer_many(examples))
    assert [(a.id, a.answer, a.start, a.end, a.n_best) for a in answers] == [
        (a.id, a.answer, a.start, a.end, a.n_best) for a in expected
    ]
    np.testing.assert_allclose([a.score for a in answers], [a.score for a in expected], rtol=1e-6)
    assert engine.stats.windows > 100


MEMORY_PROBE = r"""
import json, sys
from pathlib import Path
from spanqa.engine.core.data import QAExample
from spanqa.engine.core.tokenizer import QATokenizer
from spanqa.engine.core.windows import make_windows

def status_mib(field):
    line = next(l for l in Path("/proc/self/status").read_text().splitlines() if l.startswith(field + ":"))
    return int(line.split()[1]) / 1024

tokenizer = QATokenizer.from_folder(sys.argv[1])
make_windows(tokenizer, [QAExample(id="w", question="Warm up?", context="A short context.")])
context = "The harbour crane lifted crates of tea while the clerks counted them twice. " * (4 * 2**20 // 76)
Path("/proc/self/clear_refs").write_text("5")  # resets the peak RSS (VmHWM) to the current RSS
baseline = status_mib("VmRSS")
windows = make_windows(tokenizer, [QAExample(id="long", question="What?", context=context)])
arrays = sum(getattr(windows, name).nbytes for name in ("input_ids", "token_type_ids", "offsets", "row_splits"))
print(json.dumps({"growth_mib": status_mib("VmHWM") - baseline, "arrays_mib": arrays / 2**20, "windows": len(windows)}))
"""


@pytest.mark.skipif(not Path("/proc/self/clear_refs").exists(), reason="peak RSS reset needs Linux /proc")
def test_four_megabyte_context_is_windowed_in_little_more_than_its_arrays():
    """Whole, 4 MiB of sentences peaked at about 640 MiB in the tokenizer (159 MiB a MiB, RELIABILITY.md)."""
    finished = subprocess.run(
        [sys.executable, "-c", MEMORY_PROBE, str(SHIPPED_MODEL)], capture_output=True, text=True, timeout=600
    )
    assert finished.returncode == 0, finished.stderr[-2000:]
    measured = json.loads(finished.stdout.strip().splitlines()[-1])
    assert measured["windows"] > 3000
    assert measured["growth_mib"] < measured["arrays_mib"] + 60, measured
