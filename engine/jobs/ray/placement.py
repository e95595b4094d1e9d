"""Where a Ray run's engine actors go: the cluster to join, how many actors, on CPUs or GPUs, with how many threads."""

from __future__ import annotations

import logging
from dataclasses import dataclass, replace
from typing import Any

from spanqa.engine.runtime.options import EngineOptions


@dataclass(frozen=True)
class RayOptions:
    address: str | None = None  # None: the Ray already initialised in this process, else a new local one; "auto": the
    # cluster this machine belongs to; "ray://HOST:10001": a remote cluster through Ray Client
    actors: int | None = None  # None: one per cluster GPU when the engine runs on GPUs, else CPUs // cpus_per_actor
    cpus_per_actor: int = 1  # CPU cores (and ONNX Runtime threads, unless the engine options set them) per actor
    gpus_per_actor: float = 1.0  # when the actors run on GPUs
    shared_input: bool = False  # actors read their lines from the input files themselves (plain files that every
    # node mounts at the same path): only byte ranges travel. False: the driver sends the lines through Ray.
    local_cpus: int | None = None  # CPUs of a local Ray started here (None: all of this machine's)
    # A dead actor (lost node, out-of-memory kill) is restarted and its group retried this many times; a group that
    # keeps killing actors then stops the run instead of retrying forever (Ray Data's default).
    max_retries: int = 3

    def __post_init__(self) -> None:
        if self.actors is not None and self.actors < 1:
            raise ValueError(f"actors must be >= 1, got {self.actors}")
        if self.cpus_per_actor < 1:
            raise ValueError(f"cpus_per_actor must be >= 1, got {self.cpus_per_actor}")
        if self.gpus_per_actor <= 0:
            raise ValueError(f"gpus_per_actor must be > 0, got {self.gpus_per_actor}")
        if self.max_retries < 0:
            raise ValueError(f"max_retries must be >= 0, got {self.max_retries}")


def connect(options: RayOptions) -> bool:
    """Join or start Ray; True when this call started it (and so stops it afterwards)."""
    import ray

    if ray.is_initialized():
        return False
    settings: dict[str, Any] = {"include_dashboard": False, "logging_level": logging.ERROR, "log_to_driver": False}
    if options.address is None:
        ray.init(num_cpus=options.local_cpus, **settings)
    else:
        ray.init(address=options.address, **settings)
    return True


def actor_count(resources: dict[str, float], engine: EngineOptions, options: RayOptions) -> tuple[int, bool]:
    gpus = resources.get("GPU", 0.0)
    on_gpus = engine.device != "cpu" and gpus > 0
    if engine.device in ("cuda", "tensorrt") and not gpus:
        from spanqa.engine.runtime.backends.base import DeviceError

        raise DeviceError(f"device {engine.device!r}: the Ray cluster has no GPUs")
    if options.actors is not None:
        return options.actors, on_gpus
    if on_gpus:
        return max(1, int(gpus // options.gpus_per_actor)), True
    return max(1, int(resources.get("CPU", 1.0) // options.cpus_per_actor)), False


def actor_engine_options(engine: EngineOptions, options: RayOptions, on_gpus: bool) -> EngineOptions:
    """One ONNX Runtime thread per CPU the actor holds, unless the caller chose: by default onnxruntime takes every
    core of the node, and N actors on one node would each do so."""
    if on_gpus or engine.session.intra_op_threads:
        return engine
    return replace(engine, session=replace(engine.session, intra_op_threads=options.cpus_per_actor))
