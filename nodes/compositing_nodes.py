"""Foreground colours for the cut-outs, and compositing a matted foreground over a new background."""

from __future__ import annotations

import comfy.model_management
import torch

from ..icm_model.compositing import (
    BACKGROUND_FITS,
    FOREGROUND_METHODS,
    UPSAMPLING_METHODS,
    composite,
    estimate_foreground,
    fit_background,
    parse_colour,
)
from .common import ALPHA_CONVENTION, CATEGORY

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
PIXELS_PER_CALL = 1 << 24
"""Most pixels (a 4096^2 image) handed to foreground estimation at once: bounds its memory for large batches."""


def cutouts(images: torch.Tensor, alpha: torch.Tensor, method: str = "multiply") -> tuple[torch.Tensor, torch.Tensor]:
    """IMAGE ``[B, H, W, 3]`` and alpha ``[B, H, W]`` -> foreground on black ``[B, H, W, 3]`` (premultiplied: colour x
    alpha) and straight RGBA ``[B, H, W, 4]``, with the foreground colour of ``method`` (see
    :data:`FOREGROUND_METHODS`), estimated on ComfyUI's torch device a few images at a time."""
    alpha = alpha.to(images.device).unsqueeze(-1)
    rgb = images[..., :3]
    if method != "multiply":
        device = comfy.model_management.get_torch_device()
        step = max(1, PIXELS_PER_CALL // (rgb.shape[1] * rgb.shape[2]))
        colours = []
        for start in range(0, rgb.shape[0], step):
            comfy.model_management.throw_exception_if_processing_interrupted()
            chunk = rgb[start : start + step].movedim(-1, 1).to(device, torch.float32)
            chunk_alpha = alpha[start : start + step].movedim(-1, 1).to(device, torch.float32)
            colours.append(estimate_foreground(chunk, chunk_alpha, method).movedim(1, -1).to(images.device))
        rgb = torch.cat(colours).to(images.dtype)
    return rgb * alpha, torch.cat([rgb, alpha], dim=-1)


def _batch_size(**counts: int) -> int:
    """The batch of a composite: every input has one image or the same number N."""
    size = max(counts.values())
    if any(count not in (1, size) for count in counts.values()):
        listed = ", ".join(f"{name} {count}" for name, count in counts.items())
        raise ValueError(f"batch sizes do not match ({listed}): give each one image, or all the same number")
    return size


def _take(x: torch.Tensor, size: int) -> torch.Tensor:
    return x.expand(size, *x.shape[1:]) if x.shape[0] == 1 else x


def _alpha_of(foreground: torch.Tensor, alpha: torch.Tensor | None) -> torch.Tensor:
    """The composite's alpha ``[B, H, W]``: the MASK input if wired, else the RGBA foreground's 4th channel."""
    if alpha is None:
        if foreground.shape[-1] != 4:
            raise ValueError(
                "foreground has no alpha channel: wire the alpha MASK, or an RGBA foreground (Matting Head's rgba)"
            )
        return foreground[..., 3]
    if alpha.ndim == 2:
        alpha = alpha.unsqueeze(0)
    if alpha.ndim != 3 or tuple(alpha.shape[1:]) != tuple(foreground.shape[1:3]):
        raise ValueError(
            f"alpha {list(alpha.shape)} does not fit the foreground ({foreground.shape[2]}x{foreground.shape[1]}): "
            "wire the alpha of these images (a MASK [batch, height, width] of the same size)"
        )
    return alpha


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
        height, width = foreground.shape[1:3]
        alpha = _alpha_of(foreground, alpha)
        rgb = foreground[..., :3].movedim(-1, 1).float()
        counts = {"foreground": foreground.shape[0], "alpha": alpha.shape[0]}
        if background is None:
            new = torch.tensor(parse_colour(background_color, "background_color"), device=rgb.device).view(1, 3, 1, 1)
        else:
            if background.ndim != 4 or background.shape[-1] not in (3, 4):
                raise ValueError(f"background must be an IMAGE [batch, height, width, 3], got {list(background.shape)}")
            counts["background"] = background.shape[0]
            new = fit_background(
                background[..., :3].movedim(-1, 1).float().to(rgb.device), height, width, background_fit
            )
        size = _batch_size(**counts)
        alpha = _take(alpha.unsqueeze(1).float().to(rgb.device), size)
        result = composite(_take(rgb, size), alpha, _take(new, size), premultiplied=foreground_alpha == "premultiplied")
        return (result.movedim(1, -1).to(foreground.dtype),)
