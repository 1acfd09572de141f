"""Box filtering in O(1) per pixel (running sums), the building block of the guided filter and of blur fusion."""

from __future__ import annotations

import torch


def _box_along(x: torch.Tensor, radius: int, dim: int) -> torch.Tensor:
    size = x.shape[dim]
    sums = torch.cumsum(x, dim=dim, dtype=torch.float64 if x.dtype == torch.float64 else torch.float32)
    sums = torch.cat([torch.zeros_like(sums.narrow(dim, 0, 1)), sums], dim=dim)
    positions = torch.arange(size, device=x.device)
    high = (positions + radius + 1).clamp(max=size)
    low = (positions - radius).clamp(min=0)
    window = sums.index_select(dim, high) - sums.index_select(dim, low)
    count = (high - low).to(window.dtype)
    shape = [1] * x.ndim
    shape[dim] = size
    return (window / count.view(shape)).to(x.dtype)


def box_filter(x: torch.Tensor, radius: int) -> torch.Tensor:
    """Mean of ``x`` ``[..., H, W]`` over the ``(2 radius + 1)^2`` window around every pixel, clipped at the borders
    (each pixel averages only the pixels that exist)."""
    if radius < 0:
        raise ValueError(f"box filter radius must be 0 or more, got {radius}")
    return _box_along(_box_along(x, radius, -2), radius, -1)
