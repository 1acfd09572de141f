"""Shared test helpers: paths of the reference fixtures in ../shared, names the test modules share."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

SHARED = Path(os.environ.get("ICM_SHARED") or Path(__file__).resolve().parents[2] / "shared")
"""The reference material: ../shared beside the checkout, or ``$ICM_SHARED``."""
IN_CI = os.environ.get("CI", "").lower() in ("1", "true", "yes")


MODEL_NAME = "tiny.safetensors"
"""The random IconMatting checkpoint the node tests load from models/icon_matting."""


def shared_path(env: str, relative: str) -> Path:
    """A fixture file or folder: from the environment variable ``env`` when set, else under ../shared."""
    return Path(os.environ.get(env) or SHARED / relative)


def unavailable(reason: str) -> None:
    """Skips the test, or fails it in CI (``CI`` set), where every test must run."""
    if IN_CI:
        pytest.fail(f"CI is set but {reason}")
    pytest.skip(reason)


def require(path: Path) -> Path:
    """``path``, or skip the test when it is not there (fail it in CI: the parity fixtures must be checked there)."""
    if not path.exists():
        unavailable(f"{path} is not available (check out the reference fixtures in ../shared, or set the variable)")
    return path
