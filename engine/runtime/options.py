"""Options of the answering engine: where it runs, how it batches, and the ONNX Runtime session knobs.

The batching defaults suit CPUs: on the project's 2-core machine, with the shipped static int8 MiniLM-L6 on its
default 2 sessions x 1 thread, 512 padded tokens per batch answered the most questions per second (95.6 against 85.1
at 1024, 79.4 at 256 and 62.4 at 2048; 500 dev questions, `benchmarks/token_budget_sweep.py --workers 2`, BENCHMARKS.md):
larger batches fall out of the L2 cache and carry more padding. A GPU wants far larger batches: raise
`max_batch_tokens` (16384 or more) and `max_batch_windows` there.
"""

from __future__ import annotations

from dataclasses import dataclass, field

from spanqa.engine.core.decoder import DecodeOptions
from spanqa.engine.core.windows import WindowOptions

DEVICES = ("auto", "cpu", "cuda", "tensorrt")
BACKENDS = ("auto", "onnx", "openvino", "torch")
TORCH_DTYPES = ("auto", "fp32", "fp16", "bf16")
GRAPH_OPTIMIZATIONS = ("disable", "basic", "extended", "all")


@dataclass(frozen=True)
class SessionOptions:
    """ONNX Runtime session settings (ignored by the torch backend)."""

    # Per worker (EngineOptions.workers). 0 = let onnxruntime choose (one per physical core) for one worker, the
    # usable cores shared out among several.
    intra_op_threads: int = 0
    inter_op_threads: int = 1
    graph_optimization: str = "all"  # disable | basic | extended | all
    cpu_memory_arena: bool = True
    memory_pattern: bool = True
    # onnxruntime's idle intra-op threads busy-wait for the next operator unless told not to. Off here: beside the
    # engine's tokenizer thread, and on machines shared with other work, spinning threads burn the cores that the
    # work needs (measured: 2 threads without spinning did 33% more examples per CPU-second on the shared 2-core
    # machine).
    allow_spinning: bool = False
    # With several workers (EngineOptions.workers), one session run from every worker thread instead of one session
    # each: onnxruntime's `run` is thread-safe, and one session holds the weights once instead of once per worker.
    # Off by default: in benchmarks/results/session_split.json it was no faster (2 x 1 threads: 1.07x over 1 x 2
    # median, 0.94-1.53 round to round, against 1.07-1.14 for a session each).
    share_session: bool = False
    # On the CPU, ONNX Runtime's own SkipLayerNormFusion is switched off, so that the Add + LayerNormalization that
    # qa-export leaves unfused in CPU graphs stay so: on this project's machine, ONNX Runtime 1.32's CPU
    # SkipLayerNormalization kernel took 4.7-5.5x as long as the two ops it replaces, and the static int8 model's time
    # fell by 12% without it (benchmarks/op_profile.py, BENCHMARKS.md "Where int8 time goes"). Graphs fused at export
    # keep their fused nodes.
    cpu_skip_layer_norm_fusion: bool = False

    def __post_init__(self) -> None:
        if self.intra_op_threads < 0 or self.inter_op_threads < 0:
            raise ValueError(
                f"intra_op_threads and inter_op_threads must be >= 0, got {self.intra_op_threads}, {self.inter_op_threads}"
            )
        if self.graph_optimization not in GRAPH_OPTIMIZATIONS:
            raise ValueError(f"graph_optimization must be one of {GRAPH_OPTIMIZATIONS}, got {self.graph_optimization!r}")


