"""Dense motion between two neighbouring frames by block matching, coarse to fine, and warping along it."""

from __future__ import annotations

import torch
import torch.nn.functional as F

COARSE_FACTOR = 4
"""The coarse search runs on frames shrunk by this factor."""
COARSE_RADIUS = 6
"""Coarse search: displacements of up to this many coarse pixels (x ``COARSE_FACTOR`` full-resolution pixels)."""
FINE_RADIUS = 2
"""Fine search: full-resolution pixels around the coarse motion."""
BLOCK = 7
"""Side of the box over which a displacement's colour difference is summed (full resolution; 5 when coarse)."""
MOTION_PENALTY = 1e-3
"""Added per pixel of displacement, so that flat regions keep zero motion."""


def warp(image: torch.Tensor, flow: torch.Tensor) -> torch.Tensor:
    """Samples ``image`` ``[B, C, H, W]`` at every pixel ``p`` from ``p + flow[p]``; ``flow`` ``[B, 2, H, W]``
    holds ``(dx, dy)`` in pixels. Bilinear; positions outside the image take the nearest border pixel."""
    _, _, height, width = image.shape
    ys, xs = torch.meshgrid(
        torch.arange(height, device=flow.device, dtype=flow.dtype),
        torch.arange(width, device=flow.device, dtype=flow.dtype),
        indexing="ij",
    )
    x = (xs + flow[:, 0]) * (2 / max(width - 1, 1)) - 1
    y = (ys + flow[:, 1]) * (2 / max(height - 1, 1)) - 1
    grid = torch.stack([x, y], dim=-1).to(image.dtype)
    return F.grid_sample(image, grid, mode="bilinear", padding_mode="border", align_corners=True)


def _block_cost(a: torch.Tensor, b: torch.Tensor, block: int) -> torch.Tensor:
    """Mean absolute colour difference ``[B, H, W]`` of ``[B, 3, H, W]`` images over ``block x block`` boxes."""
    difference = (a - b).abs().mean(dim=1, keepdim=True)
    return F.avg_pool2d(difference, block, stride=1, padding=block // 2, count_include_pad=False).squeeze(1)


def _shifted(image: torch.Tensor, dx: int, dy: int, radius: int) -> torch.Tensor:
    """``image`` sampled at ``p + (dx, dy)`` for every pixel ``p``; border pixels repeat. ``|dx|, |dy| <= radius``."""
    height, width = image.shape[-2:]
    padded = F.pad(image, (radius, radius, radius, radius), mode="replicate")
    return padded[..., radius + dy : radius + dy + height, radius + dx : radius + dx + width]


def _best_shift(current: torch.Tensor, previous: torch.Tensor, radius: int, block: int) -> torch.Tensor:
    """Per pixel, the integer displacement ``[B, 2, H, W]`` within ``radius`` of least block cost."""
    best_cost = torch.full_like(current[:, 0], float("inf"))
    best = current.new_zeros(current.shape[0], 2, *current.shape[-2:])
    for dy in range(-radius, radius + 1):
        for dx in range(-radius, radius + 1):
            cost = _block_cost(current, _shifted(previous, dx, dy, radius), block)
            cost = cost + MOTION_PENALTY * (abs(dx) + abs(dy))
            better = cost < best_cost
            best_cost = torch.where(better, cost, best_cost)
            offset = torch.tensor([dx, dy], dtype=best.dtype, device=best.device).view(1, 2, 1, 1)
            best = torch.where(better.unsqueeze(1), offset, best)
    return best


@torch.no_grad()
def backward_flow(previous: torch.Tensor, current: torch.Tensor) -> torch.Tensor:
    """Where every pixel of ``current`` was in ``previous`` (both ``[B, 3, H, W]`` in [0, 1]).

    Block matching on frames shrunk by ``COARSE_FACTOR``, then refined by whole pixels at full resolution.

    Returns:
        ``[B, 2, H, W]`` displacements ``(dx, dy)`` in pixels, so that ``warp(previous, flow) ~ current``. Up to
        ``COARSE_RADIUS * COARSE_FACTOR + FINE_RADIUS`` (26) pixels per frame; faster motion is not found (the
        stabiliser then leaves those pixels alone).
    """
    height, width = current.shape[-2:]
    coarse = current.new_zeros(current.shape[0], 2, height, width)
    if min(height, width) >= 4 * COARSE_FACTOR:
        small = (height // COARSE_FACTOR, width // COARSE_FACTOR)
        shrink = lambda x: F.interpolate(x, size=small, mode="area")  # noqa: E731
        found = _best_shift(shrink(current), shrink(previous), COARSE_RADIUS, 5)
        scale = torch.tensor([width / small[1], height / small[0]], device=found.device, dtype=found.dtype)
        coarse = F.interpolate(found, size=(height, width), mode="nearest") * scale.view(1, 2, 1, 1)
    # Fine: integer shifts of the coarsely warped previous frame (exact wherever the coarse motion is locally even).
    return coarse + _best_shift(current, warp(previous, coarse), FINE_RADIUS, BLOCK)
