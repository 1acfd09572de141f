"""Foreground colour estimation: the colour of the object itself at every pixel, without the old background.

An image is ``I = alpha F + (1 - alpha) B``. Multiplying ``I`` by alpha keeps the old background's share in every soft
edge (a fringe on the new background); these estimators recover ``F`` so that ``alpha F + (1 - alpha) B'`` is right on
any new background ``B'``. All functions take batches on any device: images ``[N, C, H, W]`` and alpha ``[N, 1, H, W]``
in [0, 1]. ``on_step`` (optional) is called after every sweep or pass, a few dozen times per image: a hook to cancel
(by raising) within one image.
"""

from __future__ import annotations

import math
from collections.abc import Callable

import torch
import torch.nn.functional as F

from .filters import box_filter

FOREGROUND_METHODS = ("multilevel", "blur_fusion", "multiply")
"""``multilevel``: Germer et al. 2020 (pymatting's ``estimate_foreground_ml``); ``blur_fusion``: Forte & Pitie 2021,
faster and smoother; ``multiply``: the image's own colour (no estimation, the old background stays in soft edges)."""


def _nearest(x: torch.Tensor, height: int, width: int) -> torch.Tensor:
    """Nearest-neighbour resize with the source index ``dst * src_size // dst_size`` (as pymatting does)."""
    rows = torch.arange(height, device=x.device) * x.shape[-2] // height
    columns = torch.arange(width, device=x.device) * x.shape[-1] // width
    return x.index_select(-2, rows).index_select(-1, columns)


def _neighbours(x: torch.Tensor) -> list[torch.Tensor]:
    """The left, right, upper and lower neighbour of every pixel of ``[..., H, W]`` (the pixel itself at borders)."""
    padded = F.pad(x, (1, 1, 1, 1), mode="replicate")
    return [padded[..., 1:-1, :-2], padded[..., 1:-1, 2:], padded[..., :-2, 1:-1], padded[..., 2:, 1:-1]]


def _mean_colour(image: torch.Tensor, where: torch.Tensor) -> torch.Tensor:
    """``[N, C, 1, 1]``: mean colour of ``image`` over the pixels ``where`` (0 where there are none)."""
    return (image * where).sum((-2, -1), keepdim=True) / (where.sum((-2, -1), keepdim=True) + 1e-5)


def _solve_level(
    image: torch.Tensor,
    alpha: torch.Tensor,
    foreground: torch.Tensor,
    background: torch.Tensor,
    iterations: int,
    regularization: float,
    gradient_weight: float,
    on_step: Callable[[], None] | None = None,
) -> tuple[torch.Tensor, torch.Tensor]:
    """Red-black Gauss-Seidel sweeps of the per-pixel 2x2 system of Germer et al. (eq. 5) on one pyramid level.

    Every pixel's ``(F, B)`` minimises ``|alpha F + (1 - alpha) B - I|^2`` plus smoothness towards its 4 neighbours,
    weighted by ``regularization + gradient_weight |alpha - alpha_neighbour|``. Updating the two colours of a
    checkerboard in turn lets each half use the other's fresh values, as pymatting's sequential sweep does.
    """
    weights = [regularization + gradient_weight * (alpha - n).abs() for n in _neighbours(alpha)]
    total = sum(weights)
    inverse = 1.0 - alpha
    a00, a11, a01 = alpha * alpha + total, inverse * inverse + total, alpha * inverse
    determinant = a00 * a11 - a01 * a01
    rows = torch.arange(alpha.shape[-2], device=alpha.device).view(-1, 1)
    columns = torch.arange(alpha.shape[-1], device=alpha.device).view(1, -1)
    red = (rows + columns) % 2 == 0
    b0_image, b1_image = alpha * image, inverse * image
    for _ in range(iterations):
        for colour in (red, ~red):
            b0 = b0_image + sum(w * n for w, n in zip(weights, _neighbours(foreground), strict=True))
            b1 = b1_image + sum(w * n for w, n in zip(weights, _neighbours(background), strict=True))
            new_foreground = ((a11 * b0 - a01 * b1) / determinant).clamp(0, 1)
            new_background = ((a00 * b1 - a01 * b0) / determinant).clamp(0, 1)
            foreground = torch.where(colour, new_foreground, foreground)
            background = torch.where(colour, new_background, background)
            if on_step is not None:
                on_step()
    return foreground, background


