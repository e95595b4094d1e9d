"""One question over many passages through QAEngine: the answer is the best of the passages' (the same spans and
scores as answering each passage alone, merged by the ranking rules), offsets index its passage, batching does not
change it, top_k gives exactly k distinct spans; and with the shipped int8 model the right passage wins among 9
distractors (passages written for this test)."""

from __future__ import annotations

import random
from pathlib import Path

import pytest

import spanqa.engine
from spanqa.engine import DecodeOptions, EngineOptions, QAEngine, WindowOptions
from spanqa.engine.core.data import DataFormatError
from spanqa.engine.core.records import QAExample

pytestmark = pytest.mark.usefixtures("one_torch_thread")

# Small windows, so that longer passages span several windows.
WINDOW = WindowOptions(max_length=96, stride=32, max_question_tokens=24)
WORDS = (
    "river mountain city king queen war treaty empire science music painter novel bridge harbour station engine "
    "tower castle village forest island desert ocean winter summer north south company market bank school museum"
).split()


def make_examples(count: int, seed: int) -> list[QAExample]:
    generator = random.Random(seed)
    examples = []
    for index in range(count):
        context = " ".join(generator.choice(WORDS) for _ in range(generator.choice((8, 30, 80, 150))))
        question = "what " + " ".join(generator.choice(WORDS) for _ in range(generator.randint(1, 5))) + "?"
        examples.append(QAExample(id=f"q{index}", question=question, context=context))
    return examples


def _engine(model: Path, **decode) -> QAEngine:
    return QAEngine(model, device="cpu", options=EngineOptions(window=WINDOW, decode=DecodeOptions(**decode)))


def test_the_answer_is_the_best_of_the_passages_answered_alone(tiny_onnx):
    engine = _engine(tiny_onnx, return_n_best=True, n_best=5)
    for question, *passages in (make_examples(6, seed=seed) for seed in (3, 4)):
        texts = [question.context] + [example.context for example in passages]
        names = ["p0", 1, "p2", "p3", 4, "p5"]
        contexts = [{"id": name, "text": text} if isinstance(name, str) else text for name, text in zip(names, texts)]
        merged = engine.answer(question.question, contexts=contexts, id="m")
        alone = [engine.answer(question.question, text) for text in texts]
        pool = [(span.score, position, span) for position, answer in enumerate(alone) for span in answer.n_best]
        pool.sort(key=lambda item: -item[0])  # stable: ties keep the passage order
        expected = [(names[position], span.answer, span.start, span.end, span.score) for _, position, span in pool[:5]]
        assert [(s.passage, s.answer, s.start, s.end, s.score) for s in merged.n_best] == expected
        best_name, best_text, start, end, _ = expected[0]
        assert (merged.passage, merged.answer, merged.start, merged.end) == (best_name, best_text, start, end)
        assert texts[names.index(merged.passage)][merged.start : merged.end] == merged.answer


def test_one_passage_in_contexts_answers_as_the_context_does(tiny_onnx):
    engine = _engine(tiny_onnx)
    for example in make_examples(8, seed=5):
        single = engine.answer(example.question, example.context)
        multi = engine.answer(example.question, contexts=[example.context])
        assert (multi.answer, multi.score, multi.start, multi.end, multi.passage) == (
            single.answer, single.score, single.start, single.end, 0,
        )  # fmt: skip


def test_mixed_records_do_not_depend_on_batching_and_top_k_gives_k_distinct_spans(tiny_onnx):
    examples = make_examples(30, seed=6)
    records: list = []
    for index in range(0, 30, 3):
        records.append(examples[index])
        records.append({"id": f"m{index}", "question": examples[index].question,
                        "contexts": [examples[index + 1].context, examples[index + 2].context]})  # fmt: skip
    runs = []
    for tokens, windows, lookahead in ((1024, 64, 256), (200, 3, 4), (96, 1, 1)):
        options = EngineOptions(window=WINDOW, max_batch_tokens=tokens, max_batch_windows=windows, lookahead=lookahead,
                                decode=DecodeOptions(top_k=4, max_answer_length=3))  # fmt: skip
        engine = QAEngine(tiny_onnx, device="cpu", options=options)
        runs.append([answer.to_dict() for answer in engine.answer_many(records)])
    assert runs[0] == runs[1] == runs[2]
    for record, answer in zip(records, runs[0]):
        texts = [p.text for p in record.passages] if isinstance(record, QAExample) and record.passages else None
        texts = texts or ([record.context] if isinstance(record, QAExample) else record["contexts"])
        # Spans of at most 3 tokens: random logits leave far more than 4 that do not overlap the best.
        assert len(answer["top_answers"]) == 4
        taken: dict = {}
        for top in answer["top_answers"]:
            text = texts[top.get("passage", 0)]
            assert text[top["start"] : top["end"]] == top["answer"]
            for start, end in taken.setdefault(top.get("passage", 0), []):
                assert top["end"] <= start or end <= top["start"], "overlapping answers"
            taken[top.get("passage", 0)].append((top["start"], top["end"]))
        assert [a["score"] for a in answer["top_answers"]] == sorted((a["score"] for a in answer["top_answers"]), reverse=True)
        assert answer["top_answers"][0]["answer"] == answer["answer"]


