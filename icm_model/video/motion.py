"""Dense sub-pixel motion between two neighbouring frames, and warping along it.

Pyramidal, iterative Lucas–Kanade (Lucas & Kanade 1981; coarse to fine with warping as in Bouguet's pyramidal
implementation, but dense: every pixel gets its own window), in plain torch: at each level of a pyramid of the two
frames, the previous frame is warped along the current motion estimate, and the motion is refined by the least-squares
solution of the linearised brightness constancy over a Gaussian window around every pixel, summed over the colour
channels. The estimation warps bicubically: bilinear interpolation blurs a frame by an amount that depends on the
sub-pixel position, which pulls estimates towards whole pixels ("pixel locking"). A median filter of the motion after
each level (Sun, Roth & Black 2010) removes outliers.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F

MIN_LEVEL_SIZE = 12
"""The coarsest pyramid level is the last whose shorter side is at least this many pixels."""
MAX_LEVELS = 5
"""At most this many pyramid levels (each half the size of the one before): motion of up to about
``2 ** (MAX_LEVELS - 1)`` times the window is found."""
ITERATIONS = 3
"""Lucas–Kanade refinements per pyramid level."""
WINDOW_SIGMA = 3.0
"""Standard deviation (pixels, at every level) of the Gaussian window a pixel's motion is fitted over."""
DAMPING = 1e-4
"""Added to the window's structure tensor (colour gradient², summed over channels): keeps updates small where the
frames have no texture (the aperture problem), so flat regions keep the motion found at coarser levels."""
MEDIAN_SIZE = 5
"""Side of the median filter applied to the motion after each level."""


def warp(image: torch.Tensor, flow: torch.Tensor, mode: str = "bilinear") -> torch.Tensor:
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
    return F.grid_sample(image, grid, mode=mode, padding_mode="border", align_corners=True)


def _gaussian(image: torch.Tensor, sigma: float) -> torch.Tensor:
    """``image`` ``[B, C, H, W]`` blurred by a separable Gaussian of std ``sigma`` (borders replicated)."""
    radius = max(1, round(2.5 * sigma))
    taps = torch.arange(-radius, radius + 1, dtype=image.dtype, device=image.device)
    kernel = torch.exp(-0.5 * (taps / sigma) ** 2)
    kernel = kernel / kernel.sum()
    channels = image.shape[1]
    padded = F.pad(image, (radius, radius, radius, radius), mode="replicate")
    rows = F.conv2d(padded, kernel.view(1, 1, 1, -1).expand(channels, 1, 1, -1), groups=channels)
    return F.conv2d(rows, kernel.view(1, 1, -1, 1).expand(channels, 1, -1, 1), groups=channels)


def _gradients(image: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """Central differences ``(d/dx, d/dy)`` of ``image`` ``[B, C, H, W]`` (one-sided at the borders)."""
    padded = F.pad(image, (1, 1, 1, 1), mode="replicate")
    return (padded[..., 1:-1, 2:] - padded[..., 1:-1, :-2]) / 2, (padded[..., 2:, 1:-1] - padded[..., :-2, 1:-1]) / 2


def _median(flow: torch.Tensor, size: int) -> torch.Tensor:
    """Per-channel median of ``flow`` ``[B, 2, H, W]`` over ``size x size`` neighbourhoods (borders replicated)."""
    batch, channels, height, width = flow.shape
    padded = F.pad(flow, (size // 2,) * 4, mode="replicate")
    patches = F.unfold(padded.reshape(batch * channels, 1, *padded.shape[-2:]), size)
    return patches.median(dim=1).values.view(batch, channels, height, width)


def _pyramid(image: torch.Tensor) -> list[torch.Tensor]:
    """``image`` and its successive halvings (area averages), finest first."""
    levels = [image]
    while len(levels) < MAX_LEVELS and min(levels[-1].shape[-2:]) // 2 >= MIN_LEVEL_SIZE:
        height, width = levels[-1].shape[-2:]
        levels.append(F.interpolate(levels[-1], size=(height // 2, width // 2), mode="area"))
    return levels


def _refine(previous: torch.Tensor, current: torch.Tensor, flow: torch.Tensor) -> torch.Tensor:
    """``flow`` ``[B, 2, H, W]`` after ``ITERATIONS`` Lucas–Kanade steps on one pyramid level.

    Every pixel's window is linearised about that pixel's own motion (as if the window were warped by it, as in the
    sparse method), not about each neighbour's: the step solves ``A f' = sum_w g (r + g^T f_q)`` with ``A`` the
    window's structure tensor, ``r`` the colour residual and ``f_q`` a neighbour's current motion. (Adding each
    neighbour's residual instead would deconvolve the noise: the iteration would not converge.)
    """
    for _ in range(ITERATIONS):
        warped = warp(previous, flow, "bicubic")
        gx, gy = _gradients((warped + current) / 2)
        difference = current - warped
        fx, fy = flow[:, :1], flow[:, 1:]
        terms = [gx * gx, gx * gy, gy * gy]
        terms += [gx * difference + terms[0] * fx + terms[1] * fy, gy * difference + terms[1] * fx + terms[2] * fy]
        # Window sums over the Gaussian window, of the colour channels' sums.
        xx, xy, yy, bx, by = _gaussian(torch.stack(terms, dim=1).sum(dim=2), WINDOW_SIGMA).unbind(1)
        xx, yy, bx, by = xx + DAMPING, yy + DAMPING, bx + DAMPING * fx[:, 0], by + DAMPING * fy[:, 0]
        determinant = xx * yy - xy * xy
        flow = torch.stack([yy * bx - xy * by, xx * by - xy * bx], dim=1) / determinant.unsqueeze(1)
    return flow


@torch.no_grad()
def backward_flow(previous: torch.Tensor, current: torch.Tensor) -> torch.Tensor:
    """Where every pixel of ``current`` was in ``previous`` (both ``[B, C, H, W]`` in [0, 1]), to a fraction of a pixel.

    Returns:
        ``[B, 2, H, W]`` displacements ``(dx, dy)`` in pixels (float32), so that ``warp(previous, flow) ~ current``
        wherever the motion is visible (textured, not occluded). Pixels whose motion cannot be found (occluded, newly
        revealed, too fast) get some motion that does not explain them: callers compare the warped frame to decide.
    """
    previous, current = previous.float(), current.float()
    flow = None
    for old, new in zip(reversed(_pyramid(previous)), reversed(_pyramid(current)), strict=True):
        height, width = new.shape[-2:]
        if flow is None:
            flow = new.new_zeros(new.shape[0], 2, height, width)
        else:
            scale = torch.tensor([width / flow.shape[-1], height / flow.shape[-2]], device=flow.device)
            flow = F.interpolate(flow, size=(height, width), mode="bilinear", align_corners=False)
            flow = flow * scale.view(1, 2, 1, 1)
        flow = _median(_refine(old, new, flow), MEDIAN_SIZE)
    return flow
