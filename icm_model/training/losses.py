"""The official matting loss (LossFunction2): sample routing, region L1 terms, the Laplacian pyramid loss, the
gradient penalty and the confident-area segmentation term, reduced over the batch as a recipe says.

Per sample ``p`` = predicted alpha, ``g`` = ground truth, ``T`` = trimap in {0, 0.5, 1}, ``N = H * W``,
``m = [T == 0.5]`` (unknown region), ``k = 1 - m`` (known region), ``C`` = the recipe's area constant (``N`` when
None, i.e. region means).
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import NamedTuple

import torch
import torch.nn.functional as F

from .recipe import TrainingRecipe

UNKNOWN = 0.5
"""The trimap value of the unknown region."""
PYRAMID_LEVELS = 5
MATTING_TERMS = ("unknown_l1_loss", "known_l1_loss", "loss_pha_laplacian", "loss_gradient_penalty")
"""The matting route's terms, in the official order (eval.yaml losses_matting)."""
GRADIENT_REGULARISER = 0.01
_GAUSS_1D = (1.0, 4.0, 6.0, 4.0, 1.0)
_SOBEL_X = ((-1.0, 0.0, 1.0), (-2.0, 0.0, 2.0), (-1.0, 0.0, 1.0))


class LossTerms(NamedTuple):
    """One batch's loss.

    Attributes:
        total: scalar, the sum of ``terms`` (what is back-propagated).
        terms: key -> scalar, each term reduced over the samples (summed or averaged, by the recipe).
        per_sample: per sample, key -> scalar: the terms of its route only.
        routes: per sample, ``matting`` or ``segmentation``.
    """

    total: torch.Tensor
    terms: dict[str, torch.Tensor]
    per_sample: list[dict[str, torch.Tensor]]
    routes: list[str]


def gauss_kernel(device: torch.device | None = None, dtype: torch.dtype = torch.float32) -> torch.Tensor:
    """The 5x5 binomial kernel ``outer(v, v) / 256``, ``v = [1, 4, 6, 4, 1]``, as ``[1, 1, 5, 5]`` (sums to 1)."""
    v = torch.tensor(_GAUSS_1D, device=device, dtype=dtype)
    return (torch.outer(v, v) / 256).view(1, 1, 5, 5)


def _gauss(x: torch.Tensor, kernel: torch.Tensor) -> torch.Tensor:
    """Per-channel cross-correlation of ``[B, C, H, W]`` with the 5x5 kernel after reflect padding 2."""
    channels = x.shape[1]
    return F.conv2d(F.pad(x, (2, 2, 2, 2), mode="reflect"), kernel.expand(channels, 1, 5, 5), groups=channels)


def laplacian_pyramid(x: torch.Tensor, levels: int = PYRAMID_LEVELS) -> list[torch.Tensor]:
    """The Laplacian pyramid of ``x`` ``[B, C, H, W]`` as the official loss builds it.

    Per level: crop the current image to even height and width (dropping the last row/column), ``down`` = Gaussian
    blur (reflect padding) taken at every second pixel, ``up`` = Gaussian blur of ``down`` spread onto the even
    pixels of a zero image of twice its size (times 4); the level is ``current - up``, and ``down`` goes on.
    Every level must be at least 3 pixels on each side (reflect padding).

    Returns:
        ``levels`` tensors, level ``l`` of size about ``H / 2**l x W / 2**l``.
    """
    kernel = gauss_kernel(x.device, x.dtype)
    pyramid, current = [], x
    for _ in range(levels):
        height, width = current.shape[-2:]
        current = current[..., : height - height % 2, : width - width % 2]
        down = _gauss(current, kernel)[..., ::2, ::2]
        spread = torch.zeros(*down.shape[:-2], 2 * down.shape[-2], 2 * down.shape[-1], device=x.device, dtype=x.dtype)
        spread[..., ::2, ::2] = 4 * down
        pyramid.append(current - _gauss(spread, kernel))
        current = down
    return pyramid


def laplacian_loss(prediction: torch.Tensor, alpha: torch.Tensor) -> torch.Tensor:
    """``(1/5) * sum_l 2**l * mean|L_l(p) - L_l(g)|`` over the whole image (no mask, no area constant)."""
    levels = zip(laplacian_pyramid(prediction), laplacian_pyramid(alpha), strict=True)
    return sum(2**i * F.l1_loss(p, g) for i, (p, g) in enumerate(levels)) / PYRAMID_LEVELS


