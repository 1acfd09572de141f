"""Pictures of the in-context similarity (paper Fig. 10): heat maps over the target image."""

from __future__ import annotations

import torch

from .decoder.model import Guidance
from .geometry import Letterbox

# Anchor colours of a perceptually ordered dark-blue -> cyan -> yellow -> red map (0, 0.25, 0.5, 0.75, 1).
_ANCHORS = torch.tensor(
    [[0.19, 0.07, 0.23], [0.16, 0.59, 0.96], [0.45, 0.99, 0.38], [0.98, 0.73, 0.22], [0.48, 0.02, 0.01]]
)


def heatmap(values: torch.Tensor) -> torch.Tensor:
    """Colours ``[B, 1, H, W]`` values in [0, 1] as ``[B, 3, H, W]`` RGB in [0, 1]."""
    position = values.clamp(0, 1).squeeze(1) * (len(_ANCHORS) - 1)
    low = position.floor().long().clamp(max=len(_ANCHORS) - 2)
    weight = (position - low).unsqueeze(-1)
    anchors = _ANCHORS.to(values.device)
    rgb = anchors[low] * (1 - weight) + anchors[low + 1] * weight
    return rgb.permute(0, 3, 1, 2)


def normalise(maps: torch.Tensor) -> torch.Tensor:
    """Each map ``[B, 1, h, w]`` divided by its own maximum, so its peak is 1."""
    return maps / maps.amax(dim=(1, 2, 3), keepdim=True).clamp_min(1e-12)


def similarity_maps(guidance: Guidance) -> tuple[torch.Tensor, torch.Tensor]:
    """The inter-similarity S and the propagated intra-similarity on the high grid, ``[B, 1, r, r]`` each in [0, 1].

    The intra picture sums each query token's row of S_l: how much the object, as the target's own attention sees
    it, points at that token.
    """
    intra = guidance.intra[1].sum(dim=-1).unsqueeze(1)
    return normalise(guidance.inter), normalise(intra)


def overlay(images: torch.Tensor, maps: torch.Tensor, letterbox: Letterbox, opacity: float = 0.6) -> torch.Tensor:
    """Heat maps ``[B, 1, r, r]`` over the canvas, mapped back onto images ``[B, 3, H, W]``; result in [0, 1]."""
    canvas_maps = torch.nn.functional.interpolate(
        maps.float(), size=(letterbox.size, letterbox.size), mode="bilinear", align_corners=False
    )
    colours = letterbox.restore(heatmap(canvas_maps).to(images.device))
    return (images * (1 - opacity) + colours * opacity).clamp(0, 1)
