"""The tokenizer the windows are cut with: a `tokenizers.Tokenizer` and the two special ids windowing needs.

Answering loads it straight from a model folder's tokenizer.json (`QATokenizer.from_folder`), so the answering path
needs neither transformers nor torch; training and export wrap the transformers tokenizer they already hold
(`QATokenizer.from_transformers`). Either way `make_windows` has one code path, and it calls the Rust tokenizer the
way a transformers fast tokenizer calls it for `tokenizer(questions, contexts, truncation="only_second",
max_length=..., stride=..., return_overflowing_tokens=True)`: truncation set on the backend, padding off, each
pair's encoding followed by its overflowing windows. A very long context is tokenized in slices instead
(`spanqa.engine.core.context_slices`, where `splits_at_spaces` says that gives the same tokens), and its windows are
laid out as that truncation lays them out.
"""

from __future__ import annotations

import json
import threading
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from tokenizers import Encoding, Tokenizer

TOKENIZER_FILE = "tokenizer.json"
CONFIG_FILE = "tokenizer_config.json"
SPECIAL_TOKENS_FILE = "special_tokens_map.json"


class TokenizerFileError(ValueError):
    """A tokenizer file is missing, unreadable or inconsistent; the message names the file."""


class QuestionTooLongError(ValueError):
    """A question leaves the context no room in the window (the Rust tokenizer refuses the whole batch)."""


@dataclass(frozen=True)
class SpecialTokens:
    cls_token_id: int | None  # None: the vocabulary has no classifier token; windows then use position 0
    pad_token_id: int | None  # None: no padding token; padded positions are masked, so any id serves
    truncation_side: str = "right"  # transformers' `truncation_side`, passed on as the truncation direction


@dataclass(frozen=True)
class PairBatch:
    """Every window of a batch of (question, context) pairs, flattened the way transformers flattens overflow."""

    encodings: list[Encoding]
    example_index: list[int]  # the pair each window came from (transformers' overflow_to_sample_mapping)


# Pipeline parts under which a text cut at an ASCII space tokenizes as the concatenation of its two pieces: the
# normalizers map characters one by one (NFC/NFKC never compose across a space, which has combining class 0), the
# pre-tokenizers split at every space and never look across it, and the model then sees one word at a time.
_LOCAL_NORMALIZERS = frozenset({"BertNormalizer", "Lowercase", "NFD", "NFKD", "NFC", "NFKC", "StripAccents"})
_SPACE_SPLITTING_PRE_TOKENIZERS = frozenset({"BertPreTokenizer", "Whitespace", "WhitespaceSplit"})
_LOCAL_PRE_TOKENIZERS = _SPACE_SPLITTING_PRE_TOKENIZERS | {"Punctuation", "Digits"}
_TEMPLATE_POST_PROCESSORS = frozenset({"BertProcessing", "TemplateProcessing"})


