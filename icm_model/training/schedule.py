"""The optimiser and learning-rate schedule: Adam over exactly the decoder's trainable tensors, LambdaLR per step."""

from __future__ import annotations

import math

import torch
from torch import nn

from ..decoder.model import InContextDecoder
from ..validation import InputError
from .recipe import TrainingRecipe

OFFICIAL_CYCLE = 10**13
"""The official LambdaLinearScheduler's cycle length: after the warm-up its factor is 1 for 10**13 steps."""


def trainable_parameters(decoder: InContextDecoder) -> list[nn.Parameter]:
    """Every parameter of the decoder (50 tensors for the released architecture; with the 39 BatchNorm buffers they
    are the checkpoint's 89), in the official order: the detail decoder's first, then the in-context fusion's.

    Nothing of the U-Net or VAE is trainable; they are not part of the decoder.
    """
    named = list(decoder.named_parameters())
    detail = [p for name, p in named if name.startswith("head.detail.")]
    return detail + [p for name, p in named if not name.startswith("head.detail.")]


def build_optimizer(decoder: InContextDecoder, recipe: TrainingRecipe) -> torch.optim.Adam:
    """``Adam(lr = recipe.learning_rate)`` with PyTorch's defaults (betas 0.9/0.999, eps 1e-8, no weight decay) over
    :func:`trainable_parameters`, in one parameter group; every decoder parameter gets ``requires_grad``."""
    parameters = trainable_parameters(decoder)
    for parameter in parameters:
        parameter.requires_grad_(True)
    return torch.optim.Adam(parameters, lr=recipe.learning_rate)


def lr_factor(step: int, recipe: TrainingRecipe, total_steps: int | None = None) -> float:
    """The factor on the base learning rate at optimiser step ``step`` (0-based), in float64.

    Warm-up (``step < warmup_steps``): ``(1 - f0) / W * step + f0`` with ``f0 = recipe.warmup_start`` (the official
    LambdaLinearScheduler's formula and operation order). Then ``constant``: 1 (official, within its 10**13-step
    cycle); ``cosine``: ``0.5 * (1 + cos(pi * (step - W) / (total_steps - W)))``, reaching 0 at ``total_steps``.

    Raises:
        ValueError: a ``cosine`` recipe without ``total_steps`` > ``warmup_steps``.
    """
    warmup, start = recipe.warmup_steps, recipe.warmup_start
    if recipe.decay == "constant":
        step %= OFFICIAL_CYCLE
    if step < warmup:
        return (1.0 - start) / warmup * step + start
    if recipe.decay == "constant":
        return 1.0
    if total_steps is None or total_steps <= warmup:
        raise InputError(
            f"recipe {recipe.name!r} decays to 0 at the last step: give the run's total_steps (more than the "
            f"{warmup} warm-up steps), got {total_steps}"
        )
    progress = min(step - warmup, total_steps - warmup) / (total_steps - warmup)
    return 0.5 * (1.0 + math.cos(math.pi * progress))


def build_scheduler(
    optimizer: torch.optim.Optimizer, recipe: TrainingRecipe, total_steps: int | None = None
) -> torch.optim.lr_scheduler.LambdaLR:
    """``LambdaLR`` with :func:`lr_factor`, stepped once per optimiser step (the lr of step n is
    ``learning_rate * lr_factor(n)``: 4e-10 at step 0 for the official recipe)."""
    if recipe.decay == "cosine":
        lr_factor(recipe.warmup_steps, recipe, total_steps)  # refuses a missing total_steps now, not at step W
    return torch.optim.lr_scheduler.LambdaLR(optimizer, lambda step: lr_factor(step, recipe, total_steps))
