"""Fine-tuning the matting head inside ComfyUI on targets and their good mattes."""

from __future__ import annotations

import dataclasses
import os
import re

import comfy.model_management
import folder_paths

from ..icm_model.decoder.checkpoint import SAFETENSORS_SUFFIX, save_decoder
from ..icm_model.training.finetune import fine_tune, fine_tune_progress
from ..icm_model.training.recipe import RECIPES, recipe_by_name
from .common import CATEGORY, NodeProgress, as_mask_batch, channels_first
from .model_nodes import MODEL_FOLDER, MODEL_TYPE, IconMattingModel
from .reference_nodes import REFERENCE_TYPE, SEED_INPUT, Reference

SAVE_NAME = re.compile(r"^[A-Za-z0-9][A-Za-z0-9 ._-]*$")


def checkpoint_path(save_name: str) -> str:
    """Where ``save_name`` is written in models/icon_matting (``.safetensors`` added).

    Raises:
        ValueError: a name with path separators or odd characters, or a file that exists already.
    """
    name = save_name.strip().removesuffix(SAFETENSORS_SUFFIX)
    if not SAVE_NAME.match(name):
        raise ValueError(
            f"save_name {save_name!r}: use letters, digits, spaces, '.', '_' and '-' only (no folders), or leave it "
            "empty to keep the fine-tuned model for this run only"
        )
    path = os.path.join(folder_paths.get_folder_paths(MODEL_FOLDER)[0], name + SAFETENSORS_SUFFIX)
    if os.path.exists(path):
        raise ValueError(f"save_name: models/{MODEL_FOLDER}/{name}{SAFETENSORS_SUFFIX} exists; choose another name")
    return path


class IconMattingFineTune:
    """Fine-tunes a copy of the matting head on a few targets and their good mattes against a reference context."""

    DESCRIPTION = (
        "Trains a copy of the IconMatting head (the 50 tensors of the checkpoint; never the SD model) for a number of "
        "steps on target images and their good mattes (e.g. Matting Head's alpha after Correct Target rounds, or "
        "painted masks) against the reference context. Outputs the fine-tuned model and the reference bound to it: "
        "wire that reference into In-Context Similarity and the model into Matting Head to rerun. One step costs about "
        "one In-Context Similarity pass over all targets plus the head's backward pass."
    )
    CATEGORY = CATEGORY
    RETURN_TYPES = (MODEL_TYPE, REFERENCE_TYPE)
    RETURN_NAMES = ("iconmatting_model", "reference")
    OUTPUT_TOOLTIPS = (
        "The fine-tuned IconMatting model, for Matting Head (and Encode Reference Context).",
        "The same reference context, bound to the fine-tuned model: wire it into In-Context Similarity.",
    )
    FUNCTION = "fine_tune"
    SEARCH_ALIASES = ["train", "fine-tune", "finetune", "adapt matting", "learn from corrections"]

    @classmethod
    def INPUT_TYPES(cls):
        return {
            "required": {
                "reference": (REFERENCE_TYPE, {"tooltip": "From Encode Reference Context (its model is the start)."}),
                "target_image": ("IMAGE", {"tooltip": "The targets to learn from; any size (one size per batch)."}),
                "target_alpha": ("MASK", {"tooltip": "A good matte of each target (1 = object), at its size."}),
                "steps": ("INT", {"default": 100, "min": 1, "max": 100000, "tooltip": "Optimiser steps."}),
                "learning_rate": (
                    "FLOAT",
                    {
                        "default": 1e-4,
                        "min": 1e-7,
                        "max": 1e-2,
                        "step": 1e-5,
                        "round": False,
                        "tooltip": "Adam's learning rate (the paper trains from scratch at 4e-4).",
                    },
                ),  # fmt: skip
                "recipe": (
                    sorted(RECIPES),
                    {
                        "default": "corrected",
                        "tooltip": "corrected: region means, painted 0/1 masks trained on their "
                        "confident area only, cosine decay. official: the paper's loss with its quirks.",
                    },
                ),  # fmt: skip
                "seed": SEED_INPUT,
            },
            "optional": {
                "save_name": (
                    "STRING",
                    {
                        "default": "",
                        "tooltip": "When set, also saved as models/icon_matting/<save_name>.safetensors "
                        "(Load IconMatting Model reads it). Empty: this run only.",
                    },
                ),  # fmt: skip
            },
        }

    def fine_tune(self, reference: Reference, target_image, target_alpha, steps=100, learning_rate=1e-4,
                  recipe="corrected", seed=0, save_name=""):  # fmt: skip
        images = channels_first(target_image, "target_image")
        alphas = as_mask_batch(target_alpha, "target_alpha")
        if alphas.shape[0] != images.shape[0] or alphas.shape[-2:] != images.shape[-2:]:
            raise ValueError(
                f"target_alpha has {alphas.shape[0]} masks of {list(alphas.shape[-2:])} for {images.shape[0]} "
                f"target images of {list(images.shape[-2:])}: one matte per target, at the target's size"
            )
        path = checkpoint_path(save_name) if save_name.strip() else None
        start = reference.iconmatting_model
        progress = NodeProgress(fine_tune_progress(reference.backbone, images.shape[0], reference.ensemble, steps))
        decoder, losses = fine_tune(
            reference.backbone, start.load(), reference.context.query, images, alphas, steps=steps,
            learning_rate=learning_rate, recipe=recipe_by_name(recipe), ensemble=reference.ensemble,
            timestep=reference.context.timestep, seed=seed, on_step=progress,
        )  # fmt: skip
        decoder = decoder.to(comfy.model_management.unet_offload_device())
        model = IconMattingModel(decoder, f"{start.name} fine-tuned")
        summary = f"{steps} steps on {images.shape[0]} target(s): loss {losses[0]:.4g} -> {losses[-1]:.4g}"
        if path is not None:
            save_decoder(decoder, path)
            summary += f"; saved as {os.path.basename(path)}"
        return {"ui": {"text": [summary]}, "result": (model, dataclasses.replace(reference, iconmatting_model=model))}
