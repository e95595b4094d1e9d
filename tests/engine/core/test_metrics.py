"""The SQuAD metrics: hand-worked cases (every expected number below was worked out by hand), and the v2.0 rules
against an independent plain reimplementation of the official evaluate-v2.0.py written here."""

from __future__ import annotations

import random
import re
import string
from collections import Counter
from pathlib import Path

import pytest

from spanqa.engine.core.data import load_examples

from spanqa.engine.core.metrics import (
    best_threshold,
    exact_match,
    f1_score,
    normalize_answer,
    question_scores,
    squad_v1_scores,
    squad_v2_scores,
    v2_ground_truths,
)


@pytest.mark.parametrize(
    ("text", "normalized"),
    [
        ("The Eiffel Tower!", "eiffel tower"),
        ("  New\t\nYork  ", "new york"),
        ("A an THE", ""),
        ("the the", ""),
        ("(a) answer", "answer"),
        ("U.S.A.", "usa"),
        ("don't", "dont"),
        # Articles are removed only as whole words...
        ("banana", "banana"),
        ("Anthem", "anthem"),
        ("theatre", "theatre"),
        # ...and only after punctuation is gone, so punctuation can glue an article to a word.
        ("the-end", "theend"),
        ("a.m.", "am"),
        # Only ASCII punctuation is stripped; typographic dashes and accented letters stay.
        ("rock–paper", "rock–paper"),
        ("Théâtre", "théâtre"),
    ],
)
def test_normalize_answer(text: str, normalized: str) -> None:
    assert normalize_answer(text) == normalized


def test_exact_match_ignores_case_punctuation_and_articles() -> None:
    assert exact_match("the Eiffel Tower", "Eiffel tower!") == 1.0
    assert exact_match("An Eiffel  tower.", "eiffel tower") == 1.0
    assert exact_match("Eiffel Towers", "Eiffel Tower") == 0.0
    assert exact_match("", "") == 1.0


@pytest.mark.parametrize(
    ("prediction", "ground_truth", "expected"),
    [
        # pred {big, red, car}, gold {red, car}: overlap 2, P = 2/3, R = 1, F1 = 2*(2/3)/(5/3) = 4/5.
        ("the big red car", "Red car", 4 / 5),
        # pred {red, bus}, gold {red, car}: overlap 1, P = R = 1/2.
        ("red bus", "red car", 1 / 2),
        # pred {new, york}, gold {new, new, york, city}: overlap 2, P = 1, R = 1/2, F1 = 1/(3/2) = 2/3.
        ("New York", "new new york city", 2 / 3),
        # Multiplicity: pred {la, la, la}, gold {la, land} share one "la": P = 1/3, R = 1/2, F1 = (1/3)/(5/6) = 2/5.
        ("la la la", "la land", 2 / 5),
        # pred {la, la, la}, gold {la, la, land} share two: P = R = 2/3 (a set overlap would say 1/3).
        ("la la la", "La La Land", 2 / 3),
        ("Denver Broncos", "Carolina Panthers", 0.0),
        # Articles and punctuation vanish before tokens are compared: both are {eiffel, tower}.
        ("The Eiffel Tower.", "eiffel tower", 1.0),
        # A side without tokens: 1 if both are empty, else 0 (v2.0 rule).
        ("", "Denver", 0.0),
        ("Denver", "", 0.0),
        ("the", ".", 1.0),
        ("", "", 1.0),
    ],
)
def test_f1_score(prediction: str, ground_truth: str, expected: float) -> None:
    assert f1_score(prediction, ground_truth) == pytest.approx(expected, abs=1e-12)


@pytest.mark.parametrize(("prediction", "ground_truth"), [("the", "."), ("", ""), ("", "Denver"), ("Denver", "")])
def test_v1_f1_is_zero_without_a_shared_token_even_when_both_are_empty(prediction: str, ground_truth: str) -> None:
    # The official v1.1 f1_score returns 0 when no token is shared (num_same == 0), both sides empty included.
    assert f1_score(prediction, ground_truth, "v1.1") == 0.0
    assert question_scores(prediction, [ground_truth], "v1.1")[1] == 0.0
    assert f1_score("the big red car", "Red car", "v1.1") == pytest.approx(4 / 5)


