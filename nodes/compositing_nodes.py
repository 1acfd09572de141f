"""Foreground colours for the cut-outs, and compositing a matted foreground over a new background."""

from __future__ import annotations

import comfy.model_management
import torch

from ..icm_model.compositing import (
    BACKGROUND_FITS,
    FOREGROUND_METHODS,
    UPSAMPLING_METHODS,
    composite_over,
    cut_out,
    parse_colour,
)
from .common import ALPHA_CONVENTION, CATEGORY, channels_first

FOREGROUND_METHOD_INPUT = (
    list(FOREGROUND_METHODS),
    {
        "default": "multilevel",
        "tooltip": "Colour of the foreground and rgba outputs in soft edges (hair, fur, motion blur). multilevel: the "
        "object's own colour estimated without the old background (Germer et al. 2020, as pymatting), no fringe on a "
        "new background. blur_fusion: a faster, smoother estimate (Forte & Pitie 2021). multiply: the image's own "
        "colour, as before (the old background shows in soft edges).",
    },
)
UPSAMPLING_INPUT = (
    list(UPSAMPLING_METHODS),
    {
        "default": "guided",
        "tooltip": "How alpha goes from the 768x768 working canvas to targets larger than it. guided: edges follow the "
        "full-resolution target (fast guided filter), sharp on 2K-4K images. bilinear: plain stretching (soft edges).",
    },
)


def cutouts(
    images: torch.Tensor, alpha: torch.Tensor, method: str = "multiply", image_name: str = "image"
) -> tuple[torch.Tensor, torch.Tensor]:
    """IMAGE ``[B, H, W, 3]`` and alpha MASK ``[B or 1, H, W]`` -> foreground on black ``[B, H, W, 3]``
    (premultiplied: colour x alpha) and straight RGBA ``[B, H, W, 4]``, the foreground colour by ``method`` (see
    :data:`FOREGROUND_METHODS`) estimated on ComfyUI's torch device; Cancel is honoured within each image."""
    foreground, rgba = cut_out(
        channels_first(images, image_name),
        alpha,
        method,
        comfy.model_management.get_torch_device(),
        comfy.model_management.throw_exception_if_processing_interrupted,
        (image_name, "alpha"),
    )
    return foreground.movedim(1, -1).to(images.dtype), rgba.movedim(1, -1).to(images.dtype)


class IconMattingComposite:
    """The matted foreground over a new background image or a plain colour."""

    DESCRIPTION = (
        "Places the foreground over a new background: an IMAGE of any size (cover, stretch or tile) or, when none is "
        "wired, a plain colour. Wire Matting Head's rgba (straight alpha, the default) - or its foreground with "
        "foreground_alpha 'premultiplied' and the alpha. Batches broadcast: one background for every image, or one "
        "per image."
    )
    CATEGORY = CATEGORY
    RETURN_TYPES = ("IMAGE",)
    RETURN_NAMES = ("image",)
    OUTPUT_TOOLTIPS = ("The composite, at the foreground's size, opaque RGB.",)
    FUNCTION = "composite"
    SEARCH_ALIASES = ["composite", "replace background", "new background", "background swap", "alpha blend"]

    @classmethod
    def INPUT_TYPES(cls):
        return {
            "required": {
                "foreground": (
                    "IMAGE",
                    {
                        "tooltip": "The cut-out: RGBA (e.g. Matting Head's rgba; its 4th channel is alpha unless "
                        "alpha is wired) or RGB with the alpha input."
                    },
                ),
                "foreground_alpha": (
                    ["straight", "premultiplied"],
                    {
                        "default": "straight",
                        "tooltip": "How the foreground's colours are stored. straight: the object's colour (rgba "
                        "outputs, SaveImage's PNGs). premultiplied: colour x alpha, a cut-out on black (the "
                        "foreground outputs).",
                    },
                ),
                "background_fit": (
                    list(BACKGROUND_FITS),
                    {
                        "default": "cover",
                        "tooltip": "How a background image meets the foreground's size. cover: scaled to fill, "
                        "aspect kept, overhang cropped evenly. stretch: resized to the size. tile: repeated at its "
                        "own size.",
                    },
                ),
                "background_color": (
                    "STRING",
                    {
                        "default": "#00ff00",
                        "tooltip": "The plain background when no background image is wired: #RRGGBB or r, g, b "
                        "(0-255).",
                    },
                ),
            },
            "optional": {
                "alpha": ("MASK", {"tooltip": ALPHA_CONVENTION + " Wins over an RGBA foreground's 4th channel."}),
                "background": ("IMAGE", {"tooltip": "The new background, any size; one image or one per foreground."}),
            },
        }

    def composite(self, foreground, foreground_alpha, background_fit, background_color, alpha=None, background=None):
        if foreground.ndim != 4 or foreground.shape[-1] not in (3, 4):
            raise ValueError(
                f"foreground must be an IMAGE [batch, height, width, 3 or 4], got {list(foreground.shape)}"
            )
        new = (
            parse_colour(background_color, "background_color")
            if background is None
            else channels_first(background, "background")
        )
        result = composite_over(
            foreground.movedim(-1, 1).float(), new, alpha, background_fit, foreground_alpha == "premultiplied"
        )
        return (result.movedim(1, -1).to(foreground.dtype),)
