"""SQuAD JSON (or anything `load_examples` reads) to qa-answer's JSONL input, gold answers kept so that qa-answer
prints EM/F1 as it goes:

    python tools/squad_to_jsonl.py ../shared/data/squad/dev-v1.1.json.gz runs/dev-v1.1.jsonl

Each line is {"id", "question", "context", "answers": {"text": [...], "answer_start": [...]}}, in file order.
The output holds SQuAD text: keep it out of the repository (runs/ is ignored).
"""

from __future__ import annotations

import json
import sys

from spanqa.engine.core.data import load_examples


def main(argv: list[str]) -> int:
    if len(argv) != 2:
        print(__doc__, file=sys.stderr)
        return 2
    source, target = argv
    with open(target, "w", encoding="utf-8") as handle:
        for example in load_examples(source):
            answers = {"text": list(example.answer_texts), "answer_start": list(example.answer_starts)}
            record = {"id": example.id, "question": example.question, "context": example.context, "answers": answers}
            handle.write(json.dumps(record, ensure_ascii=False) + "\n")
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
