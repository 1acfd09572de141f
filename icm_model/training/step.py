"""One training step of the matting head: frozen-U-Net features under no_grad, the decoder in train mode, the loss,
backward, Adam and the learning-rate schedule.

The official step (in_context_matting.py): features of reference and target with E = 4 noise copies at t = 200 and
fresh noise per image and forward; the reference guidance binarised (> 0.5); each target's inter-similarity from
its own reference's RoI; the matting head over the whole batch (BatchNorm batch statistics, running statistics
updated); total loss > 1e4 or NaN raises.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, fields

import torch
from torch import nn

from ..backbone.features import VAE_DOWNSCALE, Backbone, EnsembleFeatureExtractor, PerImageNoise, TargetFeatures
from ..decoder.model import Guidance, InContextDecoder
from ..decoder.similarity import roi_query, roi_token_mask
from ..pipeline import DEFAULT_ENSEMBLE, DEFAULT_TIMESTEP
from ..validation import InputError
from .losses import LossTerms, matting_loss
from .recipe import OFFICIAL, TrainingRecipe
from .schedule import build_optimizer, build_scheduler


@dataclass
class TrainingBatch:
    """B reference/target pairs of one square size ``H x H`` (a multiple of 32); target ``b`` is matted with its
    reference ``b``.

    Attributes:
        reference_image: ``[B, 3, H, W]`` in [-1, 1] (the official ``u8 / 127.5 - 1``); None when every target is
            matted against one fixed, already encoded query (fine-tuning, see :class:`TrainingForward`).
        reference_guidance: ``[B, 1, H, W]`` in [0, 1]: the reference's alpha; pixels > 0.5 form its RoI (None with
            ``reference_image``).
        target_image: ``[B, 3, H, W]`` in [-1, 1].
        alpha: ``[B, 1, H, W]`` in [0, 1], the target's ground truth.
        trimap: ``[B, 1, H, W]`` in {0, 0.5, 1}; 0.5 = unknown.
        segmentation: ``[B]`` bool, whether each target comes from a segmentation dataset (``kind`` routing only).
    """

    reference_image: torch.Tensor | None
    reference_guidance: torch.Tensor | None
    target_image: torch.Tensor
    alpha: torch.Tensor
    trimap: torch.Tensor
    segmentation: torch.Tensor | None = None

    def __post_init__(self) -> None:
        batch, _, height, width = self.target_image.shape
        for field in fields(self):
            value = getattr(self, field.name)
            if value is None:
                continue
            expected = (
                (batch,) if field.name == "segmentation" else (batch, 3 if "image" in field.name else 1, height, width)
            )
            if tuple(value.shape) != expected:
                raise ValueError(f"training batch: {field.name} must be {list(expected)}, got {list(value.shape)}")
        if height != width or height % 32:
            raise ValueError(
                f"training batch: images must be square and a multiple of 32 pixels on each side (the U-Net's token "
                f"grids), got {height}x{width}"
            )
        if (self.reference_image is None) != (self.reference_guidance is None):
            raise ValueError("training batch: give both reference_image and reference_guidance, or neither")

    def __len__(self) -> int:
        return self.target_image.shape[0]

    def to(self, device: torch.device | str) -> TrainingBatch:
        return TrainingBatch(
            *(None if v is None else v.to(device) for v in (getattr(self, f.name) for f in fields(self)))
        )


@dataclass(frozen=True)
class StepNoise:
    """The random draws of one training forward: fresh ensemble noise for every reference and every target."""

    reference: PerImageNoise
    target: PerImageNoise

    @classmethod
    def draw(
        cls, images: int, latent_size: int, ensemble: int = DEFAULT_ENSEMBLE, generator: torch.Generator | None = None
    ) -> StepNoise:
        """Draws reference posterior, reference diffusion, target posterior, target diffusion noise (the official
        order), each ``[images * ensemble, 4, latent_size, latent_size]``; from the global RNG when ``generator`` is
        None (official, T11)."""
        reference = PerImageNoise.draw_for(images, ensemble, latent_size, generator)
        return cls(reference, PerImageNoise.draw_for(images, ensemble, latent_size, generator))


def _one(target: TargetFeatures, b: int) -> TargetFeatures:
    pick = slice(b, b + 1)
    return TargetFeatures(
        target.correspondence[pick],
        (target.features[0][pick], target.features[1][pick]),
        (target.attention[0][pick], target.attention[1][pick]),
    )


class TrainingForward(nn.Module):
    """The training forward as one module (wrap it in DistributedDataParallel for several processes).

    Holds the decoder as its only submodule; the frozen backbone is a plain attribute, so ``parameters()`` and
    ``state_dict()`` are the decoder's (prefixed ``decoder.``).

    Args:
        backbone, decoder, timestep, max_batch: as :class:`HeadTrainer`'s.
        query: a fixed in-context query ``[K, C]`` (an encoded :class:`~icm_model.pipeline.ReferenceContext`) for
            every target, instead of each pair's own reference (fine-tuning on a user's reference).
        on_step: progress of the feature extraction (see :class:`EnsembleFeatureExtractor`); it may raise to cancel.
    """

    def __init__(
        self,
        backbone: Backbone,
        decoder: InContextDecoder,
        timestep: int = DEFAULT_TIMESTEP,
        max_batch: int = 8,
        query: torch.Tensor | None = None,
        on_step: Callable[[int], None] | None = None,
    ) -> None:
        super().__init__()
        self.decoder = decoder
        self.query = query
        self.extractor = EnsembleFeatureExtractor(backbone, timestep, max_batch, on_step)

    def forward(self, batch: TrainingBatch, noise: StepNoise, binarise_in_place: bool = False) -> torch.Tensor:
        """Predicted alpha ``[B, 1, H, W]`` in [0, 1], differentiable in the decoder's parameters.

        Features (no_grad, detached) come from images mapped to [0, 1]. Each target's inter-similarity comes from the
        fixed query, or from its own reference (:meth:`queries`).
        """
        queries = self.queries(batch, noise, binarise_in_place)
        with torch.no_grad():
            target = self.extractor.targets((batch.target_image + 1) / 2, noise.target)
        device = next(self.decoder.parameters()).device
        target = target.to(device)
        parts = [self.decoder.guidance(query.to(device), _one(target, b)) for b, query in enumerate(queries)]
        joined = Guidance(
            torch.cat([g.inter for g in parts]),
            (torch.cat([g.intra[0] for g in parts]), torch.cat([g.intra[1] for g in parts])),
        )
        alpha, _ = self.decoder.matte(joined, target, batch.target_image.to(device))
        return alpha

    def queries(self, batch: TrainingBatch, noise: StepNoise, binarise_in_place: bool = False) -> list[torch.Tensor]:
        """Per target, its in-context query ``[K_b, C]``: the fixed query, or its reference's features (no_grad)
        under the reference guidance binarised (> 0.5), inside ``batch.reference_guidance`` itself when
        ``binarise_in_place`` (official, T11).

        Raises:
            ValueError: a batch without references and no fixed query; a sample whose reference RoI covers no whole
                token of the correspondence grid (naming it).
        """
        if self.query is not None:
            return [self.query] * len(batch)
        if batch.reference_image is None or batch.reference_guidance is None:
            raise ValueError("training batch: reference_image and reference_guidance are needed without a fixed query")
        guidance = batch.reference_guidance
        if binarise_in_place:
            guidance.copy_((guidance > 0.5).to(guidance.dtype))
        else:
            guidance = (guidance > 0.5).to(guidance.dtype)
        with torch.no_grad():
            reference = self.extractor.correspondence((batch.reference_image + 1) / 2, noise.reference)
        tokens = roi_token_mask(guidance[:, 0], reference.shape[-2:]).to(reference.device)
        for b in range(len(batch)):
            if not tokens[b].any():
                cell = batch.reference_image.shape[-1] // reference.shape[-1]
                raise InputError(
                    f"training sample {b}: its reference guidance covers no whole {cell}x{cell}-pixel cell of the "
                    "feature grid; give it a reference whose object is larger, or leave the pair out"
                )
        return [roi_query(reference[b : b + 1], tokens[b : b + 1]) for b in range(len(batch))]


@dataclass
class StepResult:
    """What one optimiser step did.

    Attributes:
        loss: the total loss (before the update).
        terms: key -> the batch-reduced loss term.
        per_sample: per sample, key -> its terms.
        routes: per sample, ``matting`` or ``segmentation``.
        lr: the learning rate this step used.
        step: optimiser steps taken, this one included.
    """

    loss: float
    terms: dict[str, float]
    per_sample: list[dict[str, float]]
    routes: list[str]
    lr: float
    step: int


def check_loss(total: torch.Tensor, recipe: TrainingRecipe) -> None:
    """Raises ValueError for a NaN or infinite total, or one above ``recipe.max_loss`` (official: 1e4)."""
    value = float(total.detach())
    if not torch.isfinite(total) or (recipe.max_loss is not None and value > recipe.max_loss):
        raise InputError(
            f"training loss is {value} (limit {recipe.max_loss}): the run diverged or a sample is broken; lower the "
            "learning rate or check the batch's alpha and trimap"
        )


def convert_sync_batchnorm(decoder: InContextDecoder) -> InContextDecoder:
    """The decoder with every BatchNorm replaced by SyncBatchNorm (batch statistics over all DDP processes; the
    official code keeps them per process). Parameters and buffers are the same tensors; call it before
    :class:`HeadTrainer` builds the optimiser."""
    return nn.SyncBatchNorm.convert_sync_batchnorm(decoder)


class HeadTrainer:
    """Trains the decoder (matting head + in-context norm) against a frozen backbone.

    Args:
        backbone: the frozen U-Net/VAE (never trained; its features are computed under no_grad).
        decoder: the decoder to train in place; put in train mode, every parameter trainable.
        recipe: loss, schedule and quirk switches (default :data:`OFFICIAL`).
        ensemble: noise copies E per image (4).
        timestep: diffusion timestep t (200).
        total_steps: the run's length in optimiser steps (needed by decaying schedules).
        max_batch: most latents per U-Net call.
        query: a fixed in-context query ``[K, C]`` for every target (fine-tuning; see :class:`TrainingForward`).
        on_step: progress of the feature extraction; it may raise to cancel.
        wrap: optional wrapper of the :class:`TrainingForward` module, e.g. ``DistributedDataParallel``.

    Attributes:
        forward: the (possibly wrapped) :class:`TrainingForward`.
        optimizer, scheduler: Adam over the decoder's parameters and its LambdaLR.
    """

    def __init__(
        self,
        backbone: Backbone,
        decoder: InContextDecoder,
        recipe: TrainingRecipe = OFFICIAL,
        *,
        ensemble: int = DEFAULT_ENSEMBLE,
        timestep: int = DEFAULT_TIMESTEP,
        total_steps: int | None = None,
        max_batch: int = 8,
        query: torch.Tensor | None = None,
        on_step: Callable[[int], None] | None = None,
        wrap: Callable[[nn.Module], nn.Module] | None = None,
    ) -> None:
        self.recipe, self.ensemble, self.decoder = recipe, ensemble, decoder
        decoder.train()
        self.optimizer = build_optimizer(decoder, recipe)
        self.scheduler = build_scheduler(self.optimizer, recipe, total_steps)
        module = TrainingForward(backbone, decoder, timestep, max_batch, query, on_step)
        self.forward = wrap(module) if wrap is not None else module

    @property
    def steps(self) -> int:
        """Optimiser steps taken so far (the scheduler's count)."""
        return self.scheduler.last_epoch

    @property
    def lr(self) -> float:
        """The learning rate the next step uses."""
        return self.optimizer.param_groups[0]["lr"]

    def draw_noise(self, batch: TrainingBatch, generator: torch.Generator | None = None) -> StepNoise:
        """Fresh :class:`StepNoise` for ``batch`` (global RNG when ``generator`` is None)."""
        return StepNoise.draw(len(batch), batch.target_image.shape[-1] // VAE_DOWNSCALE, self.ensemble, generator)

    def loss(self, batch: TrainingBatch, noise: StepNoise | None = None) -> tuple[torch.Tensor, LossTerms]:
        """Forward and loss of one (micro-)batch, checked (:func:`check_loss`); backward is the caller's.

        ``noise``: the draws (default: fresh from the global RNG, the official behaviour).

        Returns:
            ``(prediction [B, 1, H, W], losses)``.
        """
        noise = noise if noise is not None else self.draw_noise(batch)
        prediction = self.forward(batch, noise, self.recipe.binarise_guidance_in_place)
        alpha, trimap = batch.alpha.to(prediction.device), batch.trimap.to(prediction.device)
        segmentation = None if batch.segmentation is None else batch.segmentation.tolist()
        losses = matting_loss(prediction, alpha, trimap, self.recipe, segmentation)
        check_loss(losses.total, self.recipe)
        return prediction, losses

    def apply(self) -> float:
        """Adam step on the accumulated gradients, then the schedule; returns the lr used. Clears the gradients."""
        lr = self.lr
        self.optimizer.step()
        self.scheduler.step()
        self.optimizer.zero_grad(set_to_none=True)
        return lr

    def step(self, batch: TrainingBatch, noise: StepNoise | None = None) -> StepResult:
        """One official iteration: zero_grad, forward, loss, backward, Adam step, scheduler step."""
        self.optimizer.zero_grad(set_to_none=True)
        _, losses = self.loss(batch, noise)
        losses.total.backward()
        lr = self.apply()
        return StepResult(
            float(losses.total.detach()),
            {key: float(value.detach()) for key, value in losses.terms.items()},
            [{key: float(value.detach()) for key, value in sample.items()} for sample in losses.per_sample],
            losses.routes,
            lr,
            self.steps,
        )
