"""The Numba span decoder against the plain-Python notebook reference, plus hand-worked cases."""

from __future__ import annotations

import dataclasses

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from hypothesis.extra.numpy import arrays

from spanqa.benchmarks.notebook_postprocess import notebook_predictions, same_prediction
from spanqa.engine.core.decoder import DecodeOptions, decode_predictions, decode_spans

OUT = None  # a token outside the context
CONTEXT = "".join(chr(ord("a") + i % 26) for i in range(64))  # distinct neighbours make wrong slices visible
MAX_CHAR = 40


@dataclasses.dataclass
class Batch:
    contexts: list[str]
    start_logits: np.ndarray
    end_logits: np.ndarray
    offsets: np.ndarray
    lengths: np.ndarray
    cls_index: np.ndarray
    example_index: np.ndarray

    def arrays(self):
        return (self.start_logits, self.end_logits, self.offsets, self.lengths, self.cls_index, self.example_index)

    def only(self, example: int) -> Batch:
        rows = np.flatnonzero(self.example_index == example)
        return Batch(
            [self.contexts[example]], self.start_logits[rows], self.end_logits[rows], self.offsets[rows],
            self.lengths[rows], self.cls_index[rows], np.zeros(len(rows), dtype=np.int64),
        )  # fmt: skip


def hand_batch(windows, example_index=None, contexts=None, dtype=np.float32) -> Batch:
    """windows: (start_logits, end_logits, offsets) per window, offsets as (begin, end) or OUT; CLS at position 0."""
    width = max(len(offsets) for _, _, offsets in windows)
    start_logits = np.full((len(windows), width), np.nan, dtype=dtype)  # padding must never be read
    end_logits = np.full((len(windows), width), np.nan, dtype=dtype)
    offsets = np.full((len(windows), width, 2), -1, dtype=np.int32)
    for row, (starts, ends, window_offsets) in enumerate(windows):
        start_logits[row, : len(starts)] = starts
        end_logits[row, : len(ends)] = ends
        for position, span in enumerate(window_offsets):
            if span is not OUT:
                offsets[row, position] = span
    example_index = np.zeros(len(windows), dtype=np.int64) if example_index is None else np.asarray(example_index)
    contexts = contexts or [CONTEXT] * (int(example_index.max()) + 1)
    lengths = np.array([len(offsets) for _, _, offsets in windows], dtype=np.int64)
    return Batch(contexts, start_logits, end_logits, offsets, lengths, np.zeros(len(windows), np.int64), example_index)


def decode(batch: Batch, options=DecodeOptions(), ids=None):
    return decode_predictions(batch.contexts, *batch.arrays(), options, ids=ids)


def raw_scores(batch: Batch, options=DecodeOptions()) -> tuple[float | None, float]:
    """The first example's best span score (None without a valid pair) and null score, as the kernel sums them."""
    spans = decode_spans(*batch.arrays(), len(batch.contexts), n_best=options.n_best,
                         max_answer_length=options.max_answer_length)  # fmt: skip
    return (float(spans.scores[0, 0]) if spans.counts[0] else None), float(spans.null_scores[0])


def softmax_weight(chosen: float, candidates: list[float]) -> float:
    weights = np.exp(np.array(candidates, dtype=np.float64) - max(candidates))
    return float(np.exp(chosen - max(candidates)) / weights.sum())


def reference(batch: Batch, options=DecodeOptions()):
    return notebook_predictions(batch.contexts, *batch.arrays(), options)


# ---- random batches -------------------------------------------------------------------------------------------------

TIED_LOGITS = st.sampled_from([-2.0, -1.0, 0.0, 1.0, 2.0])  # few values: ties in logits and in sums are the rule


