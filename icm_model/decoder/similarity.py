"""In-context similarity: the RoI query, inter-similarity (reference to target) and intra-similarity (within target)."""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn

from ..validation import InputError

ROI_RULES = ("inside", "touched")
"""How a prompt selects query tokens: ``inside`` (masks, boxes) or ``touched`` (points, scribbles)."""


def roi_token_mask(mask: torch.Tensor, grid: tuple[int, int], rule: str = "inside") -> torch.Tensor:
    """Which feature tokens the RoI selects.

    Args:
        mask: reference RoI ``[R, H, W]`` in [0, 1]; pixels ``> 0.5`` are inside. ``H, W`` must be multiples of
            ``grid``.
        grid: ``(h, w)`` of the correspondence feature.
        rule: ``inside``: a token counts only if every pixel under it is inside (min-pooling, the official rule for
            masks); ``touched``: a token counts if any pixel under it is inside (for sparse points and scribbles).

    Returns:
        ``[R, h, w]`` bool.
    """
    if rule not in ROI_RULES:
        raise ValueError(f"rule must be one of {ROI_RULES}, got {rule!r}")
    height, width = mask.shape[-2:]
    if height % grid[0] or width % grid[1]:
        raise ValueError(f"mask size {height}x{width} is not a multiple of the token grid {grid[0]}x{grid[1]}")
    kernel = (height // grid[0], width // grid[1])
    inside = (mask > 0.5).float().unsqueeze(1)
    if rule == "inside":
        inside = -F.max_pool2d(-inside, kernel, stride=kernel)
    else:
        inside = F.max_pool2d(inside, kernel, stride=kernel)
    return inside.squeeze(1) > 0.5


def roi_query(features: torch.Tensor, token_mask: torch.Tensor) -> torch.Tensor:
    """Gathers the reference feature vectors under the RoI tokens of every reference into one query.

    Args:
        features: reference correspondence features ``[R, C, h, w]``.
        token_mask: ``[R, h, w]`` bool from :func:`roi_token_mask`.

    Returns:
        ``[K, C]``: the union of the RoI tokens of all references (paper Table 6 for several references).
    """
    return features.permute(0, 2, 3, 1)[token_mask]


def inter_similarity(query: torch.Tensor, target: torch.Tensor, norm: nn.LayerNorm) -> torch.Tensor:
    """Inter-similarity S: how strongly the reference RoI matches each target token.

    Args:
        query: RoI query tokens ``[K, C]`` (raw features; the learned ``norm`` is applied here).
        target: target correspondence features ``[B, C, h, w]``.
        norm: the learned LayerNorm over C applied to query and target tokens.

    Returns:
        ``[B, 1, h, w]``: for each query token a softmax over the target tokens of ``q . t / sqrt(C)``, summed over
        the K query tokens (the official code sums; the paper says mean). Values in [0, K], summing to K.
    """
    if query.shape[0] == 0:
        raise InputError("the reference RoI covers no feature token: mark a larger region on the reference")
    batch, channels, height, width = target.shape
    q = norm(query.to(target.dtype))
    t = norm(target.flatten(2).transpose(1, 2))
    logits = torch.einsum("kc,bnc->bkn", q, t) * channels**-0.5
    return logits.softmax(dim=-1).sum(dim=1).view(batch, 1, height, width)


def intra_similarity(inter: torch.Tensor, attention: torch.Tensor) -> torch.Tensor:
    """Intra-similarity S_l: the target's own self-attention spreads the sparse inter-similarity over the object.

    Args:
        inter: inter-similarity ``[B, 1, h, w]``.
        attention: target self-attention ``[B, r, r, r*r]``; entry ``[b, i, j, n]`` is the attention that query token
            ``(i, j)`` pays to key token ``n`` (rows sum to 1).

    Returns:
        ``[B, r, r, r*r]``: every key column ``n`` weighted by the inter-similarity resized to ``r x r`` (bilinear,
        align_corners=True) at token ``n``.
    """
    grid = attention.shape[1:3]
    weights = F.interpolate(inter, size=grid, mode="bilinear", align_corners=True).flatten(1)
    return attention * weights[:, None, None, :]
