"""From each passage's best spans to a question's answer: the cross-passage score rule, word alignment, top_k.

A question is asked of one context or, for a multi-passage record (records rule 6), of several passages; the model
reads each passage as an example of its own (`QAExample.passage_examples`), all in the question's group, and the
decoder keeps each passage's best spans (`SpanCollector`, `keep` = `candidates_kept(options)`). Ranking rules:

1. Candidates. The question's candidates are the union of its passages' kept spans, ordered by score (start logit
   + end logit), highest first; equal scores keep the decoder's visit order, passage by passage in the record's
   order (the tie rule of `spanqa.engine.core.decoder`, as if all the passages' windows were one context's). Logit
   sums of different passages are compared as the decoder compares those of different windows of one context: the
   model scores every window alone, with the same question.
2. Scores. The scored candidates are the best `n_best` of them (plus the null answer when `null_threshold` is
   set); an answer's `score` is its softmax weight exp(score - top) / sum over those, so scores are comparable
   across passages and answers, add up to at most 1, and do not depend on `top_k`. For one context this is the
   pipeline's rule before passages existed, so a single context's answer is unchanged.
3. No answer. The null score is the smallest over all the question's windows (every passage's); with
   `null_threshold` set, "no answer" is predicted when null - best score > null_threshold, as for one context.
   A question with no valid span in any passage gets no answer too.
4. Words. With `align_to_words`, each returned span is widened to whole words (`spanqa.engine.core.word_align`).
5. top_k. No two answers repeat or overlap (share a character of one passage); the same text in two passages is
   two answers (two pieces of evidence). The first is the best candidate, the answer top_k 1 gives. Then, walking
   the candidates in score order, a span is taken when it overlaps none taken and taking it still leaves room for
   top_k pairwise non-overlapping answers among the candidates (a long span that covers two shorter ones would
   otherwise leave fewer than top_k: the transformers#38984 failure). So there are exactly top_k answers whenever
   the candidates hold top_k pairwise non-overlapping spans that include the best; else as many as they can.
   The candidates for this are the question's n_best x top_k best spans (each passage keeps that many, since one
   passage may hold them all), so overlapping variants of one answer do not crowd out the next; spans are compared
   after word alignment (two pieces of one word are one answer).
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING

from spanqa.engine.core.answers import Answer, NBestSpan, PassageName, RankedAnswer, softmax

if TYPE_CHECKING:
    from spanqa.engine.core.decoder import DecodeOptions, SpanArrays
    from spanqa.engine.core.word_align import WordAligner

__all__ = ["QuestionPassages", "candidates_kept", "rank_answers"]


@dataclass(frozen=True)
class QuestionPassages:
    """Where a question's passages are among the decoded examples: examples first .. first + count - 1, in the
    record's order; `names` is None for a single context (its answer then has no "passage")."""

    id: str | int
    first: int
    count: int = 1
    names: tuple[PassageName, ...] | None = None


def candidates_kept(options: DecodeOptions) -> int:
    """Spans the decoder keeps per passage (rule 5)."""
    return options.n_best * options.top_k


def rank_answers(
    texts: Sequence[str],
    spans: SpanArrays,
    questions: Sequence[QuestionPassages],
    options: DecodeOptions,
    aligner: WordAligner | None = None,
) -> list[Answer]:
    """One Answer per question; `texts[e]` is decoded example e's context. `aligner` None leaves spans as decoded
    (rule 4 needs the tokenizer; `decode_predictions` has none)."""
    # Whole columns at once, then tolist(): per-example numpy scalar access would cost more than the kernel. Only the
    # best span's offsets are read for a single context answered with its best span alone (the common case).
    counts = spans.counts.tolist()
    scores = spans.scores[:, : options.n_best].tolist()
    only_best = options.top_k == 1 and not options.return_n_best
    if only_best and all(question.count == 1 for question in questions):
        scores_kept, starts, ends = None, spans.starts[:, :1].tolist(), spans.ends[:, :1].tolist()
    else:
        scores_kept, starts, ends = spans.scores.tolist(), spans.starts.tolist(), spans.ends.tolist()
    nulls = spans.null_scores.astype("float64").tolist()
    align = aligner if options.align_to_words else None
    answers = []
    for question in questions:
        first, last = question.first, question.first + question.count
        if question.count == 1:
            scored = scores[first][: counts[first]]
            ranks = range(1 if only_best else counts[first]) if scored else ()
            row = scored if scores_kept is None else scores_kept[first]
            candidates = [(row[rank], first, starts[first][rank], ends[first][rank]) for rank in ranks]
        else:
            merged = [(scores_kept[e][rank], e, starts[e][rank], ends[e][rank])
                      for e in range(first, last) for rank in range(counts[e])]  # fmt: skip
            candidates = sorted(merged, key=_by_score_descending)  # stable: ties keep the visit order (rule 1)
            scored = [candidate[0] for candidate in candidates[: options.n_best]]
        null_score = min(nulls[first:last])
        answers.append(_answer(question, texts, candidates, scored, null_score, options, align))
    return answers