def test_question_scores_take_the_best_gold_for_each_metric_separately() -> None:
    # vs "Broncos": P = 1/2, R = 1 -> 2/3; vs "Denver Broncos team": P = 1, R = 2/3 -> 4/5; vs "Broncos!!" EM 0.
    exact, f1 = question_scores("Denver Broncos", ["Broncos", "Denver Broncos team"])
    assert (exact, f1) == (0.0, pytest.approx(4 / 5))
    # EM comes from one gold, the best F1 from another that is the same answer.
    exact, f1 = question_scores("the Broncos", ["Denver", "broncos"])
    assert (exact, f1) == (1.0, 1.0)


def test_question_scores_need_a_gold_answer() -> None:
    with pytest.raises(ValueError, match="at least one gold"):
        question_scores("anything", [])


def test_v1_scores_with_a_missing_prediction() -> None:
    ground_truths = {
        "exact": ["Santa Clara, California"],
        "partial": ["Super Bowl 50"],  # "Super Bowl": P = 1, R = 2/3, F1 = 4/5
        "wrong": ["Levi's Stadium"],
        "missing": ["February 7, 2016"],
    }
    predictions = {"exact": "santa clara california", "partial": "Super Bowl", "wrong": "Denver"}
    scores = squad_v1_scores(ground_truths, predictions)
    assert scores.exact_match == pytest.approx(100 * 1 / 4)
    assert scores.f1 == pytest.approx(100 * (1 + 4 / 5) / 4)  # 45.0
    assert scores.total == 4
    assert scores.missing == ("missing",)


def test_v1_ignores_predictions_for_other_questions() -> None:
    scores = squad_v1_scores({"q": ["yes"]}, {"q": "yes", "unrelated": "no"})
    assert (scores.exact_match, scores.f1, scores.total) == (100.0, 100.0, 1)


def test_v1_keeps_a_gold_that_normalises_to_nothing() -> None:
    # Three SQuAD dev questions list "." among their golds; the official v1.1 script keeps it, so an empty
    # prediction matches it for EM, while its F1 shares no token with it and scores 0.
    scores = squad_v1_scores({"q": ["interventionism", "."]}, {"q": ""})
    assert (scores.exact_match, scores.f1) == (100.0, 0.0)
    assert squad_v2_scores({"q": ["interventionism", "."]}, {"q": ""}).exact_match == 0.0  # v2.0 drops the "."


def test_no_questions_is_an_error() -> None:
    with pytest.raises(ValueError, match="no questions"):
        squad_v1_scores({}, {"q": "x"})
    with pytest.raises(ValueError, match="no questions"):
        squad_v2_scores({}, {"q": "x"})


def test_v2_ground_truths() -> None:
    assert v2_ground_truths([]) == ("",)
    assert v2_ground_truths(["interventionism", ".", "interventionism"]) == ("interventionism", "interventionism")
    assert v2_ground_truths([".", "the"]) == ("",)


def test_v2_scores_split_answerable_and_unanswerable() -> None:
    answer_texts = {
        "has_right": ["Denver Broncos"],
        "has_empty": ["Santa Clara, California"],
        "no_empty": [],
        "no_answered": [],
        "has_dot_gold": ["interventionism", "."],  # v2.0 drops ".", so an empty prediction no longer matches
        "has_partial": ["Super Bowl 50"],  # F1 4/5
    }
    predictions = {
        "has_right": "the Denver Broncos",
        "has_empty": "",
        "no_empty": "",
        "no_answered": "Levi's Stadium",
        "has_dot_gold": "",
        "has_partial": "Super Bowl",
    }
    scores = squad_v2_scores(answer_texts, predictions)
    assert scores.total == 6
    assert scores.exact_match == pytest.approx(100 * 2 / 6)
    assert scores.f1 == pytest.approx(100 * (1 + 1 + 4 / 5) / 6)
    assert scores.has_ans is not None and scores.no_ans is not None
    assert (scores.has_ans.exact, scores.has_ans.f1, scores.has_ans.total) == (
        pytest.approx(25.0),
        pytest.approx(45.0),
        4,
    )
    assert (scores.no_ans.exact, scores.no_ans.f1, scores.no_ans.total) == (50.0, 50.0, 2)
    assert scores.thresholds is None
    assert scores.missing == ()


