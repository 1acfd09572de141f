"""The trained in-context decoder: in-context similarity followed by the matting head."""

from __future__ import annotations

from dataclasses import dataclass

import torch
from torch import nn

from ..backbone.features import TargetFeatures
from .config import DecoderConfig
from .head import MattingHead
from .similarity import inter_similarity, intra_similarity


@dataclass
class Guidance:
    """What the in-context similarity tells the matting head about a batch of targets.

    Attributes:
        inter: inter-similarity S ``[B, 1, h, w]`` on the high grid, values in [0, K] for K query tokens.
        intra: intra-similarity maps ``[B, r, r, r*r]`` on the low and high grids.
    """

    inter: torch.Tensor
    intra: tuple[torch.Tensor, torch.Tensor]

    def to(self, device: torch.device | str) -> Guidance:
        return Guidance(self.inter.to(device), (self.intra[0].to(device), self.intra[1].to(device)))


class InContextDecoder(nn.Module):
    """Everything the IconMatting checkpoint holds: the query/target token norm and the matting head."""

    def __init__(self, config: DecoderConfig | None = None) -> None:
        super().__init__()
        self.config = config or DecoderConfig()
        self.token_norm = nn.LayerNorm(self.config.correspondence_channels)
        self.head = MattingHead(self.config)

    def guidance(self, query: torch.Tensor, target: TargetFeatures) -> Guidance:
        """Inter- then intra-similarity of the RoI query ``[K, C]`` against a batch of targets."""
        inter = inter_similarity(query, target.correspondence, self.token_norm)
        return Guidance(
            inter, (intra_similarity(inter, target.attention[0]), intra_similarity(inter, target.attention[1]))
        )

    def matte(
        self, guidance: Guidance, target: TargetFeatures, image: torch.Tensor
    ) -> tuple[torch.Tensor, torch.Tensor]:
        """Alpha ``[B, 1, H, W]`` in [0, 1] and the guidance preview ``[B, 1, H, W]``, for images in [-1, 1]."""
        return self.head(guidance.intra, target.features, image)
