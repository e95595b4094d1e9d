"""The ranking rules (core/ranking.py) on hand-made span tables, and word alignment (core/word_align.py) with the
shipped model's tokenizer: the cross-passage merge and its ties, the score rule, top_k without duplicates or overlaps
(exactly k while the candidates allow), the no-answer decision over every passage, CJK, Thai and emoji."""

from __future__ import annotations

import math
from pathlib import Path

import numpy as np
import pytest

from spanqa.engine.core.answers import RankedAnswer, softmax
from spanqa.engine.core.decoder import DecodeOptions, SpanArrays
from spanqa.engine.core.ranking import QuestionPassages, rank_answers
from spanqa.engine.core.tokenizer import QATokenizer
from spanqa.engine.core.word_align import WordAligner

SHIPPED_MODEL = Path(__file__).resolve().parents[3] / "engine" / "models" / "minilm-l6-squad-int8"


def _spans(rows: list[list[tuple[float, int, int]]], nulls: list[float] | None = None) -> SpanArrays:
    """One example per row of (score, start, end), best first, as the decoder keeps them."""
    keep = max(len(row) for row in rows) or 1
    scores = np.zeros((len(rows), keep), np.float32)
    starts = np.zeros((len(rows), keep), np.int64)
    ends = np.zeros((len(rows), keep), np.int64)
    for example, row in enumerate(rows):
        for rank, (score, start, end) in enumerate(row):
            scores[example, rank], starts[example, rank], ends[example, rank] = score, start, end
    counts = np.array([len(row) for row in rows], np.int64)
    null = np.array(nulls if nulls is not None else [5.0] * len(rows), np.float32)
    return SpanArrays(scores, starts, ends, counts, null)


TEXTS = ["alpha beta gamma delta", "one two three four five", "red green blue"]


def test_one_context_scores_are_the_softmax_over_its_n_best_whatever_top_k():
    spans = _spans([[(9.0, 0, 5), (8.5, 6, 10), (7.0, 0, 10), (1.0, 11, 16)]])
    options = DecodeOptions(n_best=3, align_to_words=False)
    (one,) = rank_answers(TEXTS[:1], spans, [QuestionPassages("q", 0)], options)
    assert (one.answer, one.start, one.end, one.passage, one.top_answers) == ("alpha", 0, 5, None, None)
    assert one.score == softmax([9.0, 8.5, 7.0])[0]  # the n_best scored, the fourth candidate not among them
    (three,) = rank_answers(TEXTS[:1], spans, [QuestionPassages("q", 0)], DecodeOptions(n_best=3, top_k=3, align_to_words=False))
    assert three.score == one.score
    # (0, 10) overlaps "alpha": skipped; the fourth candidate, beyond the n_best, fills the third place.
    assert [(a.answer, a.start) for a in three.top_answers] == [("alpha", 0), ("beta", 6), ("gamma", 11)]
    assert three.top_answers[2].score == pytest.approx(math.exp(1.0 - 9.0) / sum(math.exp(s - 9.0) for s in (9, 8.5, 7)))
    assert three.to_dict()["top_answers"][0] == {"answer": "alpha", "score": one.score, "start": 0, "end": 5}


def test_passages_merge_by_score_ties_go_to_the_earlier_passage_and_offsets_index_the_passage():
    spans = _spans([[(3.0, 0, 5)], [(7.0, 4, 7), (3.0, 8, 13)], [(7.0, 4, 9)]])
    question = QuestionPassages("q", 0, 3, ("a", "b", 2))
    (answer,) = rank_answers(TEXTS, spans, [question], DecodeOptions(top_k=4, align_to_words=False))
    assert [(a.passage, a.answer) for a in answer.top_answers] == [("b", "two"), (2, "green"), ("a", "alpha"),
                                                                  ("b", "three")]  # fmt: skip
    assert (answer.answer, answer.passage, answer.start, answer.end) == ("two", "b", 4, 7)
    assert TEXTS[1][answer.start : answer.end] == answer.answer
    assert answer.score == softmax([7.0, 7.0, 3.0, 3.0])[0]
    assert math.fsum(a.score for a in answer.top_answers) == pytest.approx(1.0)
    assert answer.to_dict()["passage"] == "b"


def test_duplicates_and_overlaps_are_removed_and_exactly_k_come_back_while_the_candidates_allow():
    # The same span from two windows, spans overlapping it, then distinct ones.
    row = [(9.0, 0, 5), (9.0, 0, 5), (8.0, 0, 10), (7.9, 3, 8), (7.0, 6, 10), (6.0, 11, 16), (5.0, 17, 22)]
    spans = _spans([row])
    lists = []
    for top_k in range(1, 6):
        (answer,) = rank_answers(TEXTS[:1], spans, [QuestionPassages("q", 0)], DecodeOptions(top_k=top_k, align_to_words=False))
        lists.append([] if answer.top_answers is None else [(a.start, a.end) for a in answer.top_answers])
    assert lists[1:] == [[(0, 5), (6, 10)], [(0, 5), (6, 10), (11, 16)], [(0, 5), (6, 10), (11, 16), (17, 22)],
                         [(0, 5), (6, 10), (11, 16), (17, 22)]]  # fmt: skip  (only 4 distinct: fewer than 5)


