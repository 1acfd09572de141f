"""The example photos the templates name: copied once into ComfyUI's ``input/iconmatting/`` at pack import."""

from __future__ import annotations

import logging
import shutil
from pathlib import Path

import folder_paths

EXAMPLE_INPUTS = Path(__file__).resolve().parents[1] / "example_inputs"
INPUT_SUBFOLDER = "iconmatting"
"""The templates name them ``iconmatting/<file>`` (LoadImage, LoadImageMask and LoadVideo accept a subfolder)."""
SUFFIXES = {".jpg", ".png", ".mp4"}


def copy_example_inputs(input_directory: str | None = None) -> list[Path]:
    """Copies every example file absent from ``<input>/iconmatting/`` there and returns the copies; a file already
    there (the user's or an earlier copy) is never replaced. A read-only input folder is logged, not fatal."""
    target = Path(input_directory or folder_paths.get_input_directory()) / INPUT_SUBFOLDER
    copied = []
    try:
        for source in sorted(EXAMPLE_INPUTS.iterdir()):
            if source.suffix in SUFFIXES and not (target / source.name).exists():
                target.mkdir(parents=True, exist_ok=True)
                shutil.copyfile(source, target / source.name)
                copied.append(target / source.name)
    except OSError as error:
        logging.warning("IconMatting: could not copy the example inputs into %s (%s); the templates' images are in %s",
                        target, error, EXAMPLE_INPUTS)  # fmt: skip
    return copied
