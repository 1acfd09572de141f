"""Bringing alpha from the working canvas to full resolution, guided by the full-resolution image.

The matting head predicts alpha on the 768x768 canvas; stretching it bilinearly to a 4K image blurs every edge. The
fast guided filter (He & Sun 2015, "Fast Guided Filter"; He et al. 2013, "Guided Image Filtering") fits, at working
resolution, a local linear model ``alpha = A . I + b`` of alpha in the image's colours, then applies the upsampled
model to the full-resolution image: edges follow the image's own sharp edges.
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
    guide, source = guide.float(), source.float()
    mean_guide = box_filter(guide, radius)
    mean_source = box_filter(source, radius)
    covariance = box_filter(guide * source, radius) - mean_guide * mean_source  # [N, 3, h, w]
    products = guide.unsqueeze(1) * guide.unsqueeze(2)  # [N, 3, 3, h, w]
    variance = box_filter(products, radius) - mean_guide.unsqueeze(1) * mean_guide.unsqueeze(2)
    variance = variance.permute(0, 3, 4, 1, 2) + eps * torch.eye(3, device=guide.device)  # [N, h, w, 3, 3]
    coefficients = torch.linalg.solve(variance, covariance.permute(0, 2, 3, 1).unsqueeze(-1)).squeeze(-1)
    coefficients = coefficients.permute(0, 3, 1, 2)  # [N, 3, h, w]
    offset = mean_source - (coefficients * mean_guide).sum(1, keepdim=True)
    return box_filter(coefficients, radius), box_filter(offset, radius)


def guided_upsample(
    alpha: torch.Tensor,
    guide_low: torch.Tensor,
    guide: torch.Tensor,
    radius: int = GUIDED_RADIUS,
    eps: float = GUIDED_EPS,
) -> torch.Tensor:
    """Edge-aware upsampling of ``alpha`` ``[N, 1, h, w]`` to the size of ``guide`` ``[N, 3, H, W]`` in [0, 1].

    Args:
        alpha: alpha at working resolution, in [0, 1].
        guide_low: the image as the network saw it, ``[N, 3, h, w]`` (``guide`` resized to ``h x w``).
        guide: the full-resolution image.

    Returns:
        ``[N, 1, H, W]`` in [0, 1].
    """
    coefficients, offset = guided_filter_coefficients(guide_low, alpha, radius, eps)
    size = (guide.shape[-2], guide.shape[-1])
    coefficients, offset = resize(coefficients, size), resize(offset, size)
    return ((coefficients * guide.float()).sum(1, keepdim=True) + offset).clamp(0, 1)