class QATokenizer:
    """Owns its backend: truncation is (re)set on it per call, under a lock, so the backend must not be shared."""

    def __init__(self, backend: Tokenizer, special: SpecialTokens, source: str) -> None:
        backend.no_padding()  # windows are stored unpadded; batches are padded later to their longest window
        self._backend = backend
        self.special = special
        self.source = source  # the folder or tokenizer it came from, for messages
        self._lock = threading.Lock()
        self.splits_at_spaces = _splits_at_spaces(json.loads(backend.to_str()))

    @property
    def cls_token_id(self) -> int | None:
        return self.special.cls_token_id

    @property
    def pad_token_id(self) -> int | None:
        return self.special.pad_token_id

    @classmethod
    def from_folder(cls, folder: str | Path) -> QATokenizer:
        """The tokenizer a transformers `save_pretrained` wrote into `folder`: tokenizer.json for the pipeline, the
        special tokens from tokenizer_config.json / special_tokens_map.json (as transformers reads them), else from
        the post-processor's template."""
        folder = Path(folder)
        path = folder / TOKENIZER_FILE
        if not path.is_file():
            raise TokenizerFileError(f"{path}: missing; the engine needs the fast tokenizer's tokenizer.json")
        try:
            backend = Tokenizer.from_file(str(path))
        except Exception as error:  # noqa: BLE001 - tokenizers raises a bare Exception on a corrupt file
            raise TokenizerFileError(f"{path}: cannot load the tokenizer: {error}") from None
        config = _special_token_settings(folder)
        cls_id = _token_id(backend, config.get("cls_token"), folder / CONFIG_FILE)
        if cls_id is None:
            cls_id = _first_template_token(backend)
        pad_id = _token_id(backend, config.get("pad_token"), folder / CONFIG_FILE)
        if pad_id is None and backend.padding is not None:
            pad_id = backend.padding.get("pad_id")
        side = config.get("truncation_side", "right")
        if side not in ("left", "right"):
            raise TokenizerFileError(f"{folder / CONFIG_FILE}: truncation_side must be left or right, got {side!r}")
        return cls(backend, SpecialTokens(cls_id, pad_id, side), str(folder))

    @classmethod
    def from_transformers(cls, tokenizer: Any) -> QATokenizer:
        """Wrap a transformers fast tokenizer (training, export): a copy of its Rust backend and its special ids."""
        backend = getattr(tokenizer, "backend_tokenizer", None)
        if not getattr(tokenizer, "is_fast", False) or backend is None:
            raise TypeError("windows need a fast (Rust-backed) tokenizer: offsets come from the tokenizers library")
        special = SpecialTokens(tokenizer.cls_token_id, tokenizer.pad_token_id, tokenizer.truncation_side)
        # A copy, because truncation is set on it per call and the transformers tokenizer keeps using its own.
        return cls(Tokenizer.from_str(backend.to_str()), special, getattr(tokenizer, "name_or_path", "") or "")

    def num_special_tokens_to_add(self, pair: bool) -> int:
        return self._backend.num_special_tokens_to_add(pair)

    def encode_pairs(self, questions: Sequence[str], contexts: Sequence[str], max_length: int, stride: int) -> PairBatch:
        """Windows of at most max_length tokens, cutting only the context, consecutive windows sharing `stride`
        tokens; raises QuestionTooLongError when some question leaves no room for its context."""
        with self._lock:
            self._backend.enable_truncation(
                max_length, stride=stride, strategy="only_second", direction=self.special.truncation_side
            )
            try:
                encoded = self._backend.encode_batch(list(zip(questions, contexts)), add_special_tokens=True)
            except Exception as error:  # the Rust tokenizer raises a bare Exception for this (transformers#23654)
                if "Truncation error" not in str(error):
                    raise
                raise QuestionTooLongError(str(error)) from None
        encodings: list[Encoding] = []
        example_index: list[int] = []
        for pair, encoding in enumerate(encoded):
            windows = [encoding, *encoding.overflowing]
            encodings.extend(windows)
            example_index.extend([pair] * len(windows))
        return PairBatch(encodings, example_index)

    def encode_texts(self, texts: Sequence[str]) -> list[Encoding]:
        """Each text alone, whole, without special tokens (for counting and cutting question tokens)."""
        with self._lock:
            self._backend.no_truncation()
            return self._backend.encode_batch(list(texts), add_special_tokens=False)

    def word_spans(self, text: str) -> list[tuple[int, int]]:
        """[start, end) of each word of `text` in character offsets, in order: the tokenizer's own words (its
        pre-tokenizer's pieces, after its normalizer: BERT splits punctuation and each CJK character off), each
        spanning the tokens it was cut into. Characters the tokenizer drops belong to no word."""
        with self._lock:
            self._backend.no_truncation()
            encoding = self._backend.encode(text, add_special_tokens=False)
        spans: list[tuple[int, int]] = []
        last_word = None
        for word, (start, end) in zip(encoding.word_ids, encoding.offsets):
            if word is None:
                continue
            if word == last_word:
                spans[-1] = (spans[-1][0], max(spans[-1][1], end))
            else:
                spans.append((start, end))
                last_word = word
        return spans

    def __repr__(self) -> str:
        return f"QATokenizer({self.source!r}, cls={self.cls_token_id}, pad={self.pad_token_id})"


