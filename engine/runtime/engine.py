"""`QAEngine`: answer questions from contexts with an exported (ONNX Runtime) or PyTorch model, in a pipeline that
tokenizes ahead in a background thread while the model runs."""

from __future__ import annotations

import hashlib
import os
import time
from collections.abc import Iterable, Iterator, Mapping, Sequence
from dataclasses import asdict, dataclass, replace
from pathlib import Path
from typing import Any, TypeVar

import numpy as np

from spanqa.engine.runtime.backends.base import Backend
from spanqa.engine.runtime.backends.loading import load_model, pad_token_id, resolve_backend, worker_backends
from spanqa.engine.runtime.batching import PreparedGroup, iter_groups, prepare_group
from spanqa.engine.core.data import QAExample
from spanqa.engine.core.model_folder import Manifest, ModelFolderError, is_exported_model, read_manifest
from spanqa.engine.core.decoder import DecodeOptions
from spanqa.engine.core.ordered_decode import OrderedDecoder
from spanqa.engine.core.ranking import QuestionPassages, rank_answers
from spanqa.engine.core.records import CONTEXTS_FIELD, to_example
from spanqa.engine.core.word_align import WordAligner
from spanqa.engine.runtime.options import EngineOptions
from spanqa.engine.runtime.pool import BatchPool
from spanqa.engine.runtime.prefetch import Prefetcher
from spanqa.engine.runtime.results import Answer, EngineStats

DEFAULT_MODEL_NAME = "minilm-l6-squad-int8"

Record = QAExample | Mapping[str, Any] | tuple[str, str] | tuple[str, Sequence[Any]]
Passages = Sequence[str | Mapping[str, Any]]  # records rule 6: strings or {"text", "id"?} objects
Payload = TypeVar("Payload")


def default_model_dir() -> Path:
    """The model shipped inside the package (engine/models/minilm-l6-squad-int8)."""
    folder = Path(__file__).resolve().parents[1] / "models" / DEFAULT_MODEL_NAME
    if not is_exported_model(folder):
        raise ModelFolderError(
            f"{folder}: the default model is not installed in this copy of spanqa; pass a model folder instead "
            "(a qa-export output or a transformers question-answering checkpoint)"
        )
    return folder


def answer_settings(model_dir: str | os.PathLike, options: EngineOptions) -> dict[str, Any]:
    """Everything that decides the answers of an engine on `model_dir` with `options`, as JSON values: the model's
    files (by content, so a copy elsewhere is the same model), the backend, device and dtype asked for, the window,
    decoding and batching options. Thread and worker counts are left out: the file jobs and Ray's actors choose them
    apart, and a batch's answers do not depend on the session or thread that ran it."""
    folder = Path(model_dir)
    if not folder.is_dir():
        raise ModelFolderError(f"{folder}: no such model folder")
    precision = read_manifest(folder).precision if is_exported_model(folder) else None
    return {
        "model": {"files_sha256": model_files_digest(folder), "precision": precision},
        "backend": resolve_backend(folder, options),  # what auto means here: answers differ between backends
        "device": options.device,
        "torch_dtype": options.torch_dtype,
        "window": None if options.window is None else asdict(options.window),  # None: the model's own
        "decode": asdict(options.decode),
        "max_batch_tokens": options.max_batch_tokens,
        "max_batch_windows": options.max_batch_windows,
        "lookahead": options.lookahead,
    }


def model_files_digest(folder: Path) -> str:
    """sha256 over the names, sizes and bytes of the folder's files, in name order (hidden files left out)."""
    digest = hashlib.sha256()
    for path in sorted(folder.iterdir()):
        if path.is_file() and not path.name.startswith("."):
            digest.update(f"{path.name}\0{path.stat().st_size}\0".encode())
            with open(path, "rb") as handle:
                digest.update(hashlib.file_digest(handle, "sha256").digest())
    return digest.hexdigest()