def test_v2_subsets_are_absent_when_empty() -> None:
    only_answerable = squad_v2_scores({"q": ["x"]}, {"q": "x"})
    assert only_answerable.no_ans is None and only_answerable.has_ans is not None
    only_unanswerable = squad_v2_scores({"q": []}, {"q": ""})
    assert only_unanswerable.has_ans is None
    assert only_unanswerable.no_ans is not None and only_unanswerable.no_ans.exact == 100.0


def test_v2_missing_prediction_scores_zero_even_when_unanswerable() -> None:
    # An empty prediction would be right here; no prediction at all is not an abstention.
    scores = squad_v2_scores({"answered": [], "missing": []}, {"answered": ""})
    assert (scores.exact_match, scores.f1) == (50.0, 50.0)
    assert scores.missing == ("missing",)


def test_v2_best_thresholds() -> None:
    # Worked by hand. Abstaining on everything scores the two unanswerable questions: 2 of 4.
    # Questions switch to "answered" in increasing na_prob:
    #   a (0.1) answerable, right:       EM 2 -> 3,  F1 2 -> 3      (best EM: 3 at 0.1)
    #   b (0.6) answerable, F1 1/2:      EM 3 -> 3,  F1 3 -> 3.5    (best F1: 3.5 at 0.6)
    #   c (0.7) unanswerable, answered:  EM 3 -> 2,  F1 3.5 -> 2.5  (loses its abstention)
    #   d (0.9) unanswerable, empty:     unchanged (right either way)
    answer_texts = {"a": ["Denver Broncos"], "b": ["red car"], "c": [], "d": []}
    predictions = {"a": "Denver Broncos", "b": "red bus", "c": "Levi's Stadium", "d": ""}
    na_probs = {"a": 0.1, "b": 0.6, "c": 0.7, "d": 0.9}
    scores = squad_v2_scores(answer_texts, predictions, na_probs)
    assert scores.exact_match == pytest.approx(50.0)  # a and d
    assert scores.f1 == pytest.approx(62.5)  # (1 + 1/2 + 0 + 1) / 4
    assert scores.thresholds is not None
    assert scores.thresholds.best_exact == pytest.approx(75.0)
    assert scores.thresholds.best_exact_thresh == 0.1
    assert scores.thresholds.best_f1 == pytest.approx(87.5)
    assert scores.thresholds.best_f1_thresh == 0.6


def test_v2_best_threshold_is_zero_when_abstaining_everywhere_wins() -> None:
    scores = squad_v2_scores({"a": [], "b": []}, {"a": "wrong", "b": "also wrong"}, {"a": 0.4, "b": 0.8})
    assert scores.exact_match == 0.0
    assert scores.thresholds is not None
    assert (scores.thresholds.best_exact, scores.thresholds.best_exact_thresh) == (100.0, 0.0)


def test_tied_probabilities_switch_together() -> None:
    # One threshold cannot answer "right" and abstain on "wrong" when both have probability 0.5. Switching
    # them one at a time (as the official script does) would report 2 of 2 at threshold 0.5, a score that no
    # threshold reaches; the reachable best is 1 of 2 (abstain on both, or answer both).
    answered = {"right": 1.0, "wrong": 0.0}
    abstained = {"right": 0.0, "wrong": 1.0}
    best, thresh = best_threshold(answered, abstained, {"right": 0.5, "wrong": 0.5}, total=2)
    assert (best, thresh) == (50.0, 0.0)
    # Separate the probabilities and the 2 of 2 becomes reachable at the lower one.
    best, thresh = best_threshold(answered, abstained, {"right": 0.4, "wrong": 0.5}, total=2)
    assert (best, thresh) == (100.0, 0.4)


