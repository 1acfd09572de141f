"""Box filtering in O(1) per pixel (running sums), the building block of the guided filter and of blur fusion."""

from __future__ import annotations

import torch


def _box_along(x: torch.Tensor, size: int, dim: int) -> torch.Tensor:
    length = x.shape[dim]
    sums = torch.cumsum(x, dim=dim, dtype=torch.float64 if x.dtype == torch.float64 else torch.float32)
    sums = torch.cat([torch.zeros_like(sums.narrow(dim, 0, 1)), sums], dim=dim)
    positions = torch.arange(length, device=x.device)
    high = (positions + size - size // 2).clamp(max=length)
    low = (positions - size // 2).clamp(min=0)
    window = sums.index_select(dim, high) - sums.index_select(dim, low)
    count = (high - low).to(window.dtype)
    shape = [1] * x.ndim
    shape[dim] = length
    return (window / count.view(shape)).to(x.dtype)


def box_filter(x: torch.Tensor, size: int) -> torch.Tensor:
    """Mean of ``x`` ``[..., H, W]`` over the ``size x size`` window at every pixel, clipped at the borders (each pixel
    averages only the pixels that exist). The window is centred as OpenCV's ``cv2.blur`` centres it: ``size // 2``
    pixels before the pixel, the rest after it (an even size reaches one pixel further back than forward)."""
    if size < 1:
        raise ValueError(f"box filter size must be 1 or more, got {size}")
    return _box_along(_box_along(x, size, -2), size, -1)
