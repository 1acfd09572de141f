"""Scene cuts: a frame whose colour histogram differs from the previous frame's far more than the clip's usual."""

from __future__ import annotations

import torch

BINS = 32
"""Histogram bins per colour channel."""
MIN_DISTANCE = 0.2
"""A histogram distance (0..1) below this is never a cut."""
LEVEL_RATIO = 4.0
"""A cut's histogram distance is at least this many times the clip's running level."""
LEVEL_MEMORY = 0.8
"""Weight of the running level's past in its update after every frame that is not a cut."""


def histogram_distance(previous: torch.Tensor, current: torch.Tensor) -> float:
    """Half the L1 distance (0 = same colours, 1 = disjoint) between the colour histograms of two frames
    ``[1, C, H, W]`` in [0, 1], ``BINS`` bins per channel, averaged over the channels. Motion does not change it."""
    distances = []
    for a, b in zip(previous[0], current[0], strict=True):
        counts = [torch.histc(x.float(), BINS, 0, 1) / x.numel() for x in (a, b)]
        distances.append((counts[0] - counts[1]).abs().sum() / 2)
    return float(torch.stack(distances).mean())


class CutDetector:
    """Tells, frame after frame, whether a frame starts a new shot (its state: the running level of the distance)."""

    def __init__(self) -> None:
        self.level: float | None = None
        """Running (exponential) average of the histogram distance between consecutive frames of this shot."""

    def is_cut(self, previous: torch.Tensor, current: torch.Tensor) -> bool:
        """Whether ``current`` ``[1, C, H, W]`` starts a new shot after ``previous``; updates the running level."""
        distance = histogram_distance(previous, current)
        threshold = MIN_DISTANCE if self.level is None else max(MIN_DISTANCE, LEVEL_RATIO * self.level)
        if distance > threshold:
            self.level = None
            return True
        self.level = distance if self.level is None else LEVEL_MEMORY * self.level + (1 - LEVEL_MEMORY) * distance
        return False
