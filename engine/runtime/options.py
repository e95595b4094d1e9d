"""Options of the answering engine: where it runs, how it batches, and the ONNX Runtime session knobs.

The batching defaults suit CPUs: on the project's 2-core machine, with the fine-tuned MiniLM-L6 in int8, 512 to 1024
padded tokens per batch computed the most examples per CPU-second (about 20% more than 4096, whose batches fall out
of the 2 MiB L2 cache and carry 7% padding instead of 1.5%). A GPU wants far larger batches: raise
`max_batch_tokens` (16384 or more) and `max_batch_windows` there.
"""

from __future__ import annotations

from dataclasses import dataclass, field

from spanqa.engine.core.decoder import DecodeOptions
from spanqa.engine.core.windows import WindowOptions

DEVICES = ("auto", "cpu", "cuda", "tensorrt")
BACKENDS = ("auto", "onnx", "torch")
TORCH_DTYPES = ("auto", "fp32", "fp16", "bf16")
GRAPH_OPTIMIZATIONS = ("disable", "basic", "extended", "all")


@dataclass(frozen=True)
class SessionOptions:
    """ONNX Runtime session settings (ignored by the torch backend)."""

    intra_op_threads: int = 0  # 0 = let onnxruntime choose (one per physical core)
    inter_op_threads: int = 1
    graph_optimization: str = "all"  # disable | basic | extended | all
    cpu_memory_arena: bool = True
    memory_pattern: bool = True
    # onnxruntime's idle intra-op threads busy-wait for the next operator unless told not to. Off here: beside the
    # engine's tokenizer thread, and on machines shared with other work, spinning threads burn the cores that the
    # work needs (measured: 2 threads without spinning did 33% more examples per CPU-second on the shared 2-core
    # machine).
    allow_spinning: bool = False

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
    backend: str = "auto"  # auto | onnx | torch (auto: onnx for a qa-export folder, torch for a checkpoint)
    torch_dtype: str = "auto"  # torch backend: fp32 | fp16 | bf16 (autocast); auto = fp16 on CUDA, fp32 on CPU
    # A batch holds at most this many padded tokens (rows x its longest row) and this many windows.
    max_batch_tokens: int = 1024
    max_batch_windows: int = 64
    # Records are taken in consecutive groups of this many; windows are sorted by length only inside a group,
    # so a group is the unit of reproducibility (see QAEngine.answer_many).
    lookahead: int = 256
    prefetch: int = 2  # groups tokenized ahead of the one being answered
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