@st.composite
def random_batches(draw) -> Batch:
    windows_per_example = draw(st.lists(st.integers(1, 3), min_size=1, max_size=4))
    example_index = np.repeat(np.arange(len(windows_per_example)), windows_per_example)
    if draw(st.booleans()):  # an example's windows need not be adjacent
        example_index = np.array(draw(st.permutations(example_index.tolist())), dtype=np.int64)
    num_windows = len(example_index)
    width = draw(st.integers(1, 24))
    dtype = draw(st.sampled_from([np.float32, np.float64]))
    finite = draw(
        st.one_of(
            st.just(TIED_LOGITS),
            st.just(st.floats(-50, 50, width=32 if dtype == np.float32 else 64)),
        )
    )
    start_logits = draw(arrays(dtype, (num_windows, width), elements=finite))
    end_logits = draw(arrays(dtype, (num_windows, width), elements=finite))
    begins = draw(arrays(np.int32, (num_windows, width), elements=st.integers(0, MAX_CHAR - 4)))
    widths = draw(arrays(np.int32, (num_windows, width), elements=st.integers(-1, 4)))  # <= 0 exercises the char rule
    in_context = draw(arrays(np.bool_, (num_windows, width)))
    offsets = np.stack([begins, begins + widths], axis=-1)
    # A negative start offset alone marks a token outside the context; the end offset is left random at times
    # so that an end token outside the context is not already rejected by the character-length rule.
    offsets[~in_context, 0] = -1
    if draw(st.booleans()):
        offsets[~in_context, 1] = -1
    lengths = np.array(draw(st.lists(st.integers(0, width), min_size=num_windows, max_size=num_windows)))
    cls_index = np.array([draw(st.integers(0, max(length - 1, 0))) for length in lengths], dtype=np.int64)
    beyond = np.arange(width) >= lengths[:, None]
    start_logits[beyond] = np.nan  # whatever lies past a window's length must not matter
    end_logits[beyond] = np.inf
    return Batch([CONTEXT] * len(windows_per_example), start_logits, end_logits, offsets, lengths, cls_index,
                 example_index)  # fmt: skip


decode_options = st.builds(
    DecodeOptions,
    n_best=st.integers(1, 6),
    max_answer_length=st.integers(1, 8),
    return_n_best=st.booleans(),
    null_threshold=st.one_of(st.none(), st.floats(-5, 5)),
)


@settings(max_examples=300, deadline=None)
@given(random_batches(), decode_options)
def test_decoder_matches_notebook_reference(batch, options):
    ours = decode(batch, options)
    expected = reference(batch, options)
    assert len(ours) == len(expected)
    for example, (got, want) in enumerate(zip(ours, expected, strict=True)):
        assert same_prediction(got, want), (example, got, want)


