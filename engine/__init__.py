"""spanqa's engine: data, windows, span decoding, metrics, and `QAEngine` for answering questions.

Importing the package is cheap: the names below load their modules (and numpy, onnxruntime or torch) on first use.
"""

from __future__ import annotations

import importlib
from typing import TYPE_CHECKING, Any

_EXPORTS = {
    "QAEngine": "spanqa.engine.runtime.engine",
    "default_model_dir": "spanqa.engine.runtime.engine",
    "EngineOptions": "spanqa.engine.runtime.options",
    "SessionOptions": "spanqa.engine.runtime.options",
    "Answer": "spanqa.engine.core.answers",
    "EngineStats": "spanqa.engine.runtime.results",
    "DeviceError": "spanqa.engine.runtime.backends.base",
    "ModelFolderError": "spanqa.engine.core.model_folder",
    "WindowOptions": "spanqa.engine.core.windows",
    "DecodeOptions": "spanqa.engine.core.decoder",
    "NBestSpan": "spanqa.engine.core.answers",
    "RankedAnswer": "spanqa.engine.core.answers",
    "QAExample": "spanqa.engine.core.data",
    "DataFormatError": "spanqa.engine.core.data",
    "load_examples": "spanqa.engine.core.data",
}

__all__ = sorted(_EXPORTS)

if TYPE_CHECKING:
    from spanqa.engine.runtime.backends.base import DeviceError
    from spanqa.engine.core.data import DataFormatError, QAExample, load_examples
    from spanqa.engine.core.answers import Answer, NBestSpan, RankedAnswer
    from spanqa.engine.core.decoder import DecodeOptions
    from spanqa.engine.runtime.engine import QAEngine, default_model_dir
    from spanqa.engine.core.windows import WindowOptions
    from spanqa.engine.core.model_folder import ModelFolderError
    from spanqa.engine.runtime.options import EngineOptions, SessionOptions
    from spanqa.engine.runtime.results import EngineStats


def __getattr__(name: str) -> Any:
    module = _EXPORTS.get(name)
    if module is None:
        raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
    value = getattr(importlib.import_module(module), name)
    globals()[name] = value  # later lookups skip this function
    return value


def __dir__() -> list[str]:
    return sorted(set(globals()) | set(_EXPORTS))