def _by_score_descending(candidate: tuple[float, int, int, int]) -> float:
    return -candidate[0]


def _answer(
    question: QuestionPassages,
    texts: Sequence[str],
    candidates: list[tuple[float, int, int, int]],
    scored: list[float],
    null_score: float,
    options: DecodeOptions,
    align: WordAligner | None,
) -> Answer:
    """`candidates` best first (only the best when neither top_k nor n_best needs more); `scored` the best n_best
    candidates' scores (rule 2)."""
    with_null = options.null_threshold is not None
    no_answer = not candidates or (with_null and null_score - scored[0] > options.null_threshold)
    weigh = _Weights(scored, null_score if with_null and math.isfinite(null_score) else None)

    def ranked(candidate: tuple[float, int, int, int]) -> RankedAnswer:
        score, example, start, end = candidate
        text = texts[example]
        if align is not None:
            start, end = align.align(text, start, end)
        return RankedAnswer(text[start:end], weigh(score), start, end, _name(question, example))

    top_answers = None
    if options.top_k > 1:
        considered = candidates[: candidates_kept(options)]  # the question's best, whichever passages hold them
        pool = [ranked(candidate) for candidate in considered]
        top_answers = tuple(_distinct(pool, [candidate[1] for candidate in considered], options.top_k))
    if no_answer:
        score = weigh.null() if weigh.null_score is not None else 0.0
        best = RankedAnswer("", score, 0, 0, None)
    else:
        best = top_answers[0] if top_answers else ranked(candidates[0])
    n_best = None
    if options.return_n_best:
        n_best = tuple(_n_best(question, texts, candidates[: options.n_best], scored, align))
    return Answer(
        question.id, best.answer, best.score, best.start, best.end, no_answer, n_best, best.passage, top_answers
    )


def _distinct(answers: list[RankedAnswer], examples: list[int], top_k: int) -> list[RankedAnswer]:
    """Rule 5 over the candidates (best first; `examples[i]` is answer i's passage): the best, then in score order
    each span that overlaps none taken and leaves room to reach the target count."""
    by_end = sorted(range(len(answers)), key=lambda i: answers[i].end)

    def overlaps(i: int, taken: list[int]) -> bool:
        a = answers[i]
        return any(examples[t] == examples[i] and a.start < answers[t].end and answers[t].start < a.end for t in taken)

    def room(taken: list[int], enough: int) -> int:
        """The most pairwise non-overlapping candidates that include `taken` (capped at `enough`): the spans that
        overlap none taken sit in the gaps between them, so earliest-end-first over those is the optimum."""
        count, last_end = len(taken), {}
        for i in by_end:
            if count >= enough:
                break
            if i in taken or overlaps(i, taken):
                continue
            if answers[i].start >= last_end.get(examples[i], 0):
                count += 1
                last_end[examples[i]] = answers[i].end
        return count

    if not answers:
        return []
    taken = [0]
    target = room(taken, top_k)
    for i in range(1, len(answers)):
        if len(taken) == target:
            break
        if not overlaps(i, taken) and room([*taken, i], target) >= target:
            taken.append(i)
    return [answers[i] for i in taken]


def _n_best(question, texts, candidates, scored, align) -> list[NBestSpan]:
    probabilities = softmax(scored) if scored else []
    spans = []
    for (score, example, start, end), probability in zip(candidates, probabilities):
        text = texts[example]
        if align is not None:
            start, end = align.align(text, start, end)
        spans.append(NBestSpan(text[start:end], score, probability, start, end, _name(question, example)))
    return spans


def _name(question: QuestionPassages, example: int) -> PassageName | None:
    return None if question.names is None else question.names[example - question.first]


class _Weights:
    """Rule 2: a score's softmax weight among the scored candidates (and the null answer), computed as `softmax`
    computes it, so the best answer's weight is `softmax(...)[0]` to the last bit."""

    def __init__(self, scored: list[float], null_score: float | None) -> None:
        self.null_score = null_score
        pool = scored if null_score is None else [*scored, null_score]
        self._top = max(pool) if pool else 0.0
        self._total = math.fsum(math.exp(score - self._top) for score in pool) if pool else 1.0

    def __call__(self, score: float) -> float:
        return math.exp(score - self._top) / self._total

    def null(self) -> float:
        return self(self.null_score)
