"""Helpers the tests share that are not fixtures: reference windows, tiny checkpoints, the stalling-writer hook."""

from pathlib import Path

REPO_ROOT = Path(__file__).resolve().parents[2]
