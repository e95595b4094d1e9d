"""What a benchmark ran on: CPU model and the instruction-set flags that decide int8/bf16 speed, cores, GPU, and
library versions. Recorded with every result, since figures mean little without them."""

from __future__ import annotations

import datetime
import os
import platform
from dataclasses import dataclass
from importlib import metadata

# Flags that change which kernels the runtimes pick: VNNI speeds up int8 dot products, BF16/AMX give native bf16.
_INTERESTING_FLAGS = ("avx2", "avx512f", "avx512_vnni", "avx512_bf16", "avx512_fp16", "amx_tile", "amx_int8", "amx_bf16")
_PACKAGES = ("spanqa", "torch", "transformers", "tokenizers", "onnxruntime", "onnxruntime-gpu", "onnx", "optimum",
             "optimum-onnx", "numba", "numpy")  # fmt: skip


@dataclass(frozen=True)
class MachineInfo:
    cpu: str
    logical_cores: int | None
    usable_cores: int  # this process's CPU affinity: what the runtimes may use
    cpu_flags: tuple[str, ...]  # the subset of _INTERESTING_FLAGS present
    gpu: str | None
    memory_gib: float | None
    python: str
    platform: str
    date: str  # UTC, ISO 8601


def _cpuinfo() -> tuple[str, set[str]]:
    model: str | None = None
    flags: set[str] = set()
    try:
        with open("/proc/cpuinfo", encoding="utf-8") as cpuinfo:
            for line in cpuinfo:
                key, _, value = line.partition(":")
                if key.strip() == "model name" and model is None:
                    model = value.strip()
                elif key.strip() == "flags" and not flags:
                    flags = set(value.split())
    except OSError:  # not Linux: no flags to report
        pass
    return model or platform.processor() or "unknown", flags


def _memory_gib() -> float | None:
    try:
        return os.sysconf("SC_PAGE_SIZE") * os.sysconf("SC_PHYS_PAGES") / 2**30
    except (ValueError, OSError, AttributeError):
        return None


def _gpu_name() -> str | None:
    try:
        import torch
    except ImportError:
        return None
    return torch.cuda.get_device_name(0) if torch.cuda.is_available() else None


def describe_machine() -> MachineInfo:
    model, flags = _cpuinfo()
    usable = len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else (os.cpu_count() or 1)
    memory = _memory_gib()
    return MachineInfo(
        cpu=model,
        logical_cores=os.cpu_count(),
        usable_cores=usable,
        cpu_flags=tuple(flag for flag in _INTERESTING_FLAGS if flag in flags),
        gpu=_gpu_name(),
        memory_gib=None if memory is None else round(memory, 1),
        python=platform.python_version(),
        platform=platform.platform(),
        date=datetime.datetime.now(datetime.timezone.utc).isoformat(timespec="seconds"),
    )


def library_versions() -> dict[str, str]:
    """Installed versions of the packages that decide the speed; absent ones are left out."""
    versions = {}
    for package in _PACKAGES:
        try:
            versions[package] = metadata.version(package)
        except metadata.PackageNotFoundError:
            continue
    return versions
