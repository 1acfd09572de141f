"""U-Net features of a batch of target images, as the in-context decoder consumes them."""

from __future__ import annotations

from dataclasses import dataclass

import torch


@dataclass
class TargetFeatures:
    """Frozen-U-Net features of B target images, averaged over the noise ensemble.

    Attributes:
        correspondence: ``[B, C, h, w]`` feature matched against the reference (up-block 1 output, high grid).
        features: matting features ``([B, C0, r0, r0], [B, C1, r1, r1])``: up-block 0 and up-block 1 outputs.
        attention: self-attention ``([B, r0, r0, r0*r0], [B, r1, r1, r1*r1])`` on the low and high grids, averaged
            over heads and layers; rows sum to 1.
    """

    correspondence: torch.Tensor
    features: tuple[torch.Tensor, torch.Tensor]
    attention: tuple[torch.Tensor, torch.Tensor]