def test_missing_prediction_cannot_win_by_abstaining() -> None:
    scores = squad_v2_scores({"a": [], "b": []}, {"a": "wrong"}, {"a": 0.4, "b": 0.8})
    assert scores.thresholds is not None
    # Abstaining on both scores only "a"; "b" has no prediction and scores 0 either way.
    assert scores.thresholds.best_exact == 50.0


def test_na_probs_must_cover_every_question() -> None:
    with pytest.raises(ValueError, match=r"missing for 1 questions \(e\.g\. b\)"):
        squad_v2_scores({"a": ["x"], "b": []}, {"a": "x", "b": ""}, {"a": 0.3})


def test_na_probs_must_be_finite() -> None:
    with pytest.raises(ValueError, match="finite"):
        squad_v2_scores({"a": ["x"]}, {"a": "x"}, {"a": float("nan")})


# Strings chosen to exercise every normalisation step and both F1 branches, compared one question at a
# time with torchmetrics' independent implementation (which uses the v2.0 rule for empty sides).
TRICKY_CASES = [
    ("the Eiffel Tower", ["Eiffel tower!"]),
    ("Eiffel", ["the Eiffel Tower", "Tower"]),
    ("", ["Denver"]),
    ("", ["interventionism", "."]),
    ("the", ["a"]),
    ("la la la", ["la land", "la"]),
    ("rock–paper–scissors", ["rock paper scissors"]),
    ("Théâtre-Français", ["theatre francais", "Théâtre Français"]),
    ("the-end", ["end"]),
    ("  1,000,000 \n dollars ", ["$1,000,000", "1000000 dollars"]),
    ("«Le Monde»", ["Le Monde"]),
    ("an apple a day", ["Apple Day", "an Apple"]),
]


@pytest.mark.parametrize(("prediction", "golds"), TRICKY_CASES)
def test_question_scores_match_torchmetrics(prediction: str, golds: list[str]) -> None:
    squad = pytest.importorskip("torchmetrics.functional.text").squad
    reference = squad(
        [{"id": "q", "prediction_text": prediction}],
        [{"id": "q", "answers": {"text": golds, "answer_start": [0] * len(golds)}}],
    )
    exact, f1 = question_scores(prediction, golds)
    assert 100 * exact == pytest.approx(float(reference["exact_match"]), abs=1e-4)
    assert 100 * f1 == pytest.approx(float(reference["f1"]), abs=1e-4)


# --- against an independent reimplementation of the official v2.0 script -------------------------------------------
# Written from the rules of evaluate-v2.0.py, deliberately plain (no code shared with metrics.py): normalise; drop
# golds that normalise to nothing, [""] when none are left; EM/F1 with "both empty is 1"; apply_no_ans_threshold at
# 1.0; HasAns/NoAns subsets; find_best_thresh walking na_probs sorted by probability (a stable sort, so ties keep
# the na_probs order), one question at a time, keeping a new best only when strictly better.


_PUNCTUATION = set(string.punctuation)


def _official_normalize(text: str) -> str:
    text = "".join(character for character in text.lower() if character not in _PUNCTUATION)
    text = re.sub(r"\b(a|an|the)\b", " ", text)
    return " ".join(text.split())


def _official_f1(gold: str, prediction: str) -> float:
    gold_tokens, predicted_tokens = _official_normalize(gold).split(), _official_normalize(prediction).split()
    if not gold_tokens or not predicted_tokens:
        return float(gold_tokens == predicted_tokens)
    same = sum((Counter(gold_tokens) & Counter(predicted_tokens)).values())
    if same == 0:
        return 0.0
    precision, recall = same / len(predicted_tokens), same / len(gold_tokens)
    return 2 * precision * recall / (precision + recall)


