"""Placing a matted foreground over a new background: an image (stretched, covered or tiled) or a plain colour."""

from __future__ import annotations

import re

import torch

from ..geometry import resize
from .inputs import alpha_batch, batch_size, broadcast, check_finite, checked_alpha

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


def composite_over(
    foreground: torch.Tensor,
    background: torch.Tensor | tuple[float, float, float],
    alpha: torch.Tensor | None = None,
    fit: str = "cover",
    premultiplied: bool = False,
) -> torch.Tensor:
    """A cut-out over a new background, with the inputs checked and their batches broadcast (one item for all, or one
    per image); errors name the inputs ``foreground``, ``alpha`` and ``background``.

    Args:
        foreground: ``[B, 3 or 4, H, W]`` in [0, 1]; its 4th channel is alpha when ``alpha`` is not given.
        background: an image ``[B or 1, 3, h, w]`` in [0, 1] of any size, fitted by ``fit`` (see
            :data:`BACKGROUND_FITS`), or an RGB colour in [0, 1].
        alpha: ``[H, W]`` or ``[B or 1, H, W]`` in [0, 1] (within :data:`~.inputs.ALPHA_MARGIN`, then clamped).
        premultiplied: whether the foreground's colours are already colour x alpha.

    Returns:
        ``[B, 3, H, W]`` in [0, 1].
    """
    height, width = foreground.shape[-2:]
    check_finite(foreground[:, :3], "foreground")
    if alpha is None:
        if foreground.shape[1] != 4:
            raise ValueError(
                "foreground has no alpha channel: wire the alpha MASK, or an RGBA foreground (Matting Head's rgba)"
            )
        alpha = checked_alpha(foreground[:, 3:].float(), "foreground's alpha channel")
    else:
        alpha = alpha_batch(alpha.to(foreground.device), height, width)
    counts = {"foreground": foreground.shape[0], "alpha": alpha.shape[0]}
    if isinstance(background, torch.Tensor):
        check_finite(background, "background")
        counts["background"] = background.shape[0]
        new = fit_background(background.float().to(foreground.device), height, width, fit)
    else:
        new = torch.tensor(background, device=foreground.device).view(1, 3, 1, 1)
    size = batch_size(**counts)
    rgb = broadcast(foreground[:, :3].float(), size)
    return composite(rgb, broadcast(alpha, size), broadcast(new, size), premultiplied)
