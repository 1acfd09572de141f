"""Conversions between ComfyUI's tensor conventions and icm_model's, and the progress/interrupt hook."""

from __future__ import annotations

import comfy.model_management
import comfy.utils
import torch

CATEGORY = "IconMatting"
ALPHA_CONVENTION = (
    "Alpha MASK: 1 = foreground, at the image's full resolution. It goes straight into ImageCompositeMasked; core "
    "JoinImageWithAlpha expects the inverse (1 - alpha), like LoadImage's MASK."
)


def channels_first(images: torch.Tensor, name: str) -> torch.Tensor:
    """ComfyUI IMAGE ``[B, H, W, C]`` (C = 3, or 4 with an alpha that is dropped) -> ``[B, 3, H, W]`` float32."""
    if images.ndim != 4 or images.shape[-1] not in (3, 4):
        raise ValueError(f"{name} must be an IMAGE [batch, height, width, 3], got {list(images.shape)}")
    if 0 in images.shape:
        raise ValueError(
            f"{name} is an empty IMAGE batch (shape {list(images.shape)}): connect at least one image (check the "
            "node that feeds it, e.g. a folder loader that found no files or a video of 0 frames)"
        )
    return images[..., :3].movedim(-1, 1).float()


def channels_last(images: torch.Tensor) -> torch.Tensor:
    """``[B, C, H, W]`` -> ComfyUI IMAGE ``[B, H, W, C]`` on the intermediate device."""
    return images.movedim(1, -1).to(comfy.model_management.intermediate_device())


LOADIMAGE_EMPTY_MASK = (64, 64)
"""The MASK core LoadImage outputs for an image without alpha: 64x64 zeros."""


def as_mask_batch(mask: torch.Tensor, name: str) -> torch.Tensor:
    """ComfyUI MASK ``[H, W]`` or ``[B, H, W]`` -> ``[B, H, W]`` float32."""
    if mask.ndim == 2:
        mask = mask.unsqueeze(0)
    if mask.ndim != 3:
        raise ValueError(f"{name} must be a MASK [batch, height, width], got {list(mask.shape)}")
    if 0 in mask.shape:
        raise ValueError(f"{name} is empty (shape {list(mask.shape)}): connect a MASK of at least one 1x1 image")
    if tuple(mask.shape[-2:]) == LOADIMAGE_EMPTY_MASK and not mask.any():
        raise ValueError(
            f"{name} is LoadImage's empty 64x64 MASK: the image has no painted mask. Right-click the Load Image node, "
            "open the mask editor and paint the object, or load a mask file with Load Image (as Mask)"
        )
    return mask.float()


def prompt_embedding(clip=None, conditioning=None) -> torch.Tensor:
    """The text embedding ``[1, 77, width]`` of the empty prompt, from a CLIP or a ready CONDITIONING."""
    if conditioning is not None:
        embedding = conditioning[0][0]
    elif clip is not None:
        embedding = clip.encode_from_tokens_scheduled(clip.tokenize(""))[0][0]
    else:
        raise ValueError("connect the CLIP of the SD2.1 checkpoint (or an empty-prompt CONDITIONING)")
    if embedding.ndim != 3:
        raise ValueError(f"the prompt conditioning has shape {list(embedding.shape)}, not [1, 77, width]")
    return embedding[:1]


class NodeProgress:
    """The ComfyUI progress bar of one node run, planned in advance: ``total`` is the sum of the steps every part of
    the run will report (:func:`icm_model.pipeline.reference_steps`, :func:`~icm_model.pipeline.target_steps`,
    :data:`~icm_model.pipeline.HEAD_STEPS` per matting-head call), so the bar is full only when the work is done.

    Pass it as ``on_step``: the backbone ticks it after every VAE encode and U-Net block. Every call honours Cancel
    (raises ``InterruptProcessingException``), inside a U-Net pass too.
    """

    def __init__(self, total: int) -> None:
        comfy.model_management.throw_exception_if_processing_interrupted()
        self.bar = comfy.utils.ProgressBar(total)

    def __call__(self, steps: int = 1) -> None:
        comfy.model_management.throw_exception_if_processing_interrupted()
        self.bar.update(steps)


def cutouts(images: torch.Tensor, alpha: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """IMAGE ``[B, H, W, 3]`` and alpha ``[B, H, W]`` -> foreground on black ``[B, H, W, 3]`` and RGBA
    ``[B, H, W, 4]``."""
    alpha = alpha.to(images.device).unsqueeze(-1)
    rgb = images[..., :3]
    return rgb * alpha, torch.cat([rgb, alpha], dim=-1)
