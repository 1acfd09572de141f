"""The example photos the templates name: copied once into ComfyUI's ``input/`` folder at pack import."""

from __future__ import annotations

import logging
import shutil
from pathlib import Path

import folder_paths

EXAMPLE_INPUTS = Path(__file__).resolve().parents[1] / "example_inputs"
PREFIX = "iconmatting_"
"""The copies are ``input/iconmatting_<file>``: top level, because Load Image and Load Video list only the files there
(the frontend of ComfyUI 0.33 marks a file in a subfolder as a missing input, though the run finds it)."""
SUFFIXES = {".jpg", ".png", ".mp4"}


def copy_example_inputs(input_directory: str | None = None) -> list[Path]:
    """Copies every example file absent from ``<input>/`` there (as ``iconmatting_<file>``) and returns the copies; a
    file already there (the user's or an earlier copy) is never replaced. A read-only input folder is logged."""
    target = Path(input_directory or folder_paths.get_input_directory())
    copied = []
    try:
        for source in sorted(EXAMPLE_INPUTS.iterdir()):
            if source.suffix in SUFFIXES and not (target / (PREFIX + source.name)).exists():
                target.mkdir(parents=True, exist_ok=True)
                shutil.copyfile(source, target / (PREFIX + source.name))
                copied.append(target / (PREFIX + source.name))
    except OSError as error:
        logging.warning("IconMatting: could not copy the example inputs into %s (%s); the templates' images are in %s",
                        target, error, EXAMPLE_INPUTS)  # fmt: skip
    return copied