@st.composite
def realistic_batches(draw) -> Batch:
    """Model-sized windows ([CLS] question [SEP] context [SEP]), where the top-k pre-filter has real work to do."""
    rng = np.random.default_rng(draw(st.integers(0, 2**32 - 1)))
    num_windows = draw(st.integers(1, 6))
    width = draw(st.integers(64, 384))
    lengths = rng.integers(width // 2, width + 1, size=num_windows)
    question_tokens = rng.integers(3, 30, size=num_windows)
    offsets = np.full((num_windows, width, 2), -1, dtype=np.int32)
    for row, (length, question) in enumerate(zip(lengths, question_tokens)):
        context_tokens = max(length - question - 3, 0)
        token_starts = np.cumsum(rng.integers(1, 8, size=context_tokens)).astype(np.int32)
        offsets[row, question + 2 : question + 2 + context_tokens, 0] = token_starts
        offsets[row, question + 2 : question + 2 + context_tokens, 1] = token_starts + rng.integers(0, 7, context_tokens)
    dtype = draw(st.sampled_from([np.float32, np.float64]))
    start_logits = rng.normal(0, draw(st.sampled_from([0.05, 1.0, 30.0])), size=(num_windows, width)).astype(dtype)
    end_logits = rng.normal(0, 1.0, size=(num_windows, width)).astype(dtype)
    if draw(st.booleans()):  # coarse values: ties among the top-k and around its threshold
        start_logits, end_logits = np.round(start_logits * 2) / 2, np.round(end_logits * 2) / 2
    example_index = np.sort(rng.integers(0, 3, size=num_windows))
    contexts = ["".join(chr(ord("a") + i % 26) for i in range(int(offsets[..., 1].max()) + 1))] * 3
    return Batch(contexts, start_logits, end_logits, offsets, lengths, np.zeros(num_windows, np.int64), example_index)


@settings(max_examples=60, deadline=None)
@given(realistic_batches(), st.sampled_from([1, 5, 20]), st.booleans())
def test_decoder_matches_notebook_reference_on_model_sized_windows(batch, n_best, return_n_best):
    options = DecodeOptions(n_best=n_best, return_n_best=return_n_best)
    ours, expected = decode(batch, options), reference(batch, options)
    assert len(ours) == len(expected) == len(batch.contexts)
    for example, (got, want) in enumerate(zip(ours, expected, strict=True)):
        assert same_prediction(got, want), (example, got, want)


@settings(max_examples=100, deadline=None)
@given(random_batches(), decode_options)
def test_batch_composition_does_not_change_predictions(batch, options):
    together = decode(batch, options)
    for example in range(len(batch.contexts)):
        assert decode(batch.only(example), options, ids=[str(example)]) == [together[example]]


@settings(max_examples=100, deadline=None)
@given(random_batches(), decode_options)
def test_returning_the_n_best_list_changes_nothing_else(batch, options):
    with_list = decode(batch, dataclasses.replace(options, return_n_best=True))
    without = decode(batch, dataclasses.replace(options, return_n_best=False))
    assert [dataclasses.replace(answer, n_best=None) for answer in with_list] == without
    for answer in with_list:
        if answer.n_best and options.null_threshold is None:  # v1: the score is the best span's n-best probability
            assert answer.score == answer.n_best[0].probability


def test_ids_name_the_answers_in_order():
    batch = hand_batch([([0, 1], [0, 1], [OUT, (0, 2)]), ([0, 1], [0, 1], [OUT, (3, 5)])], [0, 1])
    assert [answer.id for answer in decode(batch)] == ["0", "1"]
    assert [answer.id for answer in decode(batch, ids=["q7", "q3"])] == ["q7", "q3"]
    with pytest.raises(ValueError, match="got 1 ids for 2 contexts"):
        decode(batch, ids=["q7"])


def test_same_prediction_flags_every_kind_of_difference():
    prediction = reference(hand_batch([([0, 3, 1], [0, 1, 3], [OUT, (0, 2), (2, 5)])]), DecodeOptions(return_n_best=True))[0]
    assert same_prediction(prediction, prediction)
    nudged_probability = dataclasses.replace(prediction.n_best[0], probability=prediction.n_best[0].probability * (1 + 1e-6))
    for changed in (
        dataclasses.replace(prediction, score=prediction.score + 1),
        dataclasses.replace(prediction, start=prediction.start + 1),
        dataclasses.replace(prediction, n_best=prediction.n_best[:1]),
        dataclasses.replace(prediction, n_best=(nudged_probability,) + prediction.n_best[1:]),
        dataclasses.replace(prediction, n_best=None),
    ):
        assert not same_prediction(changed, prediction)


# ---- hand-worked cases ----------------------------------------------------------------------------------------------


def test_span_outside_the_context_is_never_chosen():
    # [CLS] question question [SEP] context context: the question tokens carry the highest logits.
    batch = hand_batch([([0, 9, 9, 0, 1, 0], [0, 9, 9, 0, 0, 1], [OUT, OUT, OUT, OUT, (0, 3), (4, 7)])])
    (prediction,) = decode(batch)
    assert (prediction.answer, prediction.start, prediction.end, raw_scores(batch)[0]) == (CONTEXT[0:7], 0, 7, 2.0)
    # The other valid pairs: tokens (4, 4) scores 1 + 0, (5, 5) 0 + 1.
    assert prediction.score == pytest.approx(softmax_weight(2.0, [2.0, 1.0, 1.0]), rel=1e-12)
    assert same_prediction(prediction, reference(batch)[0])


def test_max_answer_length_is_respected():
    offsets = [OUT, (0, 1), (2, 3), (4, 5), (6, 7)]
    batch = hand_batch([([0, 5, 1, 0, 0], [0, 0, 0, 1, 6], offsets)])
    assert decode(batch, DecodeOptions(max_answer_length=4))[0].answer == CONTEXT[0:7]  # tokens 1..4, 5 + 6
    shorter = DecodeOptions(max_answer_length=3)
    assert (decode(batch, shorter)[0].answer, raw_scores(batch, shorter)[0]) == (CONTEXT[2:7], 7.0)  # tokens 2..4, 1 + 6
    single = DecodeOptions(max_answer_length=1)
    assert (decode(batch, single)[0].start, decode(batch, single)[0].end, raw_scores(batch, single)[0]) == (6, 7, 6.0)


def test_only_top_n_best_positions_are_candidates():
    # The only valid pair (2, 2) ranks second for starts; with n_best=1 it is never considered.
    batch = hand_batch([([0, 5, 1], [0, 0, 1], [OUT, OUT, (3, 6)])])
    assert decode(batch, DecodeOptions(n_best=2))[0].answer == CONTEXT[3:6]
    assert decode(batch, DecodeOptions(n_best=1))[0].answer == ""


def test_best_span_is_taken_across_windows():
    first = ([0, 1, 1], [0, 1, 1], [OUT, (0, 4), (5, 9)])
    second = ([0, 3, 1], [0, 1, 2], [OUT, (5, 9), (10, 12)])
    batch = hand_batch([first, second])
    (prediction,) = decode(batch)
    assert (prediction.answer, prediction.start, prediction.end, raw_scores(batch)[0]) == (CONTEXT[5:12], 5, 12, 5.0)


def test_equal_scores_go_to_the_earlier_window_and_lower_index():
    first = ([0, 2, 2], [0, 2, 2], [OUT, (0, 3), (4, 6)])
    second = ([0, 2], [0, 2], [OUT, (10, 12)])
    batch = hand_batch([first, second])
    options = DecodeOptions(return_n_best=True, n_best=4)
    (prediction,) = decode(batch, options)
    assert (prediction.start, prediction.end) == (0, 3)  # start rank 0 (token 1), end rank 0 (token 1)
    assert [(span.start, span.end, span.score) for span in prediction.n_best] == [
        (0, 3, 4.0), (0, 6, 4.0), (4, 6, 4.0), (10, 12, 4.0),
    ]  # fmt: skip
    assert [span.probability for span in prediction.n_best] == pytest.approx([0.25] * 4)


def test_character_length_must_be_positive():
    batch = hand_batch([([0, 5, 1], [0, 5, 1], [OUT, (4, 4), (6, 8)])])  # token 1 is empty
    (prediction,) = decode(batch)
    assert (prediction.start, prediction.end, raw_scores(batch)[0]) == (4, 8, 6.0)


def test_example_without_a_valid_pair_gets_the_empty_answer():
    batch = hand_batch([([0, 1], [0, 1], [OUT, OUT]), ([0, 9, 1], [0, 1, 9], [OUT, (0, 2), (3, 5)])], [0, 1])
    no_pair, answered = decode(batch, DecodeOptions(return_n_best=True))
    assert (no_pair.answer, no_pair.start, no_pair.end, raw_scores(batch.only(0))[0]) == ("", 0, 0, None)
    assert no_pair.is_impossible and no_pair.n_best == ()
    assert no_pair.score == raw_scores(batch.only(0))[1] == 0.0  # v1: a no-answer is no candidate, so probability 0
    assert answered.answer == CONTEXT[0:5] and not answered.is_impossible
    # v2: the null answer is the only candidate, so it gets all the probability.
    assert decode(batch, DecodeOptions(null_threshold=0.0))[0].score == 1.0


def test_null_threshold_decides_no_answer():
    # Null score: min over windows of CLS start + end = min(2 + 3, 3 + 4) = 5; best span 1 + 2 = 3.
    windows = [([2, 1], [3, 2], [OUT, (0, 4)]), ([3, 0], [4, 0], [OUT, (5, 8)])]
    batch = hand_batch(windows)
    expectations = {None: False, 1.0: True, 1.99: True, 2.0: False, 3.0: False, -10.0: True}
    assert raw_scores(batch) == (3.0, 5.0)
    for threshold, impossible in expectations.items():
        (prediction,) = decode(batch, DecodeOptions(null_threshold=threshold))
        assert prediction.is_impossible is impossible, threshold
        # The candidates: the spans 1 + 2 (window 0) and 0 + 0 (window 1), plus in v2 mode the null answer.
        candidates = [3.0, 0.0] if threshold is None else [3.0, 0.0, 5.0]
        if impossible:
            assert (prediction.answer, prediction.start, prediction.end) == ("", 0, 0)
            assert prediction.score == pytest.approx(softmax_weight(5.0, candidates), rel=1e-12)
        else:
            assert (prediction.answer, prediction.start, prediction.end) == (CONTEXT[0:4], 0, 4)
            assert prediction.score == pytest.approx(softmax_weight(3.0, candidates), rel=1e-12)
        assert same_prediction(prediction, reference(batch, DecodeOptions(null_threshold=threshold))[0])


def test_scores_keep_the_logits_dtype():
    a, b = np.float32(0.1), np.float32(0.2)
    assert float(a + b) != float(a) + float(b)  # the sum below would differ if the decoder added in float64
    batch = hand_batch([([0, a], [0, b], [OUT, (0, 3)])])
    spans = decode_spans(*batch.arrays(), 1)
    assert spans.scores.dtype == np.float32 and spans.null_scores.dtype == np.float32
    assert decode(batch, DecodeOptions(return_n_best=True))[0].n_best[0].score == float(a + b)
    assert decode_spans(*hand_batch([([0, a], [0, b], [OUT, (0, 3)])], dtype=np.float64).arrays(), 1).scores.dtype == np.float64


def test_n_best_probabilities_are_a_softmax_of_the_sorted_scores():
    batch = hand_batch([([0, 3, 1], [0, 1, 2], [OUT, (0, 2), (3, 5)])])
    (prediction,) = decode(batch, DecodeOptions(return_n_best=True))
    scores = [span.score for span in prediction.n_best]
    assert scores == [5.0, 4.0, 3.0]  # tokens (1, 2), (1, 1), (2, 2); (2, 1) ends before it starts
    weights = np.exp(np.array(scores) - 5.0)
    expected = weights / weights.sum()
    assert [span.probability for span in prediction.n_best] == pytest.approx(expected.tolist())


@pytest.mark.parametrize("bad", [np.nan, np.inf, -np.inf])
@pytest.mark.parametrize("which", ["start", "end"])
def test_non_finite_logits_inside_a_window_raise(bad, which):
    starts, ends = [0.0, 1.0, 2.0], [0.0, 1.0, 2.0]
    (starts if which == "start" else ends)[2] = bad
    batch = hand_batch([([0, 1], [0, 1], [OUT, (0, 2)]), (starts, ends, [OUT, (0, 2), (3, 5)])])
    with pytest.raises(ValueError, match=rf"{which}_logits\[1, 2\] = .* is not finite"):
        decode(batch)
    with pytest.raises(ValueError, match="non-finite"):
        reference(batch)


@pytest.mark.parametrize(
    ("change", "message"),
    [
        (lambda b: dataclasses.replace(b, lengths=b.lengths + 1), r"lengths\[0\] = 4 is outside \[0, 4\)"),
        (lambda b: dataclasses.replace(b, cls_index=b.cls_index + 3), r"cls_index\[0\] = 3 is outside \[0, 3\)"),
        (lambda b: dataclasses.replace(b, example_index=b.example_index + 1), r"example_index\[0\] = 1 is outside"),
        (lambda b: dataclasses.replace(b, offsets=b.offsets[:, :2]), r"offsets must have shape \(1, 3, 2\)"),
        (lambda b: dataclasses.replace(b, offsets=b.offsets.astype(np.float32)), "offsets must hold signed integers"),
        (lambda b: dataclasses.replace(b, end_logits=b.end_logits.astype(np.float64)), "differ in dtype"),
        (lambda b: dataclasses.replace(b, start_logits=b.start_logits.astype(np.float16)), "float32 or float64"),
        (lambda b: dataclasses.replace(b, end_logits=b.end_logits[:, :2]), "differ in shape"),
        (lambda b: dataclasses.replace(b, lengths=b.lengths[:0]), r"lengths must have shape \(1,\)"),
    ],
)
def test_malformed_inputs_are_rejected_with_the_argument_named(change, message):
    batch = change(hand_batch([([0, 1, 2], [0, 1, 2], [OUT, (0, 2), (3, 5)])]))
    with pytest.raises((ValueError, TypeError), match=message):
        decode(batch)


@pytest.mark.parametrize("field", ["n_best", "max_answer_length"])
def test_options_reject_non_positive_sizes(field):
    with pytest.raises(ValueError, match=field):
        DecodeOptions(**{field: 0})