class QAEngine:
    """Extractive question answering over a model folder.

    `model` is a qa-export folder (manifest.json: runs on ONNX Runtime), a transformers question-answering
    checkpoint folder (runs on torch), or None for `default_model_dir()`. `device` overrides `options.device`.

    One engine serves one thread at a time: `stats` is updated without locks. The tokenizer and the device buffers
    are guarded, so interleaving `answer` calls with an open `answer_many` iterator is safe.
    """

    def __init__(
        self, model: str | os.PathLike | None = None, device: str = "auto", options: EngineOptions | None = None
    ):
        options = options or EngineOptions()
        if device != "auto":
            if options.device not in ("auto", device):
                raise ValueError(f"device={device!r} contradicts options.device={options.device!r}")
            options = replace(options, device=device)
        self.options = options
        self.model_dir = default_model_dir() if model is None else Path(model)
        loaded = load_model(self.model_dir, options)
        self.backend: Backend = loaded.backend
        # The backends the workers run batches on (`options.workers`); the first is `backend`.
        self.worker_backends: tuple[Backend, ...] = worker_backends(loaded, options)
        self.tokenizer = loaded.tokenizer
        self.window_options = loaded.window
        self.manifest: Manifest | None = loaded.manifest
        self.stats = EngineStats()
        self._pad_token_id = pad_token_id(self.tokenizer)
        self._aligner = WordAligner(self.tokenizer)

    def reset_stats(self) -> None:
        self.stats = EngineStats()

    def answer(
        self,
        question: str,
        context: str | None = None,
        id: str | int = "0",
        *,
        contexts: Passages | None = None,
        top_k: int | None = None,
    ) -> Answer:
        """Answer one question from `context`, or from several passages (`contexts`: strings or {"text", "id"?}
        objects, records rule 6): the best answer across them, its `passage` (the passage's id, else its 0-based
        index) and offsets in that passage. `top_k` (default `options.decode.top_k`) > 1 adds the top_k best
        answers without duplicates or overlaps as `top_answers` (ranking rules: `spanqa.engine.core.ranking`).
        Raises `DataFormatError` for a bad question or passage list."""
        if (context is None) == (contexts is None):
            raise TypeError("answer() takes a context or contexts=[...], exactly one of them")
        if contexts is not None and isinstance(contexts, tuple):
            contexts = list(contexts)  # a list is what the record rules take (a string is refused, not split)
        field = ("context", context) if contexts is None else (CONTEXTS_FIELD, contexts)
        example = to_example({"id": id, "question": question, field[0]: field[1]}, 0)
        prepared = self._prepare([example])
        computed = ((*item, _run_batch(self.backend, item[1])) for item in prepared.group.batches)
        return self._finish(prepared, computed, self._decode_options(top_k))[0]

    def answer_many(self, records: Iterable[Record], *, top_k: int | None = None) -> Iterator[Answer]:
        """Answers in input order, computed lazily: the iterable is read as answers are consumed, never all at once.

        A record is a QAExample, a mapping with "question" and "context" or "contexts" (records rule 6; and "id";
        without it the record's position counted from the first record, as a string), or a (question, context)
        pair (a list of passages for several). `top_k` is `answer`'s, for every record.

        Batching rule (what resuming relies on): records are taken in consecutive groups of `options.lookahead`
        counted from the first record given here; a multi-passage record counts as one record, and every window of
        all its passages is in its group; batches never mix two groups; inside a group, windows are sorted
        by length (stable) and packed under `max_batch_tokens` / `max_batch_windows`. So for the same options an
        example's answer depends only on its group, and a caller that resumes at a group boundary reproduces exactly
        the same outputs. An example's windows are gathered back before decoding, whichever batches they ran in.
        fp32 answers do not depend on batching at all; a dynamically quantized int8 graph quantizes activations per
        tensor, i.e. per batch (padding included), so its answers can change with their batch mates, which the
        group rule keeps reproducible (max_batch_windows=1 makes each answer depend on its own question only).

        The records are read, and checked, in the caller's thread, one group at a time; while one group is in the
        model, the next `options.prefetch` groups are tokenized in a background thread. An error in a record or in
        the iterable is raised here after the answers to every record before it; abandoning the iterator (break,
        close(), garbage collection) stops the thread.

        Batches run on `len(worker_backends)` workers at once (threads, `pool.BatchPool`), at most twice as many
        batches submitted as workers, reaching into the next group at a group's end; they are decoded in the
        caller's thread in their batching order whichever worker finished first, so the answers do not depend on
        the number of workers. A batch's error is raised at its turn, as with one worker.
        """
        for _, answer in self.answer_pairs(((None, record) for record in records), top_k=top_k):
            yield answer

    def answer_pairs(
        self, items: Iterable[tuple[Payload, Record]], *, top_k: int | None = None
    ) -> Iterator[tuple[Payload, Answer]]:
        """`answer_many` for records that carry something along: each `(payload, record)` item comes back as
        `(payload, answer)`, in input order, batched by the same rule. The payload is never looked at; it travels
        with its record's group through the pipeline, so a caller needs no bookkeeping of its own to pair them."""
        decode = self._decode_options(top_k)
        groups = iter_groups(items, self.options.lookahead, _with_example)
        handed = (([payload for payload, _ in group], [example for _, example in group]) for group in groups)
        with (
            Prefetcher(self._prepare_with, handed, self.options.prefetch) as prepared,
            BatchPool(self.worker_backends, _run_batch) as pool,
        ):
            for (payloads, group), computed in pool.run_groups(prepared, lambda item: item[1].group.batches):
                yield from zip(payloads, self._finish(group, computed, decode), strict=True)

    def answer_settings(self) -> dict[str, Any]:
        """What decides this engine's answers (see `answer_settings`); `qa-answer --resume` compares it."""
        return answer_settings(self.model_dir, self.options)

    # The two halves of `answer_pairs` around the model, for callers that form their own batches (qa-serve's
    # dynamic batcher runs a batch with `run_batch` on one of `worker_backends`, then `finish`es each group in it).
    def prepare(self, examples: list[QAExample]) -> _Prepared:
        """Tokenize `examples` as one group, cut into batches by the batching rule (any thread)."""
        return self._prepare(examples)

    def finish(
        self, prepared: _Prepared, computed: Iterable[tuple[np.ndarray, Any, _Logits]], top_k: int | None = None
    ) -> list[Answer]:
        """The answers of a prepared group from `computed`, as `_finish` takes it (one thread at a time: `stats`)."""
        return self._finish(prepared, computed, self._decode_options(top_k))

    def _decode_options(self, top_k: int | None) -> DecodeOptions:
        return self.options.decode if top_k is None else replace(self.options.decode, top_k=top_k)

    def _prepare_with(self, group: tuple[list[Payload], list[QAExample]]) -> tuple[list[Payload], _Prepared]:
        payloads, examples = group
        return payloads, self._prepare(examples)

    def _prepare(self, examples: list[QAExample]) -> _Prepared:
        """The group's windows: those of every passage of a multi-passage question, one example per passage."""
        questions, passages = [], []
        for example in examples:
            names = tuple(passage.name for passage in example.passages) if example.passages else None
            questions.append(QuestionPassages(example.id, len(passages), len(names or (None,)), names))
            passages.extend(example.passage_examples())
        # QATokenizer serialises its own calls (each one resets truncation and stride), so no lock is needed here.
        group = prepare_group(
            self.tokenizer, passages, self.window_options, self._pad_token_id,
            self.options.max_batch_tokens, self.options.max_batch_windows, self.backend.width_multiple,
        )  # fmt: skip
        return _Prepared(group, questions)

    def _finish(
        self, prepared: _Prepared, computed: Iterable[tuple[np.ndarray, Any, _Logits]], decode: DecodeOptions
    ) -> list[Answer]:
        """Decode a group from `computed`: each of its batches, in order, as (rows, batch, `_run_batch`'s result)."""
        # Each batch is decoded as it comes back (in window order per example, as one decode over the whole group
        # would visit it), so no logits array for every window of the group exists: a context of millions of
        # tokens costs its windows and one batch.
        group = prepared.group
        num_windows = len(group.windows)
        decoder = OrderedDecoder(group.windows.example_index, len(group.examples), decode)
        infer_seconds = decode_seconds = 0.0
        for rows, batch, (batch_start, batch_end, seconds) in computed:
            expected = batch.input_ids.shape
            if batch_start.shape != expected or batch_end.shape != expected:
                raise RuntimeError(
                    f"{self.backend.name} returned logits of shapes {batch_start.shape} and {batch_end.shape} "
                    f"for a batch of shape {expected}"
                )
            inferred = time.perf_counter()
            infer_seconds += seconds
            # float32 whatever the graph returns: the scores (and so the tie rule) are float32 sums.
            decoder.add(rows, np.asarray(batch_start, np.float32), np.asarray(batch_end, np.float32), batch)
            decode_seconds += time.perf_counter() - inferred
        started = time.perf_counter()
        texts = [example.context for example in group.examples]
        answers = rank_answers(texts, decoder.spans(), prepared.questions, decode, self._aligner)
        decode_seconds += time.perf_counter() - started
        stats = self.stats
        stats.examples += len(prepared.questions)
        stats.windows += num_windows
        stats.batches += len(group.batches)
        stats.tokens += group.tokens
        stats.padded_tokens += group.padded_tokens
        stats.tokenize_seconds += group.seconds
        stats.infer_seconds += infer_seconds
        stats.decode_seconds += decode_seconds
        return answers


_Logits = tuple[np.ndarray, np.ndarray, float]


@dataclass(frozen=True)
class _Prepared:
    """A group ready to run: its windows (one example per passage) and where each question's passages are."""

    group: PreparedGroup
    questions: list[QuestionPassages]


def _run_batch(backend: Backend, batch) -> _Logits:
    """A batch's start and end logits and the seconds `run` took (in a worker's thread, or the caller's)."""
    started = time.perf_counter()
    start_logits, end_logits = backend.run(batch)
    return start_logits, end_logits, time.perf_counter() - started


run_batch = _run_batch  # public for `QAEngine.finish`'s callers


def _with_example(item: tuple[Payload, Record], index: int) -> tuple[Payload, QAExample]:
    payload, record = item
    return payload, to_example(record, index)
