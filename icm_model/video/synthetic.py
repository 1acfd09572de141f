"""A synthetic clip with known alpha: a textured disc moving over a textured, static background."""

from __future__ import annotations

import torch
import torch.nn.functional as F


def _texture(generator: torch.Generator, height: int, width: int, cell: int) -> torch.Tensor:
    """Smooth random colours ``[3, H, W]`` in [0, 1]: noise on a grid of ``cell`` pixels, bilinearly upsampled."""
    coarse = torch.rand(1, 3, height // cell + 2, width // cell + 2, generator=generator)
    return F.interpolate(coarse, size=(height, width), mode="bilinear", align_corners=False)[0]


def moving_object_clip(
    frames: int = 16,
    height: int = 96,
    width: int = 128,
    radius: float = 22.0,
    speed: tuple[float, float] = (3.0, 1.0),
    noise: float = 0.01,
    seed: int = 0,
) -> tuple[torch.Tensor, torch.Tensor]:
    """A disc with its own texture moving ``speed`` = ``(dx, dy)`` pixels per frame over a static background.

    Returns:
        ``(images [N, H, W, 3], alpha [N, H, W])`` in [0, 1] (channels last, as video frames come); the disc's edge is
        anti-aliased over one pixel, and every frame gets its own sensor noise of std ``noise``.
    """
    generator = torch.Generator().manual_seed(seed)
    background = _texture(generator, height, width, 8)
    pattern = _texture(generator, height, width, 6)
    ys, xs = torch.meshgrid(torch.arange(height, dtype=torch.float32), torch.arange(width, dtype=torch.float32),
                            indexing="ij")  # fmt: skip
    start_x, start_y = width / 2 - speed[0] * frames / 2, height / 2 - speed[1] * frames / 2
    images, alphas = [], []
    for t in range(frames):
        cx, cy = start_x + speed[0] * t, start_y + speed[1] * t
        alpha = (radius + 0.5 - ((xs - cx) ** 2 + (ys - cy) ** 2).sqrt()).clamp(0, 1)
        shift = (round(speed[1] * t), round(speed[0] * t))
        object_colours = torch.roll(pattern, shifts=shift, dims=(1, 2))
        image = alpha * object_colours + (1 - alpha) * background
        image = image + noise * torch.randn(image.shape, generator=generator)
        images.append(image.clamp(0, 1).movedim(0, -1))
        alphas.append(alpha)
    return torch.stack(images), torch.stack(alphas)
