"""Ground-truth cases for the compositing tests and ``bench/compositing.py``: scikit-image photos composed over each
other with a known soft alpha, the metrics of the matting literature, and Forte & Pitie's published blur fusion.

Every image is ``[1, 3, H, W]`` and every alpha ``[1, 1, H, W]``, float32 in [0, 1].
"""

from __future__ import annotations

from collections.abc import Callable

import cv2
import numpy as np
import torch
from scipy import ndimage
from skimage import data

from icm_model.compositing import composite
from icm_model.geometry import Letterbox, resize

# --- images and alphas -----------------------------------------------------------------------------------------------


def photo(name: str, height: int, width: int) -> torch.Tensor:
    """The scikit-image sample photo ``name`` (``astronaut``, ``coffee``, ``chelsea``...) stretched to the size."""
    pixels = torch.from_numpy(getattr(data, name)().astype(np.float32) / 255)
    return resize(pixels.permute(2, 0, 1).unsqueeze(0).contiguous(), (height, width)).clamp(0, 1)


def flat(colour: tuple[float, float, float], height: int, width: int) -> torch.Tensor:
    return torch.tensor(colour).view(1, 3, 1, 1).expand(1, 3, height, width).clone()


def _grid(height: int, width: int) -> tuple[torch.Tensor, torch.Tensor]:
    """Pixel centres relative to the image centre, ``[H, W]`` each."""
    rows, columns = torch.meshgrid(torch.arange(height) + 0.5, torch.arange(width) + 0.5, indexing="ij")
    return rows - height / 2, columns - width / 2


def soft_disc(height: int, width: int, edge: float = 4.0, wavy: bool = True) -> torch.Tensor:
    """A disc (wavy: seven bumps) whose alpha ramps linearly from 0 to 1 over ``edge`` pixels."""
    y, x = _grid(height, width)
    radius = min(height, width) / 3 + (min(height, width) / 20 * torch.sin(7 * torch.atan2(y, x)) if wavy else 0)
    return ((radius - (x * x + y * y).sqrt()) / edge + 0.5).clamp(0, 1).view(1, 1, height, width)


def strands(height: int, width: int, count: int = 60, seed: int = 0) -> torch.Tensor:
    """Hair-like alpha: ``count`` curved strands 0.6-2.5 px wide (anti-aliased) hanging from a disc."""
    generator = np.random.default_rng(seed)
    rows, columns = np.mgrid[0:height, 0:width].astype(np.float32)
    alpha = soft_disc(height, width, wavy=False)[0, 0].numpy()
    for _ in range(count):
        top, left = generator.uniform(0.1, 0.5) * height, generator.uniform(0.2, 0.8) * width
        slope, bend, thickness = (
            generator.uniform(-0.5, 0.5),
            generator.uniform(-2, 2) / height,
            generator.uniform(0.6, 2.5),
        )
        length = generator.uniform(0.3, 0.5) * height
        centre = left + (rows - top) * slope + bend * (rows - top) ** 2
        coverage = np.clip(thickness / 2 - np.abs(columns - centre) + 0.5, 0, 1) * (
            (rows > top) & (rows < top + length)
        )
        alpha = np.maximum(alpha, coverage)
    return torch.from_numpy(alpha).view(1, 1, height, width)


# --- upsampling ------------------------------------------------------------------------------------------------------

UpsamplingCase = Callable[[int, int], tuple[torch.Tensor, torch.Tensor]]


