"""The Comfy Registry's fields in pyproject.toml: complete and well-formed (CI also runs `comfy node validate`, which
only warns about a malformed field: .ci/run fails on its warnings)."""

from __future__ import annotations

import re
from pathlib import Path

import tomllib
from PIL import Image

PACK_ROOT = Path(__file__).resolve().parents[1]
PYPROJECT = tomllib.loads((PACK_ROOT / "pyproject.toml").read_text())
VERSION_SPEC = r"^(?:(==|>=|<=|!=|~=|>|<)\s*)?\d+\.\d+\.\d+$"
"""One part of ``requires-comfyui`` as comfy-cli's validate_version accepts it (major.minor.patch)."""


def test_tool_comfy_is_complete():
    comfy = PYPROJECT["tool"]["comfy"]
    assert re.fullmatch(r"[a-z0-9][a-z0-9-]*", comfy["PublisherId"])
    assert comfy["DisplayName"]
    parts = [part.strip() for part in comfy["requires-comfyui"].split(",")]
    assert parts and all(re.match(VERSION_SPEC, part) for part in parts), comfy["requires-comfyui"]
    assert "0.3.64" in comfy["requires-comfyui"]  # the oldest version the real-ComfyUI tests run


def test_icon_is_a_small_square_png_in_the_repository():
    with Image.open(PACK_ROOT / PYPROJECT["tool"]["comfy"]["Icon"]) as icon:
        assert icon.format == "PNG" and icon.size[0] == icon.size[1] <= 400, (icon.format, icon.size)


def test_version_is_a_release_number_the_readme_states():
    version = PYPROJECT["project"]["version"]
    assert re.fullmatch(r"\d+\.\d+\.\d+", version)
    assert f"`{version}`" in (PACK_ROOT / "README.md").read_text()