def official_v2(qas: list[tuple[str, list[str]]], predictions: dict, na_probs: dict) -> dict[str, float]:
    has_answer = {qid: bool(golds) for qid, golds in qas}
    exact, f1 = {}, {}
    for qid, golds in qas:
        golds = [gold for gold in golds if _official_normalize(gold)] or [""]
        exact[qid] = max(float(_official_normalize(gold) == _official_normalize(predictions[qid])) for gold in golds)
        f1[qid] = max(_official_f1(gold, predictions[qid]) for gold in golds)

    def thresholded(scores):
        return {qid: float(not has_answer[qid]) if na_probs[qid] > 1.0 else value for qid, value in scores.items()}

    def mean(scores, qids):
        return 100.0 * sum(scores[qid] for qid in qids) / len(qids)

    def best(scores):
        current = best_score = sum(1 for qid in has_answer if not has_answer[qid])
        best_thresh = 0.0
        for qid in sorted(na_probs, key=lambda key: na_probs[key]):
            if has_answer[qid]:
                current += scores[qid]
            elif predictions[qid]:
                current -= 1
            if current > best_score:
                best_score, best_thresh = current, na_probs[qid]
        return 100.0 * best_score / len(scores), best_thresh

    all_ids = [qid for qid, _ in qas]
    has_ids = [qid for qid in all_ids if has_answer[qid]]
    no_ids = [qid for qid in all_ids if not has_answer[qid]]
    exact_t, f1_t = thresholded(exact), thresholded(f1)
    (best_exact, best_exact_thresh), (best_f1, best_f1_thresh) = best(exact), best(f1)
    return {
        "exact": mean(exact_t, all_ids), "f1": mean(f1_t, all_ids),
        "HasAns_exact": mean(exact_t, has_ids), "HasAns_f1": mean(f1_t, has_ids),
        "NoAns_exact": mean(exact_t, no_ids), "NoAns_f1": mean(f1_t, no_ids),
        "best_exact": best_exact, "best_exact_thresh": best_exact_thresh,
        "best_f1": best_f1, "best_f1_thresh": best_f1_thresh,
    }  # fmt: skip


def _ours(qas, predictions, na_probs) -> dict[str, float]:
    scores = squad_v2_scores(dict(qas), predictions, na_probs)
    assert scores.has_ans is not None and scores.no_ans is not None and scores.thresholds is not None
    return {
        "exact": scores.exact_match, "f1": scores.f1,
        "HasAns_exact": scores.has_ans.exact, "HasAns_f1": scores.has_ans.f1,
        "NoAns_exact": scores.no_ans.exact, "NoAns_f1": scores.no_ans.f1,
        "best_exact": scores.thresholds.best_exact, "best_exact_thresh": scores.thresholds.best_exact_thresh,
        "best_f1": scores.thresholds.best_f1, "best_f1_thresh": scores.thresholds.best_f1_thresh,
    }  # fmt: skip


