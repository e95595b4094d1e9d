"""Helpers shared by the qa-export tests: a small validation file and tiny random QA checkpoints of each family.

No tests here; the test_export*.py modules import these (pytest puts tests/ on sys.path).
"""

from __future__ import annotations

import json
from pathlib import Path

# Written for these tests (no SQuAD text). One context is long enough to need several 384-token windows,
# so the parity gate's windowing and cross-window decoding are exercised.
_RIVER = "The Lanmar river starts in the northern hills near the village of Oskel and flows south for ninety kilometres."
_MILL = (
    "In 1874 the town of Brevik opened a paper mill on the east bank. The mill employed two hundred workers and "
    "burned coal brought by barge from Tessen. It closed in 1931 after a fire destroyed the drying hall."
)
_FILLER = " ".join(
    f"Record {number} of the harbour ledger lists a cargo of {number * 3} crates of salted fish and {number} barrels."
    for number in range(1, 60)
)
_LONG = _FILLER + " The harbour master in those years was Ilse Varga, who kept the ledger in her own hand."

_QUESTIONS = [
    ("river-start", "Where does the river start?", _RIVER, "the northern hills near the village of Oskel"),
    ("river-length", "How long is the river?", _RIVER, "ninety kilometres"),
    ("mill-year", "When did the paper mill open?", _MILL, "1874"),
    ("mill-workers", "How many workers did the mill employ?", _MILL, "two hundred"),
    ("mill-fuel", "Where did the coal come from?", _MILL, "Tessen"),
    ("mill-closed", "Why did the mill close?", _MILL, "a fire destroyed the drying hall"),
    ("ledger-keeper", "Who kept the harbour ledger?", _LONG, "Ilse Varga"),
    ("ledger-fish", "What did record 7 list?", _LONG, "21 crates of salted fish"),
]


def write_validation(path: Path) -> Path:
    """A JSONL validation file in the Hugging Face answers format, one question per line."""
    with open(path, "w", encoding="utf-8") as handle:
        for question_id, question, context, answer in _QUESTIONS:
            start = context.index(answer)
            record = {"id": question_id, "question": question, "context": context,
                      "answers": {"text": [answer], "answer_start": [start]}}  # fmt: skip
            handle.write(json.dumps(record) + "\n")
    return path


def save_tiny_checkpoint(folder: Path, model_type: str, tokenizer, layers: int = 2, seed: int = 0) -> Path:
    """A randomly initialised QA model of `model_type` (hidden 32), saved with the packaged tokenizer."""
    import torch
    from transformers import AutoConfig, AutoModelForQuestionAnswering, AutoTokenizer

    vocab = len(tokenizer)
    common = dict(vocab_size=vocab, max_position_embeddings=512)
    shapes = {
        "bert": dict(hidden_size=32, num_hidden_layers=layers, num_attention_heads=2, intermediate_size=64),
        "distilbert": dict(dim=32, n_layers=layers, n_heads=2, hidden_dim=64),
        # RoBERTa counts positions from padding_idx + 1, so it needs two extra position embeddings.
        "roberta": dict(hidden_size=32, num_hidden_layers=layers, num_attention_heads=2, intermediate_size=64,
                        type_vocab_size=1, max_position_embeddings=514, pad_token_id=tokenizer.pad_token_id,
                        bos_token_id=tokenizer.cls_token_id, eos_token_id=tokenizer.sep_token_id),
        "xlm-roberta": dict(hidden_size=32, num_hidden_layers=layers, num_attention_heads=2, intermediate_size=64,
                            type_vocab_size=1, max_position_embeddings=514, pad_token_id=tokenizer.pad_token_id),
        # ELECTRA with a narrower embedding than hidden state, as its real small models have (a projection).
        "electra": dict(hidden_size=32, num_hidden_layers=layers, num_attention_heads=2, intermediate_size=64,
                        embedding_size=16),
        "albert": dict(hidden_size=32, num_hidden_layers=layers, num_attention_heads=2, intermediate_size=64,
                       embedding_size=16),
    }  # fmt: skip
    config = AutoConfig.for_model(model_type, **{**common, **shapes[model_type]})
    torch.manual_seed(seed)
    model = AutoModelForQuestionAnswering.from_config(config)
    folder.mkdir(parents=True, exist_ok=True)
    model.save_pretrained(folder)
    if model_type in ("distilbert", "roberta", "xlm-roberta"):
        # Their real tokenizers return no token_type_ids (RoBERTa's single type embedding could not take them).
        tokenizer = AutoTokenizer.from_pretrained(
            tokenizer.name_or_path, model_input_names=["input_ids", "attention_mask"]
        )
    tokenizer.save_pretrained(folder)
    return folder


def hidden_entries(folder: Path) -> list[str]:
    """Leftover staging/scratch folders (they start with a dot) in an output's parent."""
    return sorted(path.name for path in folder.iterdir() if path.name.startswith("."))
