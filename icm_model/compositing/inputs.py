"""What the compositing functions accept: finite images, alpha in [0, 1] (a little outside is clamped, another scale is
refused), and batches that broadcast (one item for all, or one per image). Errors name the input, as a node shows
it."""

from __future__ import annotations

import torch

ALPHA_MARGIN = 0.25
"""Alpha values at most this far outside [0, 1] (resampling overshoot, e.g. bicubic or Lanczos resizes) are clamped;
values further out mean another scale (0..255, -1..1) and are refused."""


def check_finite(x: torch.Tensor, name: str) -> None:
    """Refuses NaN or infinite values in ``x``: one of them spreads over thousands of pixels of a filter's output."""
    bad = int((~torch.isfinite(x)).sum())
    if bad:
        raise ValueError(
            f"{name} has {bad} NaN or infinite values: fix the node that produced it (values must be numbers in 0..1)"
        )


def checked_alpha(alpha: torch.Tensor, name: str = "alpha") -> torch.Tensor:
    """``alpha`` (any shape) clamped to [0, 1] after checking it: finite, and within :data:`ALPHA_MARGIN` of [0, 1]."""
    check_finite(alpha, name)
    low, high = float(alpha.min()), float(alpha.max())
    if low < -ALPHA_MARGIN or high > 1 + ALPHA_MARGIN:
        hint = " (divide an alpha of 0..255 by 255)" if high > 1 + ALPHA_MARGIN else ""
        raise ValueError(
            f"{name} runs from {low:g} to {high:g}, but alpha is 0 (background) to 1 (foreground){hint}; values at "
            f"most {ALPHA_MARGIN} outside 0..1 are clamped"
        )
    return alpha.clamp(0, 1)


def batch_size(**counts: int) -> int:
    """The batch of inputs with these batch sizes: every input has one item or the same number N."""
    size = max(counts.values())
    if any(count not in (1, size) for count in counts.values()):
        listed = ", ".join(f"{name} {count}" for name, count in counts.items())
        raise ValueError(f"batch sizes do not match ({listed}): give each one image, or all the same number")
    return size


def broadcast(x: torch.Tensor, size: int) -> torch.Tensor:
    """``[1, ...]`` -> ``[size, ...]`` (a view); a batch of ``size`` as it is."""
    return x.expand(size, *x.shape[1:]) if x.shape[0] == 1 else x


def alpha_batch(alpha: torch.Tensor, height: int, width: int, name: str = "alpha") -> torch.Tensor:
    """Alpha ``[H, W]`` or ``[B, H, W]`` of ``height x width`` images -> checked ``[B, 1, H, W]`` in [0, 1]."""
    if alpha.ndim == 2:
        alpha = alpha.unsqueeze(0)
    if alpha.ndim != 3 or tuple(alpha.shape[1:]) != (height, width):
        raise ValueError(
            f"{name} {list(alpha.shape)} does not fit images of {width}x{height}: wire the alpha of these images "
            "(a MASK [batch, height, width] of the same size)"
        )
    return checked_alpha(alpha.float(), name).unsqueeze(1)
