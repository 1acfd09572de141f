"""Bringing alpha from the working canvas to full resolution, guided by the full-resolution image.

The matting head predicts alpha on the 768x768 canvas; stretching it bilinearly to a 4K image blurs every edge. The
fast guided filter (He & Sun 2015, "Fast Guided Filter"; He et al. 2013, "Guided Image Filtering") fits, at working
resolution, a local linear model ``alpha = A . I + b`` of alpha in the image's colours, then applies the upsampled
model to the full-resolution image: edges follow the image's own sharp edges.

Applied alone, that model smooths alpha wherever the image does not explain it: where object and background share a
colour the fit is flat (``A = 0``) and its output is alpha box-filtered twice, blurrier than bilinear. So only the
model's *detail* is used: the full-resolution model minus the same model at working resolution, added to bilinear
alpha. Where the guide has no edge the detail is zero and the result is exactly bilinear; where it has one, the edge
follows the image.
"""

from __future__ import annotations

import torch

from ..geometry import resize
from .filters import box_filter

UPSAMPLING_METHODS = ("guided", "bilinear")
GUIDED_RADIUS = 1
"""Window radius of the linear model, in working-canvas pixels."""
GUIDED_EPS = 1e-4
"""Regularisation of the linear model: larger values follow the image's colours less (smoother)."""


def guided_filter_coefficients(
    guide: torch.Tensor, source: torch.Tensor, radius: int, eps: float
) -> tuple[torch.Tensor, torch.Tensor]:
    """The colour guided filter's box-averaged linear coefficients of ``source`` ``[N, 1, h, w]`` in ``guide``
    ``[N, 3, h, w]``: ``A`` ``[N, 3, h, w]`` and ``b`` ``[N, 1, h, w]`` (the filtered source is ``(A * guide).sum(1) +
    b``)."""
    guide, source, size = guide.float(), source.float(), 2 * radius + 1
    mean_guide = box_filter(guide, size)
    mean_source = box_filter(source, size)
    covariance = box_filter(guide * source, size) - mean_guide * mean_source  # [N, 3, h, w]
    products = guide.unsqueeze(1) * guide.unsqueeze(2)  # [N, 3, 3, h, w]
    variance = box_filter(products, size) - mean_guide.unsqueeze(1) * mean_guide.unsqueeze(2)
    variance = variance.permute(0, 3, 4, 1, 2) + eps * torch.eye(3, device=guide.device)  # [N, h, w, 3, 3]
    coefficients = torch.linalg.solve(variance, covariance.permute(0, 2, 3, 1).unsqueeze(-1)).squeeze(-1)
    coefficients = coefficients.permute(0, 3, 1, 2)  # [N, 3, h, w]
    offset = mean_source - (coefficients * mean_guide).sum(1, keepdim=True)
    return box_filter(coefficients, size), box_filter(offset, size)


def guided_upsample(
    alpha: torch.Tensor,
    guide_low: torch.Tensor,
    guide: torch.Tensor,
    radius: int = GUIDED_RADIUS,
    eps: float = GUIDED_EPS,
) -> torch.Tensor:
    """Edge-aware upsampling of ``alpha`` ``[N, 1, h, w]`` to the size of ``guide`` ``[N, 3, H, W]`` in [0, 1]:
    ``up(alpha) + (up(A) . guide + up(b)) - up(A . guide_low + b)``, bilinear alpha plus the guided filter's
    full-resolution detail (``up``: bilinear resize to ``H x W``; ``A``, ``b``: :func:`guided_filter_coefficients`).

    Args:
        alpha: alpha at working resolution, in [0, 1].
        guide_low: the image as the network saw it, ``[N, 3, h, w]`` (``guide`` resized to ``h x w``).
        guide: the full-resolution image.

    Returns:
        ``[N, 1, H, W]`` in [0, 1].
    """
    alpha = alpha.float()
    coefficients, offset = guided_filter_coefficients(guide_low, alpha, radius, eps)
    filtered = (coefficients * guide_low.float()).sum(1, keepdim=True) + offset  # the model at working resolution
    size = (guide.shape[-2], guide.shape[-1])
    detailed = (resize(coefficients, size) * guide.float()).sum(1, keepdim=True) + resize(offset, size)
    return (resize(alpha - filtered, size) + detailed).clamp(0, 1)