def test_a_span_covering_two_shorter_ones_gives_way_when_top_k_needs_them():
    # "beta gamma" (6, 16) outscores "beta" and "gamma" but overlaps both: taking it would leave 2 answers, not 3.
    spans = _spans([[(9.0, 0, 5), (8.0, 6, 16), (7.0, 6, 10), (6.0, 11, 16)]])
    question = [QuestionPassages("q", 0)]
    (three,) = rank_answers(TEXTS[:1], spans, question, DecodeOptions(top_k=3, align_to_words=False))
    assert [a.answer for a in three.top_answers] == ["alpha", "beta", "gamma"]
    (two,) = rank_answers(TEXTS[:1], spans, question, DecodeOptions(top_k=2, align_to_words=False))
    assert [a.answer for a in two.top_answers] == ["alpha", "beta gamma"]  # room for 2 either way: score order
    # The best span always comes first, even when it alone blocks the count.
    blocked = _spans([[(9.0, 0, 16), (8.0, 0, 5), (7.0, 6, 10), (6.0, 17, 22)]])
    (best_first,) = rank_answers(TEXTS[:1], blocked, question, DecodeOptions(top_k=3, align_to_words=False))
    assert [(a.start, a.end) for a in best_first.top_answers] == [(0, 16), (17, 22)]


def test_the_same_span_in_two_passages_is_two_answers():
    spans = _spans([[(4.0, 0, 3)], [(3.0, 0, 3)]])
    (answer,) = rank_answers(["red", "red"], spans, [QuestionPassages("q", 0, 2, (0, 1))], DecodeOptions(top_k=2))
    assert [(a.answer, a.passage) for a in answer.top_answers] == [("red", 0), ("red", 1)]


def test_no_answer_is_decided_over_every_passage_with_the_smallest_null_score():
    spans = _spans([[(2.0, 0, 5)], [(1.0, 0, 3)]], nulls=[9.0, 4.0])
    question = [QuestionPassages("q", 0, 2, ("x", "y"))]
    (answered,) = rank_answers(TEXTS[:2], spans, question, DecodeOptions(null_threshold=2.5, align_to_words=False))
    assert (answered.is_impossible, answered.passage) == (False, "x")  # 4 - 2 = 2 <= 2.5
    (refused,) = rank_answers(TEXTS[:2], spans, question, DecodeOptions(null_threshold=1.5, top_k=2))
    assert (refused.answer, refused.start, refused.end, refused.passage, refused.is_impossible) == ("", 0, 0, None, True)
    assert refused.score == softmax([2.0, 1.0, 4.0])[-1]
    assert [a.passage for a in refused.top_answers] == ["x", "y"]  # the spans are still listed
    assert "passage" not in refused.to_dict()
    (nothing,) = rank_answers(TEXTS[:2], _spans([[], []]), question, DecodeOptions(top_k=3))
    assert (nothing.is_impossible, nothing.score, nothing.top_answers) == (True, 0.0, ())


@pytest.fixture(scope="module")
def aligner() -> WordAligner:
    return WordAligner(QATokenizer.from_folder(SHIPPED_MODEL))


@pytest.mark.parametrize(
    ("text", "piece", "expected"),
    [
        ("The Denver Broncos, champions", "Bron", "Broncos"),  # punctuation is a word of its own
        ("The Denver Broncos, champions", "enver Bro", "Denver Broncos"),
        ("scored 24\u201310 in the end", "24", "24"),
        ("\u5317\u4eac\u662f\u4e2d\u56fd\u7684\u9996\u90fd", "\u662f\u4e2d", "\u662f\u4e2d"),  # each Han character a word
        ("\u6211\u7528 Python\u7f16\u7a0b", "Pyth", "Python"),  # a Latin word in Chinese text is completed
        ("\u0e20\u0e32\u0e29\u0e32\u0e44\u0e17\u0e22\u0e07\u0e48\u0e32\u0e22 ok", "\u0e29\u0e32\u0e44\u0e17",
         "\u0e29\u0e32\u0e44\u0e17"),  # Thai is written without spaces: left as the model cut it
        ("fans \U0001F600 cheered hello\U0001F600world", "o\U0001F600w", "hello\U0001F600world"),
        ("fans \U0001F600 cheered", "\U0001F600", "\U0001F600"),
        ("Caf\u0065\u0301 Zo\u00eb opened", "Zo", "Zo\u00eb"),
    ],
)
def test_word_alignment(aligner, text, piece, expected):
    start = text.index(piece)
    new_start, new_end = aligner.align(text, start, start + len(piece))
    assert text[new_start:new_end] == expected
    whole = WordAligner(QATokenizer.from_folder(SHIPPED_MODEL))
    whole._local = False  # the whole-text path (tokenizers that look across spaces) agrees
    assert whole.align(text, start, start + len(piece)) == (new_start, new_end)


def test_aligned_spans_that_become_one_are_one_answer(aligner):
    text = "The Denver Broncos won"
    spans = _spans([[(5.0, 11, 15), (4.0, 11, 18), (3.0, 19, 22)]])  # "Bron", "Broncos", "won"
    (answer,) = rank_answers([text], spans, [QuestionPassages("q", 0)], DecodeOptions(top_k=2), aligner)
    assert answer.top_answers == (
        RankedAnswer("Broncos", answer.score, 11, 18), RankedAnswer("won", answer.top_answers[1].score, 19, 22),
    )  # fmt: skip
    (plain,) = rank_answers([text], spans, [QuestionPassages("q", 0)], DecodeOptions(align_to_words=False), aligner)
    assert plain.answer == "Bron"


def test_a_word_longer_than_the_reach_is_left_as_the_model_cut_it(aligner):
    text = "start " + "x" * 3000 + " end"
    assert aligner.align(text, 2000, 2001) == (2000, 2001)  # the word's edges lie beyond the pieces looked at
    assert aligner.align(text, 1, 4) == (0, 5)  # "tar" of "start"
    assert aligner.align(text, len(text) - 2, len(text)) == (len(text) - 3, len(text))
