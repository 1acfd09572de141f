"""Fine-tuning a trained decoder on a user's targets and good mattes against one encoded reference context.

The targets are letterboxed into the working canvas as for inference (:class:`~icm_model.geometry.Letterbox`); their
trimaps come from the mattes (:func:`trimaps`); every step takes fresh seeded noise. The decoder given is
never modified: a copy is trained.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Callable

import torch

from ..backbone.features import VAE_DOWNSCALE, Backbone, extraction_steps
from ..decoder.model import InContextDecoder
from ..geometry import Letterbox
from ..pipeline import DEFAULT_ENSEMBLE, DEFAULT_TIMESTEP
from ..validation import InputError
from .data import trimap_from_alpha
from .recipe import CORRECTED, TrainingRecipe
from .step import HeadTrainer, StepNoise, TrainingBatch

TRIMAP_BAND_DIVISOR = 64
"""The unknown band: the matte's soft pixels and edge dilated by ``working_size / 64`` pixels (12 at 768)."""
UNKNOWN_GREY = 128
"""The unknown value of a grey trimap (0, 128, 255)."""
WARMUP_FRACTION = 10
"""Fine-tuning warms up over the first tenth of its steps (at most the recipe's own warm-up)."""
HEAD_STEPS = 1
"""Progress steps of one matting-head forward, loss, backward and Adam step."""


def trimaps(alphas: torch.Tensor, radius: int) -> torch.Tensor:
    """Trimaps ``[B, 1, H, W]`` in {0, 0.5, 1} of alphas ``[B, 1, H, W]`` by the training data's rule
    (:func:`icm_model.training.data.trimap_from_alpha`: the soft pixels and the edge, dilated by ``radius``)."""
    raw = [torch.from_numpy(trimap_from_alpha(a[0].cpu().numpy(), radius)) for a in alphas]
    grey = torch.stack(raw).unsqueeze(1).to(alphas.device, torch.float32)
    return torch.where(grey == UNKNOWN_GREY, 0.5, grey / 255)


def fine_tune_recipe(recipe: TrainingRecipe, steps: int, learning_rate: float) -> TrainingRecipe:
    """``recipe`` at ``learning_rate`` with a warm-up of a tenth of ``steps`` (at most its own)."""
    warmup = min(recipe.warmup_steps, steps // WARMUP_FRACTION)
    return dataclasses.replace(recipe, learning_rate=learning_rate, warmup_steps=warmup)


def fine_tune_progress(backbone: Backbone, images: int, ensemble: int, steps: int, max_batch: int = 8) -> int:
    """The ``on_step`` calls :func:`fine_tune` makes: per step, the targets' U-Net work and the head's step."""
    return steps * (extraction_steps(backbone, images, ensemble, max_batch, with_attention=True) + HEAD_STEPS)


def copy_decoder(decoder: InContextDecoder) -> InContextDecoder:
    """A new decoder holding clones of ``decoder``'s tensors (ordinary tensors even when the source was made under
    ``torch.inference_mode``), on its device, in eval mode."""
    tensors = {key: value.clone() for key, value in decoder.state_dict().items()}
    device = next(iter(tensors.values())).device
    with torch.device(device):
        fresh = InContextDecoder(decoder.config)
    fresh.load_state_dict(tensors)
    return fresh.eval()


def fine_tune(
    backbone: Backbone,
    decoder: InContextDecoder,
    query: torch.Tensor,
    images: torch.Tensor,
    alphas: torch.Tensor,
    *,
    steps: int,
    learning_rate: float = 1e-4,
    recipe: TrainingRecipe = CORRECTED,
    ensemble: int = DEFAULT_ENSEMBLE,
    timestep: int = DEFAULT_TIMESTEP,
    seed: int = 0,
    max_batch: int = 8,
    on_step: Callable[[int], None] | None = None,
) -> tuple[InContextDecoder, list[float]]:
    """Trains a copy of ``decoder`` for ``steps`` steps on every target at once.

    Args:
        backbone: the frozen SD2.1 backbone (its weights are only read).
        decoder: the trained decoder to start from; it is not modified.
        query: the reference context's query ``[K, C]`` (:attr:`~icm_model.pipeline.ReferenceContext.query`).
        images: targets ``[B, 3, H, W]`` in [0, 1].
        alphas: their good mattes ``[B, H, W]`` in [0, 1] (soft mattes, or painted 0/1 masks).
        steps: optimiser steps.
        learning_rate: Adam's learning rate (the paper trains from scratch at 4e-4).
        recipe: the loss and schedule; warm-up shortened by :func:`fine_tune_recipe`.
        ensemble, timestep: as the reference was encoded.
        seed: of the noise drawn afresh at every step.
        on_step: progress, :func:`fine_tune_progress` calls in all; it may raise to cancel (the copy is dropped).

    Returns:
        ``(decoder, losses)``: the fine-tuned copy in eval mode without gradients, and the loss of every step.

    Raises:
        ValueError: mattes that do not match the images, or ``steps`` < 1.
    """
    if steps < 1:
        raise InputError(f"steps must be at least 1, got {steps}")
    if alphas.ndim != 3 or alphas.shape[0] != images.shape[0] or alphas.shape[-2:] != images.shape[-2:]:
        raise InputError(
            f"target_alpha {list(alphas.shape)} does not fit target_image {list(images.shape[-2:])} x "
            f"{images.shape[0]}: one matte per target, at the target's size"
        )
    size = decoder.config.working_size
    box = Letterbox.fit(images.shape[-2], images.shape[-1], size)
    with torch.inference_mode(False):  # ComfyUI runs nodes in inference mode; clones are ordinary tensors
        alpha = box.mask(alphas.float().clone().clamp(0, 1)).unsqueeze(1)
        trimap = trimaps(alpha, max(1, size // TRIMAP_BAND_DIVISOR))
        batch = TrainingBatch(None, None, box.image(images.float().clone()) * 2 - 1, alpha, trimap)
        trained = copy_decoder(decoder)
        trainer = HeadTrainer(
            backbone, trained, fine_tune_recipe(recipe, steps, learning_rate), ensemble=ensemble, timestep=timestep,
            total_steps=steps, max_batch=max_batch, query=query.clone(), on_step=on_step,
        )  # fmt: skip
        generator = torch.Generator().manual_seed(seed)
        losses = []
        for _ in range(steps):
            noise = StepNoise.draw(len(batch), size // VAE_DOWNSCALE, ensemble, generator)
            losses.append(trainer.step(batch, noise).loss)
            if on_step is not None:
                on_step(HEAD_STEPS)
    return trained.eval().requires_grad_(False), losses
