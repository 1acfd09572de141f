"""Cut-outs: the foreground on black (premultiplied) and straight RGBA, from images and their alpha."""

from __future__ import annotations

from collections.abc import Callable

import torch

from .foreground import estimate_foreground
from .inputs import alpha_batch, broadcast, check_finite


def cut_out(
    images: torch.Tensor,
    alpha: torch.Tensor,
    method: str = "multiply",
    device: torch.device | None = None,
    on_step: Callable[[], None] | None = None,
    names: tuple[str, str] = ("image", "alpha"),
) -> tuple[torch.Tensor, torch.Tensor]:
    """Cut-outs of ``images`` ``[B, 3, H, W]`` in [0, 1] with ``alpha`` ``[H, W]`` or ``[B or 1, H, W]`` in [0, 1]
    (checked and clamped as :func:`~.inputs.checked_alpha` does; errors name the inputs by ``names``).

    The foreground colour is that of ``method`` (see :data:`~.foreground.FOREGROUND_METHODS`), estimated one image at a
    time on ``device`` (default: the images'); ``on_step`` is called before every image and after every sweep within
    one, so that raising from it cancels within one image.

    Returns:
        ``(premultiplied [B, 3, H, W], straight RGBA [B, 4, H, W])`` on the images' device, in their dtype.
    """
    image_name, alpha_name = names
    check_finite(images, image_name)
    count, height, width = images.shape[0], *images.shape[-2:]
    alpha = alpha_batch(alpha.to(images.device), height, width, alpha_name)
    if alpha.shape[0] not in (1, count):
        raise ValueError(
            f"{alpha_name} has {alpha.shape[0]} masks for {count} images in {image_name}: give one per image, or one "
            "for all"
        )
    alpha = broadcast(alpha, count).to(images.dtype)
    colours = images
    if method != "multiply":
        device = images.device if device is None else device
        estimates = []
        for index in range(count):
            if on_step is not None:
                on_step()
            image = images[index : index + 1].to(device, torch.float32)
            estimate = estimate_foreground(image, alpha[index : index + 1].to(device, torch.float32), method, on_step)
            estimates.append(estimate.to(images.device, images.dtype))
        colours = torch.cat(estimates)
    return colours * alpha, torch.cat([colours, alpha], dim=1)
