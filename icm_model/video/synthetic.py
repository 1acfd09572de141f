"""Synthetic clips with known alpha: a textured disc over a textured background, or a photo object over a photo."""

from __future__ import annotations

import math
from dataclasses import dataclass

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


@dataclass(frozen=True)
class Motion:
    """How an object moves per frame: ``shift`` = ``(dx, dy)`` pixels, ``turn`` degrees (clockwise on screen, about
    its centre), ``growth`` = scale factor."""

    shift: tuple[float, float] = (0.0, 0.0)
    turn: float = 0.0
    growth: float = 1.0


@dataclass(frozen=True)
class PhotoClip:
    """A rendered clip with exact ground truth.

    Attributes:
        frames: ``[N, 3, H, W]`` in [0, 1] (channels first, as the stabiliser takes them).
        alpha: ``[N, H, W]`` in [0, 1], the object's true (visible) alpha.
        noisy_alpha: ``[N, H, W]`` in [0, 1], an imperfect matte of every frame: the object's edge moved in or out by
            a random amount per frame (edge jitter), plus per-pixel noise.
    """

    frames: torch.Tensor
    alpha: torch.Tensor
    noisy_alpha: torch.Tensor


SUPERSAMPLE = 4
"""Photo clips are rendered at this many times their resolution and area-averaged, as a camera integrates light over
its pixels: both frames of a pair are then low-passed alike, whatever the sub-pixel motion."""


def _blob(x: torch.Tensor, y: torch.Tensor, radius: float, softness: float, offset: float = 0.0) -> torch.Tensor:
    """Soft alpha in [0, 1] of a three-lobed blob at object coordinates ``(x, y)`` (pixels from its centre): 1 inside,
    0 outside, a linear ramp ``softness`` pixels wide across its boundary
    ``r = radius (1 + 0.15 cos 3 phi) + offset``."""
    boundary = radius * (1 + 0.15 * torch.cos(3 * torch.atan2(y, x))) + offset
    return (0.5 + (boundary - torch.hypot(x, y)) / softness).clamp(0, 1)


def _fine_grid(height: int, width: int) -> tuple[torch.Tensor, torch.Tensor]:
    """Positions ``(x, y)`` ``[SUPERSAMPLE * H, SUPERSAMPLE * W]`` of the sub-pixel samples of an ``H x W`` frame, in
    the frame's pixel coordinates (pixel centres at integers)."""
    offsets = lambda size: (torch.arange(size * SUPERSAMPLE, dtype=torch.float32) + 0.5) / SUPERSAMPLE - 0.5  # noqa: E731
    ys, xs = torch.meshgrid(offsets(height), offsets(width), indexing="ij")
    return xs, ys


