"""Temporal measures of video mattes, inside a band around the object's edge."""

from __future__ import annotations

import torch
import torch.nn.functional as F

DEFAULT_BAND = 6
"""Pixels on either side of the true edge that the measures look at."""


def edge_band(truth: torch.Tensor, radius: int = DEFAULT_BAND) -> torch.Tensor:
    """``[N, H, W]`` bool: pixels within ``radius`` of the edge of the true alpha ``[N, H, W]`` (> 0.5 = object)."""
    inside = (truth > 0.5).float().unsqueeze(1)
    size = 2 * radius + 1
    grown = F.max_pool2d(inside, size, 1, radius)
    shrunk = -F.max_pool2d(-inside, size, 1, radius)
    return (grown > shrunk).squeeze(1)


def _pairs(band: torch.Tensor) -> torch.Tensor:
    """The band of each consecutive pair of frames ``[N - 1, H, W]``: the union of both frames' bands."""
    return band[1:] | band[:-1]


def flicker(alpha: torch.Tensor, band: torch.Tensor) -> float:
    """Mean absolute alpha change between consecutive frames of ``alpha`` ``[N, H, W]``, inside ``band``."""
    return float((alpha[1:] - alpha[:-1]).abs()[_pairs(band)].mean())


def temporal_error(alpha: torch.Tensor, truth: torch.Tensor, band: torch.Tensor) -> float:
    """Mean absolute difference between the predicted and the true alpha change of consecutive frames, in ``band``
    (the change the object's motion explains does not count; cf. dtSSD)."""
    change = (alpha[1:] - alpha[:-1]) - (truth[1:] - truth[:-1])
    return float(change.abs()[_pairs(band)].mean())


def mean_error(alpha: torch.Tensor, truth: torch.Tensor, band: torch.Tensor) -> float:
    """Mean absolute alpha error against the truth inside ``band`` (smearing a moving edge raises it)."""
    return float((alpha - truth).abs()[band].mean())
