"""The install extras as the code sees them: which modules each pyproject extra brings, and the one-line note that
names the install when they are missing. The core install (answering, scoring, decoding) needs none of them."""

from __future__ import annotations

import importlib.util
from collections.abc import Sequence

# The modules of each extra that its commands import (pyproject.toml's [project.optional-dependencies]).
EXTRA_MODULES: dict[str, tuple[str, ...]] = {
    "train": ("torch", "transformers", "accelerate", "datasets", "pyarrow"),
    "export": ("torch", "transformers", "onnx"),
    "bench": ("torch", "transformers", "matplotlib", "psutil"),
    "torch-backend": ("torch", "transformers"),  # answering with a checkpoint folder; installed by [train]
}
_INSTALLED_BY = {"torch-backend": "train"}


def missing_modules(modules: Sequence[str]) -> list[str]:
    """The modules that cannot be imported, found without importing any (torch alone takes seconds)."""
    missing = []
    for name in modules:
        try:
            found = importlib.util.find_spec(name) is not None
        except (ImportError, ValueError):  # a parent package missing, an import blocker, a half-removed module
            found = False
        if not found:
            missing.append(name)
    return missing


def missing_extra(extra: str, modules: Sequence[str] | None = None) -> str | None:
    """None when `extra`'s modules are installed, else "needs pip install 'spanqa[train]' (torch not installed)"."""
    missing = missing_modules(EXTRA_MODULES[extra] if modules is None else modules)
    if not missing:
        return None
    return f"needs pip install 'spanqa[{_INSTALLED_BY.get(extra, extra)}]' ({', '.join(missing)} not installed)"


__all__ = ["EXTRA_MODULES", "missing_extra", "missing_modules"]
