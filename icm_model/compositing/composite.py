"""Placing a matted foreground over a new background: an image (stretched, covered or tiled) or a plain colour."""

from __future__ import annotations

import re

import torch

from ..geometry import resize

BACKGROUND_FITS = ("cover", "stretch", "tile")
"""How a background image meets the foreground's size: ``cover`` scales it to cover the whole frame, keeping its
aspect ratio, and crops the overhang evenly; ``stretch`` resizes it to the frame; ``tile`` repeats it at its own
size from the top left corner."""

_HEX = re.compile(r"#?([0-9a-fA-F]{3}|[0-9a-fA-F]{6})")


def parse_colour(text: str, name: str = "colour") -> tuple[float, float, float]:
    """``"#RRGGBB"``, ``"#RGB"`` or ``"r, g, b"`` (0-255) -> RGB in [0, 1]."""
    value = text.strip()
    match = _HEX.fullmatch(value)
    if match:
        digits = match.group(1)
        if len(digits) == 3:
            digits = "".join(d * 2 for d in digits)
        return tuple(int(digits[i : i + 2], 16) / 255 for i in (0, 2, 4))
    parts = [p.strip() for p in value.split(",")]
    if len(parts) == 3 and all(p.isdigit() and int(p) <= 255 for p in parts):
        return tuple(int(p) / 255 for p in parts)
    raise ValueError(f"{name} {text!r} is not a colour: write #RRGGBB (e.g. #00ff00) or r, g, b with 0-255 values")


def fit_background(background: torch.Tensor, height: int, width: int, fit: str = "cover") -> torch.Tensor:
    """``[N, C, h, w]`` -> ``[N, C, height, width]`` by one of :data:`BACKGROUND_FITS`."""
    source_height, source_width = background.shape[-2:]
    if (source_height, source_width) == (height, width):
        return background
    if fit == "stretch":
        return resize(background, (height, width))
    if fit == "cover":
        scale = max(height / source_height, width / source_width)
        scaled_height = max(height, round(source_height * scale))
        scaled_width = max(width, round(source_width * scale))
        scaled = resize(background, (scaled_height, scaled_width))
        top, left = (scaled_height - height) // 2, (scaled_width - width) // 2
        return scaled[..., top : top + height, left : left + width]
    if fit == "tile":
        repeats = (-(-height // source_height), -(-width // source_width))
        return background.repeat(1, 1, *repeats)[..., :height, :width]
    raise ValueError(f"unknown background fit {fit!r}: use one of {', '.join(BACKGROUND_FITS)}")


def composite(
    foreground: torch.Tensor, alpha: torch.Tensor, background: torch.Tensor, premultiplied: bool = False
) -> torch.Tensor:
    """``alpha F + (1 - alpha) B`` (straight foreground) or ``F + (1 - alpha) B`` (premultiplied: ``F`` is already
    colour x alpha, e.g. a cut-out on black).

    Args:
        foreground: ``[N, C, H, W]`` in [0, 1].
        alpha: ``[N, 1, H, W]`` in [0, 1].
        background: ``[N, C, H, W]`` in [0, 1] (or anything that broadcasts, e.g. ``[1, C, 1, 1]``).

    Returns:
        ``[N, C, H, W]`` in [0, 1].
    """
    alpha = alpha.clamp(0, 1)
    own = foreground if premultiplied else alpha * foreground
    return (own + (1 - alpha) * background).clamp(0, 1)