def estimate_foreground_multilevel(
    image: torch.Tensor,
    alpha: torch.Tensor,
    *,
    regularization: float = 1e-5,
    small_iterations: int = 10,
    big_iterations: int = 2,
    small_size: int = 32,
    gradient_weight: float = 1.0,
    on_step: Callable[[], None] | None = None,
) -> tuple[torch.Tensor, torch.Tensor]:
    """Multi-level foreground estimation (Germer et al. 2020), the method and defaults of pymatting's
    ``estimate_foreground_ml``.

    The solution is computed on a pyramid from 1x1 up to the full size (nearest-neighbour resizes), starting from the
    mean colours of the sure foreground (alpha > 0.9) and background (alpha < 0.1); ``small_iterations`` sweeps on
    levels up to ``small_size`` pixels, ``big_iterations`` on larger ones.

    Args:
        image: ``[N, C, H, W]`` in [0, 1].
        alpha: ``[N, 1, H, W]`` in [0, 1].

    Returns:
        ``(foreground, background)``, both ``[N, C, H, W]`` in [0, 1], float32.
    """
    image, alpha = image.float(), alpha.float()
    height, width = image.shape[-2:]
    foreground = _mean_colour(image, alpha > 0.9)
    background = _mean_colour(image, alpha < 0.1)
    levels = max(1, math.ceil(math.log2(max(height, width))))
    for level in range(levels + 1):
        level_height, level_width = round(height ** (level / levels)), round(width ** (level / levels))
        small = level_height <= small_size and level_width <= small_size
        foreground, background = _solve_level(
            _nearest(image, level_height, level_width),
            _nearest(alpha, level_height, level_width),
            _nearest(foreground, level_height, level_width),
            _nearest(background, level_height, level_width),
            small_iterations if small else big_iterations,
            regularization,
            gradient_weight,
            on_step,
        )
    return foreground, background


def _blur_fusion_step(
    image: torch.Tensor, foreground: torch.Tensor, background: torch.Tensor, alpha: torch.Tensor, size: int
) -> tuple[torch.Tensor, torch.Tensor]:
    blurred_alpha = box_filter(alpha, size)
    blurred_foreground = box_filter(foreground * alpha, size) / (blurred_alpha + 1e-5)
    blurred_background = box_filter(background * (1 - alpha), size) / ((1 - blurred_alpha) + 1e-5)
    foreground = blurred_foreground + alpha * (image - alpha * blurred_foreground - (1 - alpha) * blurred_background)
    return foreground.clamp(0, 1), blurred_background


def estimate_foreground_blur_fusion(
    image: torch.Tensor,
    alpha: torch.Tensor,
    sizes: tuple[int, ...] = (90, 6),
    on_step: Callable[[], None] | None = None,
) -> tuple[torch.Tensor, torch.Tensor]:
    """Approximate fast foreground colour estimation by blur fusion (Forte & Pitie 2021), with the two passes of
    their published code (box windows of 90, then 6 pixels).

    Args:
        image: ``[N, C, H, W]`` in [0, 1].
        alpha: ``[N, 1, H, W]`` in [0, 1].

    Returns:
        ``(foreground, blurred background)``, both ``[N, C, H, W]``, float32; the foreground in [0, 1].
    """
    image, alpha = image.float(), alpha.float()
    foreground, background = image, image
    for size in sizes:
        foreground, background = _blur_fusion_step(image, foreground, background, alpha, size)
        if on_step is not None:
            on_step()
    return foreground, background


def estimate_foreground(
    image: torch.Tensor,
    alpha: torch.Tensor,
    method: str = "multilevel",
    on_step: Callable[[], None] | None = None,
) -> torch.Tensor:
    """The foreground colour ``[N, C, H, W]`` in [0, 1] of images ``[N, C, H, W]`` with alpha ``[N, 1, H, W]``, by
    one of :data:`FOREGROUND_METHODS` (``multiply`` returns the image itself)."""
    if method == "multilevel":
        return estimate_foreground_multilevel(image, alpha, on_step=on_step)[0]
    if method == "blur_fusion":
        return estimate_foreground_blur_fusion(image, alpha, on_step=on_step)[0]
    if method == "multiply":
        return image.float()
    raise ValueError(f"unknown foreground method {method!r}: use one of {', '.join(FOREGROUND_METHODS)}")
