"""Input checks whose errors name the input and say what to do."""

from __future__ import annotations

import torch


class InputError(ValueError):
    """A bad input from the user (a file, a folder, an option, an image or mask): the message names the input and says
    what to do. The command line prints these as one line; any other exception is a bug and keeps its traceback."""


VALUE_SLOP = 1e-3
"""Images and masks may stray this far outside [0, 1] (resampling overshoot) before they are refused."""


def check_images(name: str, images: torch.Tensor) -> None:
    """``images`` must be ``[B, 3, H, W]`` floats in [0, 1] with B, H, W >= 1 and no NaN or infinity."""
    if not isinstance(images, torch.Tensor) or images.ndim != 4 or images.shape[1] != 3:
        shape = list(images.shape) if isinstance(images, torch.Tensor) else type(images).__name__
        raise InputError(f"{name} must be RGB images [batch, 3, height, width], got {shape}")
    if 0 in images.shape:
        raise InputError(f"{name} is empty (shape {list(images.shape)}): give at least one image of 1x1 pixels or more")
    if not images.is_floating_point():
        raise InputError(f"{name} must hold floats in [0, 1], got {images.dtype}")
    _check_values(name, images)


def check_masks(name: str, masks: torch.Tensor, images: torch.Tensor, images_name: str) -> None:
    """``masks`` ``[R, H, W]`` in [0, 1] must match ``images`` ``[R, 3, H, W]`` and mark part, not all, of each."""
    if not isinstance(masks, torch.Tensor) or masks.ndim != 3:
        shape = list(masks.shape) if isinstance(masks, torch.Tensor) else type(masks).__name__
        raise InputError(f"{name} must be masks [batch, height, width], got {shape}")
    if masks.shape[0] != images.shape[0]:
        raise InputError(
            f"{name} has {masks.shape[0]} masks for {images.shape[0]} images in {images_name}: give one mask per image"
        )
    if masks.shape[-2:] != images.shape[-2:]:
        raise InputError(
            f"{name} is {masks.shape[-1]}x{masks.shape[-2]} but {images_name} is {images.shape[-1]}x{images.shape[-2]} "
            "(width x height): a mask must have its image's size; resize or draw it on that image"
        )
    _check_values(name, masks.float())
    inside = masks > 0.5
    for index in range(masks.shape[0]):
        where = f"{name} #{index}" if masks.shape[0] > 1 else name
        if not inside[index].any():
            raise InputError(f"{where} is empty (no pixel above 0.5): mark the object on the reference image")
        if inside[index].all():
            raise InputError(
                f"{where} covers the whole image: mark only the object, so that the background "
                "tells the model what not to matte"
            )


def _check_values(name: str, x: torch.Tensor) -> None:
    if not torch.isfinite(x).all():
        raise InputError(f"{name} contains NaN or infinite values: check the node or file that produced it")
    low, high = float(x.min()), float(x.max())
    if low < -VALUE_SLOP or high > 1 + VALUE_SLOP:
        raise InputError(f"{name} must hold values in [0, 1], got {low:.3g}..{high:.3g}")
