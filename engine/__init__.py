"""spanqa's engine: data, windows, span decoding, metrics, and `QAEngine` for answering questions.

Importing the package is cheap: the names below load their modules (and numpy, onnxruntime or torch) on first use.
"""

from __future__ import annotations

import importlib
from typing import TYPE_CHECKING, Any

_EXPORTS = {
    "QAEngine": ".engine",
    "default_model_dir": ".engine",
    "EngineOptions": ".options",
    "SessionOptions": ".options",
    "Answer": ".results",
    "EngineStats": ".results",
    "DeviceError": ".backends",
    "ModelFolderError": ".model_files",
    "WindowOptions": ".features",
    "DecodeOptions": ".decoder",
    "NBestSpan": ".decoder",
    "QAExample": ".data",
    "DataFormatError": ".data",
    "load_examples": ".data",
}

__all__ = sorted(_EXPORTS)

if TYPE_CHECKING:
    from .backends import DeviceError
    from .data import DataFormatError, QAExample, load_examples
    from .decoder import DecodeOptions, NBestSpan
    from .engine import QAEngine, default_model_dir
    from .features import WindowOptions
    from .model_files import ModelFolderError
    from .options import EngineOptions, SessionOptions
    from .results import Answer, EngineStats


def __getattr__(name: str) -> Any:
    module = _EXPORTS.get(name)
    if module is None:
        raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
    value = getattr(importlib.import_module(module, __name__), name)
    globals()[name] = value  # later lookups skip this function
    return value


def __dir__() -> list[str]:
    return sorted(set(globals()) | set(_EXPORTS))