def _area(image: torch.Tensor) -> torch.Tensor:
    """``image`` ``[..., SUPERSAMPLE * H, SUPERSAMPLE * W]`` averaged over each pixel's samples: ``[..., H, W]``."""
    flat = image.reshape(-1, 1, *image.shape[-2:])
    return F.avg_pool2d(flat, SUPERSAMPLE).reshape(*image.shape[:-2], *(n // SUPERSAMPLE for n in image.shape[-2:]))


def _sample(photo: torch.Tensor, x: torch.Tensor, y: torch.Tensor) -> torch.Tensor:
    """``photo`` ``[3, SUPERSAMPLE * h, SUPERSAMPLE * w]`` (an ``h x w`` picture at the render resolution) sampled
    bilinearly at the picture's pixel positions ``x, y`` ``[H', W']`` (borders repeat): ``[3, H', W']``."""
    height, width = photo.shape[-2:]
    fine_x, fine_y = (x + 0.5) * SUPERSAMPLE - 0.5, (y + 0.5) * SUPERSAMPLE - 0.5
    grid = torch.stack([fine_x * 2 / (width - 1) - 1, fine_y * 2 / (height - 1) - 1], dim=-1)
    return F.grid_sample(photo[None], grid[None], mode="bilinear", padding_mode="border", align_corners=True)[0]


def _object_coordinates(
    x: torch.Tensor, y: torch.Tensor, centre: tuple[float, float], angle: float, scale: float
) -> tuple[torch.Tensor, torch.Tensor]:
    """Frame positions ``x, y`` in the coordinates of an object at ``centre``, turned by ``angle`` degrees and grown
    by ``scale``: rotated and shrunk back about its centre."""
    cos, sin = math.cos(math.radians(angle)), math.sin(math.radians(angle))
    dx, dy = x - centre[0], y - centre[1]
    return (cos * dx + sin * dy) / scale, (-sin * dx + cos * dy) / scale


def moved_photo(photo: torch.Tensor, shift: tuple[float, float], angle: float, scale: float) -> torch.Tensor:
    """``photo`` ``[3, SUPERSAMPLE * H, SUPERSAMPLE * W]`` moved as a whole: turned by ``angle`` degrees and grown by
    ``scale`` about its centre, then shifted by ``shift`` = ``(dx, dy)`` pixels; rendered at ``[3, H, W]``.

    The exact backward flow (where every pixel of the result was in the unmoved, ``angle`` 0, ``scale`` 1 render) is
    ``_object_coordinates(x, y, centre + shift, angle, scale) + centre - (x, y)``.
    """
    height, width = photo.shape[-2] // SUPERSAMPLE, photo.shape[-1] // SUPERSAMPLE
    centre = ((width - 1) / 2, (height - 1) / 2)
    xs, ys = _fine_grid(height, width)
    u, v = _object_coordinates(xs, ys, (centre[0] + shift[0], centre[1] + shift[1]), angle, scale)
    return _area(_sample(photo, u + centre[0], v + centre[1]))


def photo_clip(
    background: torch.Tensor,
    foreground: torch.Tensor,
    frames: int = 10,
    motion: Motion = Motion(),
    radius: float = 24.0,
    softness: float = 3.0,
    occluder: torch.Tensor | None = None,
    cut_to: torch.Tensor | None = None,
    noise: float = 0.01,
    edge_jitter: float = 0.6,
    matte_noise: float = 0.08,
    seed: int = 0,
) -> PhotoClip:
    """A soft-edged object with a photo's texture moving by ``motion`` over a static photo ``background``.

    Pictures are given at ``SUPERSAMPLE`` times their size in the clip (:func:`skimage_photo` with ``SUPERSAMPLE``).

    Args:
        background: ``[3, SUPERSAMPLE * H, SUPERSAMPLE * W]`` in [0, 1]; sets the clip's size ``H x W``.
        foreground: ``[3, SUPERSAMPLE * h, SUPERSAMPLE * w]`` in [0, 1], the object's texture: its centre is the
            object's centre, and it moves, turns and grows with the object.
        occluder: like ``background``, the texture of an opaque vertical bar (a fifth of the clip's width, 1.5 px soft
            edges) that crosses the clip from left to right in front of the object.
        cut_to: like ``background``, another background: from the middle frame on, the clip cuts to it. The object
            (continuing its motion) is a quarter of the clip's width left of centre before the cut, right after it.
        noise: std of every frame's own sensor noise.
        edge_jitter, matte_noise: std of ``noisy_alpha``'s per-frame edge offset (pixels) and per-pixel noise.
    """
    generator = torch.Generator().manual_seed(seed)
    height, width = background.shape[-2] // SUPERSAMPLE, background.shape[-1] // SUPERSAMPLE
    xs, ys = _fine_grid(height, width)
    texture_centre = ((foreground.shape[-1] / SUPERSAMPLE - 1) / 2, (foreground.shape[-2] / SUPERSAMPLE - 1) / 2)
    images, alphas, noisy = [], [], []
    for t in range(frames):
        cx = (width - 1) / 2 + motion.shift[0] * (t - frames / 2)
        cy = (height - 1) / 2 + motion.shift[1] * (t - frames / 2)
        scene = background
        if cut_to is not None:
            cut = t >= frames // 2
            cx, scene = cx + (width / 4 if cut else -width / 4), cut_to if cut else background
        scale = motion.growth**t
        u, v = _object_coordinates(xs, ys, (cx, cy), motion.turn * t, scale)
        alpha = _blob(u, v, radius, softness / scale)
        offset = edge_jitter * float(torch.randn((), generator=generator))
        estimate = _blob(u, v, radius, softness / scale, offset / scale)
        colours = _sample(foreground, u + texture_centre[0], v + texture_centre[1])
        image = alpha * colours + (1 - alpha) * _sample(scene, xs, ys)
        if occluder is not None:
            left = -width / 5 + (width * 6 / 5) * t / max(frames - 1, 1)
            bar = ((xs - left + 0.75) / 1.5).clamp(0, 1) * ((left + width / 5 - xs + 0.75) / 1.5).clamp(0, 1)
            image = bar * _sample(occluder, xs - left, ys) + (1 - bar) * image
            alpha, estimate = alpha * (1 - bar), estimate * (1 - bar)
        image, alpha, estimate = _area(image), _area(alpha), _area(estimate)
        images.append((image + noise * torch.randn(image.shape, generator=generator)).clamp(0, 1))
        alphas.append(alpha)
        noisy.append((estimate + matte_noise * torch.randn(alpha.shape, generator=generator)).clamp(0, 1))
    return PhotoClip(torch.stack(images), torch.stack(alphas), torch.stack(noisy))


def skimage_photo(name: str, height: int, width: int) -> torch.Tensor:
    """The scikit-image sample photo ``name`` (``skimage.data.<name>()``, RGB) as ``[3, height, width]`` in [0, 1]:
    its centre, cropped to the aspect ratio and area-averaged to the size. Needs scikit-image (the ``test`` extra)."""
    try:
        import skimage.data
    except ModuleNotFoundError as error:
        raise ModuleNotFoundError("the photo clips need scikit-image: pip install -e '.[test]'") from error

    photo = torch.from_numpy(getattr(skimage.data, name)()).float().div(255).movedim(-1, 0)
    rows, cols = photo.shape[-2:]
    keep_rows, keep_cols = min(rows, round(cols * height / width)), min(cols, round(rows * width / height))
    top, left = (rows - keep_rows) // 2, (cols - keep_cols) // 2
    crop = photo[:, top : top + keep_rows, left : left + keep_cols]
    return F.interpolate(crop[None], size=(height, width), mode="area")[0]


def stability_clips(frames: int = 10, height: int = 96, width: int = 144, seed: int = 0) -> dict[str, PhotoClip]:
    """The stabiliser's test clips: scikit-image's chelsea as a soft-edged object over coffee, with sub-pixel drift,
    rotation, scaling, an occluder (rocket) crossing it, and a cut (to astronaut) at frame ``frames // 2``; ``seed``
    draws the sensor noise and the noisy mattes."""
    photo = lambda name: skimage_photo(name, height * SUPERSAMPLE, width * SUPERSAMPLE)  # noqa: E731
    background, cat = photo("coffee"), skimage_photo("chelsea", 80 * SUPERSAMPLE, 120 * SUPERSAMPLE)
    return {
        "drift": photo_clip(background, cat, frames, Motion(shift=(0.7, 0.4)), seed=seed),
        "rotation": photo_clip(background, cat, frames, Motion(turn=3), seed=seed),
        "scaling": photo_clip(background, cat, frames, Motion(growth=1.03), seed=seed),
        "occlusion": photo_clip(background, cat, frames, Motion(shift=(0.3, 0.2)), occluder=photo("rocket"), seed=seed),
        "cut": photo_clip(background, cat, frames, Motion(shift=(0.7, 0.4)), cut_to=photo("astronaut"), seed=seed),
    }
