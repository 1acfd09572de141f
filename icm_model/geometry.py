"""Letterboxing any image into the square working canvas and mapping results back to full resolution.

The official code centre-crops to a square, so users lose the edges of their images; we scale the whole image to fit
and pad the rest, never cropping.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch
import torch.nn.functional as F

IMAGE_PAD_VALUE = 0.5
"""Padding of images: mid grey (0 after the [-1, 1] normalisation), matched by nothing in particular."""


def resize(x: torch.Tensor, size: tuple[int, int]) -> torch.Tensor:
    """Bilinear resize of ``[B, C, H, W]``, antialiased when shrinking."""
    if tuple(x.shape[-2:]) == tuple(size):
        return x
    shrinking = size[0] < x.shape[-2] or size[1] < x.shape[-1]
    return F.interpolate(x, size=size, mode="bilinear", align_corners=False, antialias=shrinking)


@dataclass(frozen=True)
class Letterbox:
    """Where an image of ``height x width`` pixels sits, scaled to fit and centred, in a ``size x size`` canvas."""

    height: int
    width: int
    size: int
    top: int
    left: int
    content_height: int
    content_width: int

    @classmethod
    def fit(cls, height: int, width: int, size: int) -> Letterbox:
        scale = size / max(height, width)
        content_height = min(size, max(1, round(height * scale)))
        content_width = min(size, max(1, round(width * scale)))
        return cls(
            height,
            width,
            size,
            (size - content_height) // 2,
            (size - content_width) // 2,
            content_height,
            content_width,
        )

    def _place(self, x: torch.Tensor, pad_value: float) -> torch.Tensor:
        content = resize(x, (self.content_height, self.content_width))
        canvas = content.new_full((*x.shape[:-2], self.size, self.size), pad_value)
        canvas[..., self.top : self.top + self.content_height, self.left : self.left + self.content_width] = content
        return canvas

    def image(self, images: torch.Tensor) -> torch.Tensor:
        """``[B, C, height, width]`` -> ``[B, C, size, size]``, padded with mid grey."""
        return self._place(images, IMAGE_PAD_VALUE)

    def mask(self, masks: torch.Tensor) -> torch.Tensor:
        """``[B, height, width]`` in [0, 1] -> ``[B, size, size]``, padded with 0 (outside the RoI)."""
        return self._place(masks.unsqueeze(1), 0.0).squeeze(1)

    @property
    def upscales(self) -> bool:
        """Whether the source is larger than its region of the canvas (results are upsampled on the way back)."""
        return self.height > self.content_height or self.width > self.content_width

    def content(self, maps: torch.Tensor) -> torch.Tensor:
        """``[B, C, size, size]`` -> ``[B, C, content_height, content_width]``: the region the source fills."""
        return maps[..., self.top : self.top + self.content_height, self.left : self.left + self.content_width]

    def restore(self, maps: torch.Tensor) -> torch.Tensor:
        """``[B, C, size, size]`` -> ``[B, C, height, width]``: the content region, resized to the source size."""
        return resize(self.content(maps), (self.height, self.width))
