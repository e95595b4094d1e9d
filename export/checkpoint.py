"""Find, check, hash and load the checkpoint to export, in fp32, refusing anything that would export garbage.

Refused, each with the folder or file named: a missing folder, a folder without config.json, an unreadable or
corrupt config or weight file, an architecture outside `families.FAMILIES`, weights only in pickle format (unless
allowed: unpickling runs code), and a checkpoint that lacks weights the QA model needs, above all the `qa_outputs`
head (a raw backbone would otherwise export with a randomly initialised head and answer nonsense). Remote code is
never trusted.
"""

from __future__ import annotations

import hashlib
import logging
from dataclasses import dataclass
from pathlib import Path

from spanqa.export.families import Family, family_of
from spanqa.export.options import ExportError

logger = logging.getLogger(__name__)

CONFIG_FILE = "config.json"
SAFE_WEIGHT_SUFFIX = ".safetensors"
PICKLE_WEIGHT_SUFFIXES = (".bin", ".pt", ".pth", ".ckpt", ".pkl")
OTHER_FRAMEWORK_WEIGHTS = ("tf_model.h5", "flax_model.msgpack")
# What a Hub download fetches: config, tokenizer and safetensors weights (pickles only when allowed).
HUB_PATTERNS = ("*.json", "*.txt", "*.model", "*.safetensors")
_HASH_CHUNK = 1 << 20


@dataclass(frozen=True)
class Checkpoint:
    source: str  # what the user named: a folder or a Hub name
    folder: Path  # where its files are (the Hub snapshot for a Hub name)
    model: object  # transformers PreTrainedModel with a QA head, fp32, eval mode
    tokenizer: object  # fast tokenizer
    family: Family
    weight_files: tuple[str, ...]
    sha256: str  # see checkpoint_sha256


def load_checkpoint(source: str, allow_pickle: bool = False) -> Checkpoint:
    folder = resolve_folder(source, allow_pickle)
    weights = weight_files(folder, allow_pickle)
    config = _load_config(folder)
    family = family_of(config, str(folder))
    model = _load_model(folder, weights)
    tokenizer = _load_tokenizer(folder)
    names = tuple(path.name for path in weights)
    return Checkpoint(source, folder, model, tokenizer, family, names, checkpoint_sha256(folder, weights))


def resolve_folder(source: str, allow_pickle: bool) -> Path:
    path = Path(source).expanduser()
    if path.exists() or _looks_local(source):
        if not path.exists():
            raise ExportError(f"{path}: no such checkpoint folder")
        if not path.is_dir():
            raise ExportError(f"{path}: not a folder; CHECKPOINT must be a transformers model folder or a Hub name")
        if not (path / CONFIG_FILE).is_file():
            raise ExportError(f"{path / CONFIG_FILE}: missing; {path} is not a transformers model folder")
        return path
    return _download(source, allow_pickle)


def weight_files(folder: Path, allow_pickle: bool) -> list[Path]:
    """The PyTorch weight files transformers will load: safetensors when present, else pickles (if allowed)."""
    safe = sorted(folder.glob(f"*{SAFE_WEIGHT_SUFFIX}"))
    if safe:
        return safe
    pickled = sorted(p for p in folder.iterdir() if p.suffix in PICKLE_WEIGHT_SUFFIXES and p.is_file())
    if pickled:
        if not allow_pickle:
            names = ", ".join(p.name for p in pickled)
            raise ExportError(
                f"{folder}: weights only in pickle format ({names}); loading a pickle can run arbitrary code. "
                "Convert them to safetensors, or pass --allow-pickle if you trust the file"
            )
        return pickled
    others = [name for name in OTHER_FRAMEWORK_WEIGHTS if (folder / name).exists()]
    if others:
        raise ExportError(f"{folder}: only {', '.join(others)} (not PyTorch weights); convert to safetensors first")
    raise ExportError(f"{folder}: no weight file (*.safetensors) found")


def checkpoint_sha256(folder: Path, weights: list[Path]) -> str:
    """sha256 over config.json, then each weight file in name order: for each, its name, a NUL byte, its bytes.
    Names are included so that renaming a shard changes the hash, as it changes what transformers loads."""
    digest = hashlib.sha256()
    for path in [folder / CONFIG_FILE, *weights]:
        digest.update(path.name.encode("utf-8") + b"\0")
        try:
            with open(path, "rb") as handle:
                while chunk := handle.read(_HASH_CHUNK):
                    digest.update(chunk)
        except OSError as error:
            raise ExportError(f"{path}: cannot read ({error.strerror})") from None
    return digest.hexdigest()


