"""Training recipes: every switch that decides how the official training behaves, and the two named recipes.

``official`` reproduces the official training code including its quirks (TRAINING_NOTES T1-T6, T10-T11);
``corrected`` keeps its losses and optimiser but does what the official code evidently meant. The quality gain of
``corrected`` over ``official`` on real data is unmeasured.
"""

from __future__ import annotations

from dataclasses import dataclass

from ..validation import InputError

ROUTINGS = ("values", "kind")
SEGMENTATION_LOSSES = ("smooth_l1", "l1")
BATCH_REDUCTIONS = ("sum", "mean")
DECAYS = ("constant", "cosine")


@dataclass(frozen=True)
class TrainingRecipe:
    """How one training run computes its loss, schedules its learning rate and draws its data.

    Attributes:
        name: the recipe's name (``official``, ``corrected`` or a user's).
        routing: which samples take the segmentation loss. ``values`` (official, T1): a target whose alpha is all 0
            or all 1; a binary mask with both values is trained as matting. ``kind``: the sample's dataset kind
            (the ``segmentation`` flag of the batch); without flags, a target whose alpha holds only 0 and 1.
        area_constant: ``C`` of the region terms, ``C * sum(region * err) / (H * W * sum(region))``. 262144 (= 512**2,
            official, T2) makes them region means times ``262144 / (H * W)``; None makes them true region means.
        segmentation_loss: ``smooth_l1`` (official, T3: smooth L1 with beta 1, i.e. ``0.5 * d**2`` on [0, 1]) or a
            true ``l1`` on the known region.
        segmentation_key: the loss-dict key of the segmentation term; the official code logs it as
            ``known_l1_loss`` (T3), mixed with the matting samples' known-region L1.
        batch_reduction: ``sum`` (official, T4) or ``mean`` of each term over the batch's samples.
        learning_rate: Adam's base learning rate (4e-4).
        warmup_steps: linear warm-up length in optimiser steps (250).
        warmup_start: learning-rate factor at step 0 (official 1e-6, T5: lr 4e-10 at the first step).
        decay: after the warm-up, ``constant`` (official, T5: never decayed) or ``cosine`` to 0 at the run's last step.
        shuffle: draw the training items in a random order each epoch (official: a fixed order).
        independent_interpolation: resize image and alpha with separately drawn interpolations (official, T6);
            False: one draw for both.
        self_pairing: a target may be its own reference in groups of one or two items (official, T7).
        binarise_guidance_in_place: binarise the reference guidance (> 0.5) inside the batch tensor (official, T11)
            rather than in a copy.
        max_loss: a total loss above this raises ValueError (official 1e4); NaN or infinity always raises.
    """

    name: str
    routing: str
    area_constant: float | None
    segmentation_loss: str
    segmentation_key: str
    batch_reduction: str
    learning_rate: float
    warmup_steps: int
    warmup_start: float
    decay: str
    shuffle: bool
    independent_interpolation: bool
    self_pairing: bool
    binarise_guidance_in_place: bool
    max_loss: float | None

    def __post_init__(self) -> None:
        for field, value, allowed in (
            ("routing", self.routing, ROUTINGS),
            ("segmentation_loss", self.segmentation_loss, SEGMENTATION_LOSSES),
            ("batch_reduction", self.batch_reduction, BATCH_REDUCTIONS),
            ("decay", self.decay, DECAYS),
        ):
            if value not in allowed:
                raise InputError(f"recipe {self.name!r}: {field} must be one of {allowed}, got {value!r}")
        if self.warmup_steps < 0 or self.learning_rate <= 0:
            raise InputError(f"recipe {self.name!r}: warmup_steps must be >= 0 and learning_rate > 0")


OFFICIAL = TrainingRecipe(
    name="official",
    routing="values",
    area_constant=262144.0,
    segmentation_loss="smooth_l1",
    segmentation_key="known_l1_loss",
    batch_reduction="sum",
    learning_rate=4e-4,
    warmup_steps=250,
    warmup_start=1e-6,
    decay="constant",
    shuffle=False,
    independent_interpolation=True,
    self_pairing=True,
    binarise_guidance_in_place=True,
    max_loss=1e4,
)
"""The official training (eval.yaml's model section, LossFunction2, LambdaLinearScheduler), quirks included."""

CORRECTED = TrainingRecipe(
    name="corrected",
    routing="kind",
    area_constant=None,
    segmentation_loss="l1",
    segmentation_key="segmentation_l1_loss",
    batch_reduction="mean",
    learning_rate=4e-4,
    warmup_steps=250,
    warmup_start=1 / 250,
    decay="cosine",
    shuffle=True,
    independent_interpolation=False,
    self_pairing=False,
    binarise_guidance_in_place=False,
    max_loss=None,
)
"""The official losses and optimiser with the quirks corrected: routing by dataset kind, region means, a true L1 for
segmentation under its own key, batch means, a warm-up starting at 1/250 (not 1e-6) then cosine decay, shuffling,
one interpolation for image and alpha, no self-pairing, the batch left untouched."""

RECIPES = {recipe.name: recipe for recipe in (OFFICIAL, CORRECTED)}


def recipe_by_name(name: str) -> TrainingRecipe:
    """The named recipe (``official`` or ``corrected``).

    Raises:
        ValueError: naming the known recipes.
    """
    try:
        return RECIPES[name]
    except KeyError:
        raise InputError(f"unknown training recipe {name!r}; choose one of {sorted(RECIPES)}") from None
