"""Shared test helpers: paths of the reference fixtures in ../shared, names the test modules share."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

SHARED = Path(__file__).resolve().parents[2] / "shared"


MODEL_NAME = "tiny.safetensors"
"""The random IconMatting checkpoint the node tests load from models/icon_matting."""


def shared_path(env: str, relative: str) -> Path:
    """A fixture file or folder: from the environment variable ``env`` when set, else under ../shared."""
    return Path(os.environ.get(env) or SHARED / relative)


IN_CI = os.environ.get("CI", "").lower() in ("1", "true", "yes")


def require(path: Path) -> Path:
    """``path``, or skip the test when it is not there (fail it in CI, where every test must run)."""
    if not path.exists():
        if IN_CI:
            pytest.fail(f"{path} is not available (CI is set: fixture tests must run)")
        pytest.skip(f"{path} is not available")
    return path