def _load_config(folder: Path):
    from transformers import AutoConfig

    try:
        return AutoConfig.from_pretrained(folder, trust_remote_code=False)
    except (OSError, ValueError, KeyError, TypeError) as error:  # bad JSON, unknown model_type, remote code ...
        if "trust_remote_code" in str(error):
            raise ExportError(
                f"{folder / CONFIG_FILE}: the checkpoint needs its own Python code (auto_map), "
                "which qa-export never runs; export a model whose architecture transformers implements"
            ) from None
        raise ExportError(f"{folder / CONFIG_FILE}: cannot load the model configuration: {_one_line(error)}") from None


def _load_model(folder: Path, weights: list[Path]):
    import torch
    import transformers
    from transformers import AutoModelForQuestionAnswering

    names = ", ".join(p.name for p in weights)
    verbosity = transformers.logging.get_verbosity()
    # transformers logs the missing head as a warning; it is turned into an error below, so keep the log quiet.
    transformers.logging.set_verbosity_error()
    try:
        model, info = AutoModelForQuestionAnswering.from_pretrained(
            folder,
            dtype=torch.float32,  # checkpoints stored in fp16/bf16 are exported from fp32 weights
            attn_implementation=fusable_attention(),
            output_loading_info=True,
            trust_remote_code=False,
            use_safetensors=weights[0].suffix == SAFE_WEIGHT_SUFFIX,
        )
    except Exception as error:  # corrupt files surface as OSError, SafetensorError, RuntimeError, UnpicklingError ...
        raise ExportError(f"{folder}: cannot load the weights ({names}): {_one_line(error)}") from None
    finally:
        transformers.logging.set_verbosity(verbosity)
    missing = sorted(info.get("missing_keys", ()))
    mismatched = info.get("mismatched_keys", ())
    head = [key for key in missing if key.startswith("qa_outputs.")]
    if head:
        raise ExportError(
            f"{folder}: no question-answering head in {names} ({', '.join(head)} missing): this is a base model, "
            "and exporting it would give a randomly initialised head; fine-tune it with qa-train first"
        )
    if missing or mismatched:
        shown = ", ".join([*missing[:5], *(str(item[0]) for item in mismatched[:5])])
        raise ExportError(
            f"{folder}: {len(missing) + len(mismatched)} weight(s) missing or of the wrong shape in {names} "
            f"(e.g. {shown}); they would be randomly initialised, so the checkpoint is incomplete or corrupt"
        )
    if info.get("unexpected_keys"):
        logger.info("%s: ignoring %d weight(s) the QA model does not use", folder, len(info["unexpected_keys"]))
    not_fp32 = {str(p.dtype) for p in model.parameters() if p.dtype != torch.float32}
    if not_fp32:
        raise ExportError(f"{folder}: weights stayed in {', '.join(sorted(not_fp32))} after loading as float32")
    return model.eval()


def fusable_attention() -> str | None:
    """The attention implementation whose traced graph ONNX Runtime's optimizer fuses into Attention nodes (None:
    transformers' default). Measured with onnxruntime 1.32 on tiny configs of every family: under transformers 4.57
    the default graph (SDPA where the family has it, eager for ELECTRA) fuses everywhere and DistilBERT's eager one
    does not; under transformers 5 the eager graph fuses everywhere and the SDPA one nowhere (its mask arithmetic
    differs). Both compute the same attention; the parity gate checks the result."""
    import transformers

    return "eager" if int(transformers.__version__.split(".")[0]) >= 5 else None


def _load_tokenizer(folder: Path):
    from transformers import AutoTokenizer

    try:
        tokenizer = AutoTokenizer.from_pretrained(folder, trust_remote_code=False)
    except Exception as error:  # missing vocab, corrupt tokenizer.json (a bare Exception from the Rust side) ...
        raise ExportError(f"{folder}: cannot load the tokenizer: {_one_line(error)}") from None
    if not getattr(tokenizer, "is_fast", False):
        raise ExportError(f"{folder}: the tokenizer has no fast (Rust) version, which the engine's windowing needs")
    if tokenizer.pad_token_id is None:
        raise ExportError(f"{folder}: the tokenizer defines no padding token")
    return tokenizer


def _download(source: str, allow_pickle: bool) -> Path:
    from huggingface_hub import snapshot_download

    patterns = [*HUB_PATTERNS, *(f"*{suffix}" for suffix in PICKLE_WEIGHT_SUFFIXES if allow_pickle)]
    try:
        return Path(snapshot_download(source, allow_patterns=patterns))
    except Exception as error:  # offline, unknown repository, gated model, bad name ...
        raise ExportError(
            f"{source}: not a local folder, and it cannot be fetched from the Hugging Face Hub: {_one_line(error)}"
        ) from None


def _looks_local(source: str) -> bool:
    # A Hub name is "name" or "owner/name"; anything path-like is meant as a local folder.
    return source.startswith((".", "/", "~")) or source.count("/") > 1 or source.endswith("/")


def _one_line(error: BaseException) -> str:
    text = " ".join(line.strip() for line in str(error).splitlines() if line.strip())
    return text or type(error).__name__