def sobel(x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """Sobel responses ``(Sx * x, Sy * x)`` of ``[B, 1, H, W]`` (cross-correlation, zero padding 1), ``Sy = Sx^T``."""
    sx = torch.tensor(_SOBEL_X, device=x.device, dtype=x.dtype).view(1, 1, 3, 3)
    return F.conv2d(x, sx, padding=1), F.conv2d(x, sx.transpose(-1, -2), padding=1)


def _region_scale(region: torch.Tensor, area_constant: float | None) -> torch.Tensor | None:
    """``C / sum(region)`` turning a whole-image mean into the recipe's region term; None for an empty region."""
    pixels = region.sum()
    if pixels == 0:
        return None
    return (region[0, 0].numel() if area_constant is None else area_constant) / pixels


def region_l1(prediction, alpha, region, area_constant: float | None) -> torch.Tensor:
    """``C * sum(region * |p - g|) / (N * sum(region))``; 0 for an empty region."""
    scale = _region_scale(region, area_constant)
    if scale is None:
        return prediction.sum() * 0
    return F.l1_loss(prediction * region, alpha * region) * scale


def region_smooth_l1(prediction, alpha, region, area_constant: float | None) -> torch.Tensor:
    """``C * sum(region * s(p - g)) / (N * sum(region))`` with the smooth L1 ``s`` (beta 1); 0 for an empty region."""
    scale = _region_scale(region, area_constant)
    if scale is None:
        return prediction.sum() * 0
    return F.smooth_l1_loss(prediction * region, alpha * region) * scale


def gradient_penalty(prediction, alpha, unknown, area_constant: float | None) -> torch.Tensor:
    """The Sobel-gradient L1 inside the unknown region plus 0.01 x the prediction's own gradient there, times
    ``C / (N * sum(m))``; 0 without unknown pixels."""
    scale = _region_scale(unknown, area_constant)
    if scale is None:
        return prediction.sum() * 0
    (px, py), (gx, gy) = sobel(prediction), sobel(alpha)
    matching = F.l1_loss(px * unknown, gx * unknown) + F.l1_loss(py * unknown, gy * unknown)
    regulariser = (px * unknown).abs().mean() + (py * unknown).abs().mean()
    return (matching + GRADIENT_REGULARISER * regulariser) * scale


def is_segmentation(alpha: torch.Tensor, routing: str, kind: bool | None = None) -> bool:
    """The route of one sample ``[1, 1, H, W]``: official ``values`` routing takes alpha all 0 or all 1 (T1);
    ``kind`` routing takes the dataset kind, else an alpha holding only 0 and 1."""
    if routing == "values":
        return bool((alpha == 0).all() or (alpha == 1).all())
    if kind is not None:
        return bool(kind)
    return bool(((alpha == 0) | (alpha == 1)).all())


def sample_terms(
    prediction: torch.Tensor, alpha: torch.Tensor, trimap: torch.Tensor, segmentation: bool, recipe: TrainingRecipe
) -> dict[str, torch.Tensor]:
    """The loss terms of one sample ``[1, 1, H, W]`` on its route (a dict in the official order)."""
    unknown = (trimap == UNKNOWN).to(prediction.dtype)
    known = 1 - unknown
    c = recipe.area_constant
    if segmentation:
        if recipe.segmentation_loss == "smooth_l1":
            return {recipe.segmentation_key: region_smooth_l1(prediction, alpha, known, c)}
        return {recipe.segmentation_key: region_l1(prediction, alpha, known, c)}
    return {
        "unknown_l1_loss": region_l1(prediction, alpha, unknown, c),
        "known_l1_loss": region_l1(prediction, alpha, known, c),
        "loss_pha_laplacian": laplacian_loss(prediction, alpha),
        "loss_gradient_penalty": gradient_penalty(prediction, alpha, unknown, c),
    }


def matting_loss(
    prediction: torch.Tensor,
    alpha: torch.Tensor,
    trimap: torch.Tensor,
    recipe: TrainingRecipe,
    segmentation: Sequence[bool] | torch.Tensor | None = None,
) -> LossTerms:
    """The training loss of a batch.

    Args:
        prediction: predicted alpha ``[B, 1, H, W]`` in [0, 1] (after the sigmoid).
        alpha: ground-truth alpha ``[B, 1, H, W]`` in [0, 1].
        trimap: ``[B, 1, H, W]`` with values {0, 0.5, 1}; 0.5 marks the unknown region.
        recipe: routing, area constant, segmentation term and batch reduction.
        segmentation: per sample, whether it comes from a segmentation dataset (used by ``kind`` routing only).

    Returns:
        :class:`LossTerms`; ``terms`` holds every matting key and the segmentation key (0 when no sample has it).
    """
    if prediction.shape != alpha.shape or alpha.shape != trimap.shape or prediction.shape[1] != 1:
        raise ValueError(
            f"prediction, alpha and trimap must all be [B, 1, H, W], got {list(prediction.shape)}, "
            f"{list(alpha.shape)} and {list(trimap.shape)}"
        )
    batch = prediction.shape[0]
    if segmentation is not None and len(segmentation) != batch:
        raise ValueError(f"segmentation flags: {len(segmentation)} for a batch of {batch}")
    per_sample, routes = [], []
    for b in range(batch):
        kind = None if segmentation is None else bool(segmentation[b])
        seg = is_segmentation(alpha[b : b + 1], recipe.routing, kind)
        routes.append("segmentation" if seg else "matting")
        per_sample.append(sample_terms(prediction[b : b + 1], alpha[b : b + 1], trimap[b : b + 1], seg, recipe))
    keys = list(dict.fromkeys((*MATTING_TERMS, recipe.segmentation_key)))
    zero = prediction.sum() * 0
    terms = {}
    for key in keys:
        values = [sample[key] for sample in per_sample if key in sample]
        term = sum(values, zero) if values else zero
        terms[key] = term / batch if recipe.batch_reduction == "mean" else term
    return LossTerms(sum(terms.values(), zero), terms, per_sample, routes)