@dataclass(frozen=True)
class EngineOptions:
    device: str = "auto"  # auto | cpu | cuda | tensorrt
    backend: str = "auto"  # auto | onnx | openvino | torch (auto: onnx for a qa-export folder, torch for a checkpoint)
    torch_dtype: str = "auto"  # torch backend: fp32 | fp16 | bf16 (autocast); auto = fp16 on CUDA, fp32 on CPU
    # A batch holds at most this many padded tokens (rows x its longest row) and this many windows.
    max_batch_tokens: int = 512
    max_batch_windows: int = 64
    # Records are taken in consecutive groups of this many; windows are sorted by length only inside a group,
    # so a group is the unit of reproducibility (see QAEngine.answer_many).
    lookahead: int = 256
    prefetch: int = 2  # groups tokenized ahead of the one being answered
    # ONNX Runtime sessions run at once, each on its own batch (see `worker_split`); 0 = auto. A batch's answers do
    # not depend on the worker that ran it, so this is not an answer setting. The torch backend runs one.
    workers: int = 0
    window: WindowOptions | None = None  # None: the manifest's window defaults (WindowOptions() for checkpoints)
    decode: DecodeOptions = field(default_factory=DecodeOptions)
    session: SessionOptions = field(default_factory=SessionOptions)
    allow_pickle: bool = False  # torch backend: refuse pickled *.bin / *.pt weights unless True

    def __post_init__(self) -> None:
        if self.device not in DEVICES:
            raise ValueError(f"device must be one of {DEVICES}, got {self.device!r}")
        if self.backend not in BACKENDS:
            raise ValueError(f"backend must be one of {BACKENDS}, got {self.backend!r}")
        if self.torch_dtype not in TORCH_DTYPES:
            raise ValueError(f"torch_dtype must be one of {TORCH_DTYPES}, got {self.torch_dtype!r}")
        for name in ("max_batch_tokens", "max_batch_windows", "lookahead", "prefetch"):
            if getattr(self, name) < 1:
                raise ValueError(f"{name} must be >= 1, got {getattr(self, name)}")
        if self.workers < 0:
            raise ValueError(f"workers must be >= 0 (0: auto), got {self.workers}")


# Threads per worker when neither workers nor threads are chosen, on the CPU: one session per core, one thread each.
# Chosen by `python -m spanqa.benchmarks.session_split --limit 512 --rounds 5` (benchmarks/results/session_split.json,
# shipped int8 model, 512 SQuAD dev questions, end to end): on the 2-core machine, shared with other work (load
# average 9-12), 2 workers x 1 thread answered 1.08x as fast as 1 x 2 threads (median; 1.07-1.14 in each of the 5
# rounds), with the same answers; one session shared by the 2 threads: 1.07x median but 0.94-1.53 round to round.
# Not measured beyond 2 cores: each session's threads meet at every operator, two sessions never wait for each other.
AUTO_THREADS_PER_WORKER = 1


def worker_split(workers: int, threads: int, cores: int, on_gpu: bool = False) -> tuple[int, int]:
    """(workers, intra-op threads per worker) for `EngineOptions.workers` and `SessionOptions.intra_op_threads` on a
    machine with `cores` usable cores; threads 0 leaves the choice to onnxruntime.

    1. Workers and threads chosen: as given (workers x threads may exceed the cores; that is the caller's call).
    2. Workers chosen, threads not: one worker runs onnxruntime's default; several share the cores out, at least
       one thread each.
    3. Threads chosen, workers not: one worker with those threads (qa-answer --threads N, and Ray's actors, which
       set their threads to the CPUs they hold, keep their single session).
    4. Neither, on the CPU: one worker per AUTO_THREADS_PER_WORKER cores (at least one), each with that many threads.
    5. Neither, on a GPU: one worker with onnxruntime's default threads (the split was measured on CPUs only).
    """
    if workers < 0 or threads < 0 or cores < 1:
        raise ValueError(f"workers and threads must be >= 0 and cores >= 1, got {workers}, {threads}, {cores}")
    if workers:
        if threads or workers == 1:
            return workers, threads
        return workers, max(1, cores // workers)
    if threads or on_gpu:
        return 1, threads
    count = max(1, cores // AUTO_THREADS_PER_WORKER)
    return count, 0 if count == 1 else AUTO_THREADS_PER_WORKER