def mixed_v2_predictions(qas, seed: int, punctuation_on_unanswerable: bool) -> dict[str, str]:
    """Predictions of every kind: right, restyled, partial, wrong, empty, punctuation or articles only."""
    rng = random.Random(seed)
    predictions = {}
    for qid, golds in qas:
        if golds:
            gold = rng.choice(golds)
            words = gold.split()
            predictions[qid] = rng.choice([
                gold, gold.upper() + ".", "the " + gold, " ".join(words[: max(1, len(words) // 2)]),
                "Carolina Panthers", "", ".", "the", gold + " and more",
            ])  # fmt: skip
        else:
            kinds = ["", "", "Levi's Stadium", "the Broncos"] + ([".", "the", "?!"] if punctuation_on_unanswerable else [])
            predictions[qid] = rng.choice(kinds)
    return predictions


@pytest.fixture(scope="module")
def v2_dev_qas(squad_dir: Path) -> list[tuple[str, list[str]]]:
    examples = load_examples(squad_dir / "dev-v2.0.reconstructed.json.gz")
    return [(str(e.id), [] if e.is_impossible else list(e.answer_texts)) for e in examples]


def test_v2_equals_the_official_rules_on_dev_with_distinct_probabilities(v2_dev_qas) -> None:
    rng = random.Random(7)
    predictions = mixed_v2_predictions(v2_dev_qas, seed=3, punctuation_on_unanswerable=False)
    # Distinct probabilities, a few above 1.0 so that the official 1.0 threshold changes the main scores.
    na_probs = {qid: rng.random() * (1.6 if index % 97 == 0 else 1.0) for index, (qid, _) in enumerate(v2_dev_qas)}
    assert len(set(na_probs.values())) == len(na_probs) and any(p > 1.0 for p in na_probs.values())
    reference, ours = official_v2(v2_dev_qas, predictions, na_probs), _ours(v2_dev_qas, predictions, na_probs)
    assert ours.keys() == reference.keys()
    for key in reference:
        assert ours[key] == pytest.approx(reference[key], abs=1e-9), key
    assert 20 < reference["exact"] < 80 and reference["best_f1"] > reference["f1"]  # a mix, and the search matters


def _reachable_best(qas, per_question, predictions, na_probs) -> tuple[float, float]:
    """Brute force: the best score over every threshold t (abstain when na_prob > t); all-abstain reported as 0.0."""
    has_answer = dict(qas)
    abstained = {qid: float(not golds) for qid, golds in qas}
    candidates = [(sum(abstained.values()), 0.0)]
    for threshold in sorted(set(na_probs.values())):
        total = sum(per_question[qid] if na_probs[qid] <= threshold else abstained[qid] for qid in has_answer)
        candidates.append((total, threshold))
    best_total = max(total for total, _ in candidates)
    first = next(threshold for total, threshold in candidates if total == best_total)
    return 100.0 * best_total / len(qas), first


def test_v2_with_tied_probabilities_and_punctuation_predictions(v2_dev_qas) -> None:
    rng = random.Random(11)
    predictions = mixed_v2_predictions(v2_dev_qas, seed=5, punctuation_on_unanswerable=True)
    na_probs = {qid: rng.choice([0.0, 0.25, 0.5, 0.75, 1.0]) for qid, _ in v2_dev_qas}  # thousands of ties
    reference, ours = official_v2(v2_dev_qas, predictions, na_probs), _ours(v2_dev_qas, predictions, na_probs)
    # EM, F1 and the subsets do not involve the threshold search: the official numbers exactly.
    for key in ("exact", "f1", "HasAns_exact", "HasAns_f1", "NoAns_exact", "NoAns_f1"):
        assert ours[key] == pytest.approx(reference[key], abs=1e-9), key
    # The search is ours (deviations named in best_threshold's docstring): the best over reachable thresholds,
    # checked by brute force. (The official walk differs both ways: above, by taking tied questions one at a time;
    # below, by charging a point for each "." answered on an unanswerable question.)
    scores = squad_v2_scores(dict(v2_dev_qas), predictions)
    ground_truths = {qid: v2_ground_truths(golds) for qid, golds in v2_dev_qas}
    both = {qid: question_scores(predictions[qid], ground_truths[qid]) for qid, _ in v2_dev_qas}
    exact, f1 = ({qid: pair[i] for qid, pair in both.items()} for i in (0, 1))
    assert scores.missing == ()
    for name, per_question in (("exact", exact), ("f1", f1)):
        best, thresh = _reachable_best(v2_dev_qas, per_question, predictions, na_probs)
        assert ours[f"best_{name}"] == pytest.approx(best, abs=1e-9)
        assert ours[f"best_{name}_thresh"] == thresh


def test_official_tie_walk_reports_a_score_no_threshold_reaches() -> None:
    # The documented deviation, on its smallest case: two questions at probability 0.5, one answerable and
    # answered right (listed first), one unanswerable and answered. Official: 1 (abstain both) -> 2 after the
    # first, kept as best at 0.5 -> 1 after the second. Any real threshold answers both or neither: 1 of 2.
    qas = [("right", ["Denver"]), ("wrong", [])]
    predictions = {"right": "Denver", "wrong": "Levi's Stadium"}
    na_probs = {"right": 0.5, "wrong": 0.5}
    assert official_v2(qas, predictions, na_probs)["best_exact"] == 100.0
    assert _ours(qas, predictions, na_probs)["best_exact"] == 50.0
    # And the punctuation rule: "." on an unanswerable question scores 1 answered, so answering costs nothing here.
    qas = [("dot", []), ("hit", ["Denver"])]
    predictions, na_probs = {"dot": ".", "hit": "Denver"}, {"dot": 0.1, "hit": 0.2}
    assert official_v2(qas, predictions, na_probs)["best_exact"] == 50.0  # charged one point for "."
    assert _ours(qas, predictions, na_probs)["best_exact"] == 100.0