def _over(alpha: torch.Tensor, foreground: torch.Tensor, background: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    return alpha, composite(foreground, alpha, background)


LOW_CONTRAST_CASES: dict[str, UpsamplingCase] = {
    "flat, same colour": lambda h, w: _over(
        soft_disc(h, w), flat((0.55, 0.45, 0.35), h, w), flat((0.55, 0.45, 0.35), h, w)
    ),
    "flat, 2 % apart": lambda h, w: _over(
        soft_disc(h, w), flat((0.55, 0.45, 0.35), h, w), flat((0.57, 0.47, 0.37), h, w)
    ),
    "photo, same colour (coffee)": lambda h, w: _over(soft_disc(h, w), photo("coffee", h, w), photo("coffee", h, w)),
    "photo, 3 % tint (coffee)": lambda h, w: _over(
        soft_disc(h, w), 0.94 * photo("coffee", h, w) + 0.03, photo("coffee", h, w)
    ),
}
"""Edges the image does not show: the object has the background's colour (or nearly)."""

CONTRASTING_CASES: dict[str, UpsamplingCase] = {
    "photo over photo (astronaut, coffee)": lambda h, w: _over(
        soft_disc(h, w), photo("astronaut", h, w), photo("coffee", h, w)
    ),
    "strands, dark on light": lambda h, w: _over(
        strands(h, w), flat((0.15, 0.1, 0.05), h, w), flat((0.85, 0.8, 0.7), h, w)
    ),
    "strands, photo over photo (chelsea, coffee)": lambda h, w: _over(
        strands(h, w), 0.5 * photo("chelsea", h, w), photo("coffee", h, w)
    ),
}
"""Edges the image shows."""


def working_inputs(alpha: torch.Tensor, image: torch.Tensor, working: int) -> tuple[torch.Tensor, torch.Tensor]:
    """A perfect matte and the image as the matting head sees them: letterboxed content of a ``working`` canvas."""
    box = Letterbox.fit(*alpha.shape[-2:], working)
    size = (box.content_height, box.content_width)
    return resize(alpha, size), resize(image, size)


# --- metrics ---------------------------------------------------------------------------------------------------------


def sad(estimate: torch.Tensor, truth: torch.Tensor) -> float:
    """Sum of absolute differences, in thousands (as matting benchmarks report it)."""
    return float((estimate.double() - truth.double()).abs().sum()) / 1000


def gradient_error(estimate: torch.Tensor, truth: torch.Tensor) -> float:
    """Rhemann et al.'s gradient error: squared difference of Gaussian-derivative gradient magnitudes (sigma 1.4),
    summed, in thousands."""
    magnitudes = [ndimage.gaussian_gradient_magnitude(x[0, 0].double().numpy(), 1.4) for x in (estimate, truth)]
    return float(((magnitudes[0] - magnitudes[1]) ** 2).sum()) / 1000


# --- foreground colours ----------------------------------------------------------------------------------------------


def forte_blur_fusion(image: np.ndarray, alpha: np.ndarray) -> np.ndarray:
    """Forte & Pitie 2021's published blur fusion (``FB_blur_fusion_foreground_estimator_2`` of their FBA Matting
    code), re-implemented with their ``cv2.blur`` calls: kernel sizes 90, then 6. ``[H, W, 3]``, ``[H, W]`` ->
    ``[H, W, 3]``, float64 in [0, 1]."""

    def step(foreground, background, alpha, size):
        blurred_alpha = cv2.blur(alpha, (size, size))[..., None]
        blurred_foreground = cv2.blur(foreground * alpha, (size, size)) / (blurred_alpha + 1e-5)
        blurred_background = cv2.blur(background * (1 - alpha), (size, size)) / ((1 - blurred_alpha) + 1e-5)
        foreground = blurred_foreground + alpha * (
            image - alpha * blurred_foreground - (1 - alpha) * blurred_background
        )
        return np.clip(foreground, 0, 1), blurred_background

    alpha = alpha[..., None]
    foreground, background = step(image, image, alpha, 90)
    return step(foreground, background, alpha, 6)[0]


def motion_blurred(height: int, width: int, length: int = 41) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """Chelsea's disc moving horizontally over coffee (a ``length``-pixel box blur of colour x alpha and of alpha):
    ``(foreground, alpha, old background)``; the foreground is the blurred colour x alpha over the blurred alpha."""
    disc = soft_disc(height, width, edge=1.0, wavy=False)
    colour = photo("chelsea", height, width)
    kernel = torch.ones(1, 1, 1, length) / length
    blur = lambda x: torch.nn.functional.conv2d(x.transpose(0, 1), kernel, padding=(0, length // 2)).transpose(0, 1)  # noqa: E731
    alpha = blur(disc)
    foreground = (blur(colour * disc) / alpha.clamp(min=1e-6)).clamp(0, 1)
    return torch.where(alpha > 1e-6, foreground, colour), alpha, photo("coffee", height, width)


def glass(height: int, width: int) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """A pale blue glass (alpha 0.4 inside a 3 px soft rim, 1 on the rim) over coffee."""
    outer = soft_disc(height, width, 3.0, wavy=False)
    y, x = _grid(height, width)
    inner = ((min(height, width) / 3 - 6 - (x * x + y * y).sqrt()) / 3 + 0.5).clamp(0, 1).view(1, 1, height, width)
    alpha = outer - 0.6 * inner
    return flat((0.75, 0.85, 0.95), height, width), alpha, photo("coffee", height, width)


def hair(height: int, width: int) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """Chelsea's colours on hair-like strands over coffee."""
    return photo("chelsea", height, width), strands(height, width), photo("coffee", height, width)


FOREGROUND_CASES = {"motion blur": motion_blurred, "glass": glass, "hair-like strands": hair}
"""``(foreground, alpha, old background)`` of a size."""


def background_share(estimate: torch.Tensor, foreground: torch.Tensor, alpha: torch.Tensor, old: torch.Tensor) -> float:
    """How much of the old background's colour a foreground estimate keeps in the soft pixels: its composite's error
    on a new (green) background over the error of the plain cut-out (the image's own colour, 1 by definition; 0 is
    clean)."""
    new = torch.tensor([0.1, 0.9, 0.2]).view(1, 3, 1, 1)
    truth = composite(foreground, alpha, new)
    image = composite(foreground, alpha, old)
    soft = ((alpha > 0.02) & (alpha < 0.98)).expand_as(truth)
    error = (composite(estimate, alpha, new) - truth).abs()[soft].mean()
    plain = (composite(image, alpha, new) - truth).abs()[soft].mean()
    return float(error / plain)