def _splits_at_spaces(state: dict[str, Any]) -> bool:
    """Whether windows of a long context can be cut from its pieces tokenized apart (`windows.make_windows`): a text
    cut at an ASCII space must tokenize as its two pieces' tokens, and a window must be the question's template
    around a run of context tokens. Anything else (byte-level or SentencePiece pipelines, regex replacements,
    added tokens that strip or hold spaces) is tokenized whole, as before."""

    def parts(component: Any, key: str) -> list[dict[str, Any]]:
        if component is None:
            return []
        if component["type"] != "Sequence":
            return [component]
        return [part for nested in component[key] for part in parts(nested, key)]

    normalizers = parts(state.get("normalizer"), "normalizers")
    pre_tokenizers = parts(state.get("pre_tokenizer"), "pretokenizers")
    post_processor = state.get("post_processor") or {}
    added_tokens_stay_local = all(
        not token.get("lstrip") and not token.get("rstrip") and not any(c.isspace() for c in token["content"])
        for token in state.get("added_tokens", [])
    )  # fmt: skip
    return (
        all(part["type"] in _LOCAL_NORMALIZERS for part in normalizers)
        and any(part["type"] in _SPACE_SPLITTING_PRE_TOKENIZERS for part in pre_tokenizers)
        and all(part["type"] in _LOCAL_PRE_TOKENIZERS for part in pre_tokenizers)
        and post_processor.get("type") in _TEMPLATE_POST_PROCESSORS
        and added_tokens_stay_local
    )


def _special_token_settings(folder: Path) -> dict[str, Any]:
    """tokenizer_config.json, overlaid with special_tokens_map.json only for configs without added_tokens_decoder
    (older saves): the precedence transformers' from_pretrained applies."""
    config = _read_json(folder / CONFIG_FILE)
    if "added_tokens_decoder" not in config:
        config.update(_read_json(folder / SPECIAL_TOKENS_FILE))
    return config


def _read_json(path: Path) -> dict[str, Any]:
    if not path.is_file():
        return {}
    try:
        value = json.loads(path.read_text(encoding="utf-8"))
    except (UnicodeDecodeError, json.JSONDecodeError) as error:
        raise TokenizerFileError(f"{path}: not valid JSON ({error})") from None
    if not isinstance(value, dict):
        raise TokenizerFileError(f"{path}: expected a JSON object, got {type(value).__name__}")
    return value


def _token_id(backend: Tokenizer, token: Any, where: Path) -> int | None:
    """The id of a special token written as a string or as a serialized AddedToken ({"content": ...})."""
    if isinstance(token, dict):
        token = token.get("content")
    if token is None:
        return None
    if not isinstance(token, str):
        raise TokenizerFileError(f"{where}: a special token must be a string, got {token!r}")
    token_id = backend.token_to_id(token)
    if token_id is None:
        raise TokenizerFileError(f"{where}: special token {token!r} is not in {TOKENIZER_FILE}'s vocabulary")
    return token_id


def _first_template_token(backend: Tokenizer) -> int | None:
    """The special token the post-processor puts first in a single sequence ([CLS], <s>), read from its saved
    form: Bert/RobertaProcessing name it `cls`, TemplateProcessing lists it, Sequence nests processors."""
    state = json.loads(backend.to_str()).get("post_processor")
    processors = state.get("processors", [state]) if isinstance(state, dict) else []
    for processor in processors:
        if isinstance(processor.get("cls"), list):
            return int(processor["cls"][1])
        for piece in processor.get("single", []):
            if "SpecialToken" in piece:
                ids = processor["special_tokens"][piece["SpecialToken"]["id"]]["ids"]
                return int(ids[0]) if ids else None
            break  # the template starts with the sequence itself: no leading classifier token
    return None


__all__ = ["PairBatch", "QATokenizer", "QuestionTooLongError", "SpecialTokens", "TokenizerFileError"]
