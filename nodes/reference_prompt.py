"""What flows on an ICON_MATTING_PROMPT wire, how it is encoded, and the data the prompt editor overlays."""

from __future__ import annotations

import hashlib
import os
from dataclasses import dataclass

import folder_paths
import numpy as np
import torch
from PIL import Image

from ..icm_model.geometry import Letterbox
from ..icm_model.pipeline import CORRESPONDENCE_STRIDE, ReferenceContext, encode_prompts, prompt_steps
from ..icm_model.prompts.prompt import ReferencePrompt
from ..icm_model.prompts.tokens import TokenSelection, selection_cells
from .common import NodeProgress

PROMPT_TYPE = "ICON_MATTING_PROMPT"


@dataclass
class MarkedReference:
    """A reference prompt (marks and mask on image 0 of the reference image) and its extension setting."""

    prompt: ReferencePrompt
    extension_top_m: int


def roi_overlay(selections: list[TokenSelection], height: int, width: int, working_size: int) -> list[dict]:
    """The ``iconmatting_roi`` ui entries: per reference, its query cells in pixels of the marked image."""
    box = Letterbox.fit(height, width, working_size)
    grid = working_size // CORRESPONDENCE_STRIDE
    return [
        {"width": width, "height": height, "cells": selection_cells(selection, box, grid)} for selection in selections
    ]


def encode_marked(
    backbone, images: torch.Tensor, prompts: list[ReferencePrompt], working_size: int, *, extension_top_m: int,
    timestep: int, ensemble: int, seed: int, name: str = "marks",
) -> tuple[ReferenceContext, dict]:  # fmt: skip
    """Encodes ``images`` ``[R, 3, H, W]`` under their prompts with a progress bar; returns the context and the
    ``iconmatting_roi`` ui data."""
    progress = NodeProgress(
        prompt_steps(backbone, images, prompts, working_size, extension_top_m=extension_top_m, ensemble=ensemble,
                     name=name)
    )  # fmt: skip
    context, selections = encode_prompts(
        backbone, images, prompts, working_size, extension_top_m=extension_top_m, timestep=timestep,
        ensemble=ensemble, seed=seed, on_step=progress, name=name,
    )  # fmt: skip
    return context, {"iconmatting_roi": roi_overlay(selections, images.shape[-2], images.shape[-1], working_size)}


def encode_prompted_reference(
    backbone, images: torch.Tensor, marked: MarkedReference, working_size: int, timestep: int, ensemble: int, seed: int
) -> tuple[ReferenceContext, dict]:
    """Encode Reference Context's path for a ``reference_prompt``: one image ``[1, 3, H, W]`` under its marks."""
    if images.shape[0] != 1:
        raise ValueError(
            f"reference_prompt marks one image but reference_image has {images.shape[0]}: wire the marked image "
            "alone (combine several prompted references with Combine References)"
        )
    if not marked.prompt.has_positive:
        raise ValueError(
            "reference_prompt has no marks on the object: in the Reference Prompt node, click, scribble or box the "
            "object (left click = object, right click = not the object), or wire a mask to it"
        )
    return encode_marked(
        backbone, images, [marked.prompt], working_size, extension_top_m=marked.extension_top_m, timestep=timestep,
        ensemble=ensemble, seed=seed, name="reference_prompt's marks",
    )  # fmt: skip


def temp_png(image: torch.Tensor, prefix: str) -> dict:
    """Saves ``image`` ``[H, W, 3]`` in 0..1 as a PNG in ComfyUI's temp folder (as core PreviewImage does); returns
    the ``{"filename", "subfolder", "type"}`` entry the frontend's ``/view`` reads."""
    pixels = (image[..., :3].detach().float().cpu().clamp(0, 1).numpy() * 255).round().astype(np.uint8)
    filename = f"{prefix}_{hashlib.sha1(pixels.tobytes()).hexdigest()[:16]}.png"
    folder = folder_paths.get_temp_directory()
    os.makedirs(folder, exist_ok=True)
    path = os.path.join(folder, filename)
    if not os.path.exists(path):
        Image.fromarray(pixels).save(path, compress_level=1)
    return {"filename": filename, "subfolder": "", "type": "temp"}