def test_top_k_per_call_and_bad_passage_lists(tiny_onnx):
    engine = _engine(tiny_onnx, max_answer_length=3)
    example = make_examples(1, seed=8)[0]
    assert engine.answer(example.question, example.context).top_answers is None
    ranked = engine.answer(example.question, example.context, top_k=3).top_answers
    assert len(ranked) == 3 and all(isinstance(answer, spanqa.engine.RankedAnswer) for answer in ranked)
    assert [len(a.top_answers) for a in engine.answer_many([example, example], top_k=2)] == [2, 2]
    with pytest.raises(DataFormatError, match=r'record 1 \(id .0.\): field "contexts" is an empty list'):
        engine.answer("Who?", contexts=[])
    with pytest.raises(DataFormatError, match='field "contexts" item 1 must be a string'):
        engine.answer("Who?", contexts=["fine", 3])
    with pytest.raises(TypeError, match="exactly one"):
        engine.answer("Who?", "a context", contexts=["a passage"])
    with pytest.raises(DataFormatError, match='field "contexts" must be a list of passages, got a JSON string'):
        engine.answer("Who?", contexts="one passage, not a list")
    assert engine.answer("Who?", contexts=("A passage.", "Another.")).passage in (0, 1)


def test_cjk_and_emoji_passages_go_through_word_alignment(tiny_onnx):
    engine = _engine(tiny_onnx, top_k=3)
    passages = ["\u5317\u4eac\u662f\u4e2d\u56fd\u7684\u9996\u90fd\uff0c\u6709\u5f88\u591a\u4eba\u3002",
                "fans \U0001F600 cheered hello\U0001F600world at the river bridge",
                "\u6211\u7528 Python\u7f16\u7a0b and the museum garden"]  # fmt: skip
    answer = engine.answer("where is the bridge?", contexts=passages)
    for top in answer.top_answers:
        assert passages[top.passage][top.start : top.end] == top.answer and top.answer


# --- the shipped int8 model: the right passage among 9 distractors ------------------------------------------------

HELD_OUT = [
    (
        "In what year was the Harlow Reservoir dam completed?",
        "The Harlow Reservoir dam was completed in 1931 after six years of work by the county water board.",
        "1931",
        [
            "The Marsh Lane reservoir was enlarged in 1958, when its dam was raised by four metres.",
            "Kestrel Water, a reservoir in the northern hills, supplies three towns with drinking water.",
            "The Ashby dam failed in a storm in 1889 and was rebuilt in stone two years later.",
            "Work on the Coldbrook canal began in 1902 and ended when the company ran out of money.",
            "The Orwell aqueduct carries water across the valley on forty brick arches.",
            "Fishing on the Linton reservoir has been allowed since 1975, from March to October.",
            "The Brenford pumping station, opened in 1899, still houses its original steam engines.",
            "Engineers inspect the Pellow dam every spring for cracks in its concrete face.",
            "The river Tove floods the meadows below the town almost every winter.",
        ],
    ),
    (
        "Who painted the ceiling of the Vessel Hall?",
        "The ceiling of the Vessel Hall was painted by Marguerite Olenska between 1712 and 1716.",
        "Marguerite Olenska",
        [
            "The Vessel Hall was built as a warehouse for the harbour's grain merchants.",
            "Tomas Feld carved the oak doors of the town library in 1790.",
            "The chapel's windows were glazed by a workshop from Antwerp.",
            "Visitors to the Vessel Hall today can hire a guide at the east gate.",
            "The portrait of the mayor in the council room is by an unknown painter.",
            "The hall's organ was rebuilt in 1888 by the brothers Hale.",
            "A fire in 1801 destroyed the roof of the old customs house.",
            "The museum shows seascapes painted along this coast in the last century.",
            "Students of the academy copy the old masters in the long gallery.",
        ],
    ),
    (
        "How long is the Serrat railway tunnel?",
        "At 7.4 kilometres, the Serrat railway tunnel was the longest in the country when it opened.",
        "7.4 kilometres",
        [
            "The Serrat line was closed to passengers in 1966 and to freight in 1971.",
            "The road tunnel under the Varn river is lit by four thousand lamps.",
            "Trains on the coast railway stop at eleven stations between the two cities.",
            "The Serrat pass is covered in snow from November until April.",
            "A new bridge over the gorge replaced the wooden viaduct in 1934.",
            "Miners dug the first tunnel through the ridge by hand, using only picks.",
            "The railway museum keeps three locomotives that once worked the mountain line.",
            "Tickets for the night train to the capital are sold at the main station.",
            "The canal tunnel at Holt is so narrow that boats were pushed through by foot.",
        ],
    ),
]


@pytest.fixture(scope="module")
def shipped_engine() -> QAEngine:
    return QAEngine(options=EngineOptions(decode=DecodeOptions(top_k=3)))


@pytest.mark.parametrize("position", [0, 4, 9])
def test_the_right_passage_wins_among_nine_distractors_with_the_shipped_model(shipped_engine, position):
    engine = shipped_engine
    for question, right, expected, distractors in HELD_OUT:
        passages = [{"id": f"d{index}", "text": text} for index, text in enumerate(distractors)]
        passages.insert(position, {"id": "right", "text": right})
        answer = engine.answer(question, contexts=passages)
        assert (answer.passage, answer.answer) == ("right", expected), question
        assert right[answer.start : answer.end] == expected
        assert answer.score > 0.5 and answer.score > 5 * answer.top_answers[1].score
        assert len(answer.top_answers) == 3
