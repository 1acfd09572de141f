"""Video: one marked frame, a matte for every frame, in chunks of bounded memory."""

from __future__ import annotations

import torch

from ..icm_model.pipeline import HEAD_STEPS, batch_slices, reference_steps
from .comfy_backbone import ComfyBackbone
from .common import ALPHA_CONVENTION, CATEGORY, NodeProgress, as_mask_batch, channels_first, prompt_embedding
from .matting_nodes import alpha_for_chunk, guidance_for_chunk, guidance_steps
from .reference_nodes import (
    ENSEMBLE_INPUT,
    ICON_MATTING_MODEL_INPUT,
    PROMPT_INPUTS,
    PROMPT_TYPE_INPUT,
    SD_INPUTS,
    SEED_INPUT,
    TIMESTEP_INPUT,
    encode_reference_context,
)


def reference_frame_and_mask(frames, reference_mask, reference_frame: int, reference_image=None):
    """The reference IMAGE and MASK: a separate reference if given, else the marked frame of the video."""
    channels_first(frames, "frames")  # an IMAGE batch of at least one frame (a view: checks only)
    masks = as_mask_batch(reference_mask, "reference_mask")
    if reference_image is not None:
        return reference_image, masks
    if masks.shape[-2:] != frames.shape[1:3]:
        raise ValueError(
            f"reference_mask is {masks.shape[-1]}x{masks.shape[-2]} but frames are {frames.shape[2]}x{frames.shape[1]} "
            "(width x height): paint the mask on a frame of this video (or resize it to the frames)"
        )
    if not 0 <= reference_frame < frames.shape[0]:
        raise ValueError(f"reference_frame {reference_frame} is not a frame of this video (0..{frames.shape[0] - 1})")
    if masks.shape[0] == frames.shape[0]:
        masks = masks[reference_frame : reference_frame + 1]
    elif masks.shape[0] != 1:
        raise ValueError(
            f"reference_mask has {masks.shape[0]} masks: give one mask (of the reference frame) or one "
            f"per frame ({frames.shape[0]})"
        )
    return frames[reference_frame : reference_frame + 1], masks


class VideoInContextMatte:
    """Mattes every frame of a video from one marked frame."""

    DESCRIPTION = (
        "Marks the object once (a mask on one frame, or a separate reference image) and mattes every frame. Frames "
        "go through the U-Net and the matting head a chunk at a time, so memory does not grow with the video's "
        "length; every frame uses the same noise draws, which keeps the mattes steady over time. " + ALPHA_CONVENTION
    )
    CATEGORY = CATEGORY
    RETURN_TYPES = ("MASK",)
    RETURN_NAMES = ("alpha",)
    OUTPUT_TOOLTIPS = (ALPHA_CONVENTION + " One per frame.",)
    FUNCTION = "matte"
    SEARCH_ALIASES = [
        "rotoscope", "video matting", "remove background", "background removal", "cutout", "alpha matte", "matting",
    ]  # fmt: skip

    @classmethod
    def INPUT_TYPES(cls):
        return {
            "required": {
                "iconmatting_model": ICON_MATTING_MODEL_INPUT,
                **SD_INPUTS,
                "frames": ("IMAGE", {"tooltip": "The video frames (an IMAGE batch)."}),
                "reference_mask": (
                    "MASK",
                    {
                        "tooltip": "1 = the object on the reference frame (one mask, or one per "
                        "frame of which the reference frame's is used)."
                    },
                ),
                "reference_frame": (
                    "INT",
                    {
                        "default": 0,
                        "min": 0,
                        "max": 1_000_000,
                        "tooltip": "Index of the marked frame (ignored with reference_image).",
                    },
                ),
                "prompt_type": PROMPT_TYPE_INPUT,
                "chunk_size": (
                    "INT",
                    {
                        "default": 4,
                        "min": 1,
                        "max": 64,
                        "tooltip": ("Frames processed together. Memory grows with it, not with the video length."),
                    },
                ),
                "timestep": TIMESTEP_INPUT,
                "ensemble_size": ENSEMBLE_INPUT,
                "seed": SEED_INPUT,
            },
            "optional": {
                **PROMPT_INPUTS,
                "reference_image": ("IMAGE", {"tooltip": "A separate reference image (then reference_mask marks it)."}),
            },
        }

    def matte(
        self,
        iconmatting_model,
        model,
        vae,
        frames,
        reference_mask,
        reference_frame,
        prompt_type,
        chunk_size,
        timestep,
        ensemble_size,
        seed,
        clip=None,
        empty_conditioning=None,
        reference_image=None,
    ):
        image, mask = reference_frame_and_mask(frames, reference_mask, reference_frame, reference_image)
        image = channels_first(image, "reference_image" if reference_image is not None else "frames")
        backbone = ComfyBackbone(model, vae, prompt_embedding(clip, empty_conditioning))
        chunks = batch_slices(frames.shape[0], chunk_size)
        progress = NodeProgress(
            reference_steps(backbone, image.shape[0], ensemble_size)
            + guidance_steps(backbone, chunks, ensemble_size)
            + len(chunks) * HEAD_STEPS
        )  # the reference, then every frame: full only after the last frame's matte
        reference = encode_reference_context(
            backbone, iconmatting_model, image, mask, prompt_type, timestep, ensemble_size, seed, progress
        )
        alphas = []
        for chunk_slice in chunks:
            chunk = channels_first(frames[chunk_slice], "frames")
            guidance = guidance_for_chunk(reference, chunk, ensemble_size, seed, progress)
            alphas.append(alpha_for_chunk(iconmatting_model, guidance, chunk))
            progress(HEAD_STEPS)
            del guidance
        return {"ui": {"text": [reference.summary()]}, "result": (torch.cat(alphas),)}
