"""Training the IconMatting decoder (matting head + in-context norm) against the frozen SD2.1 backbone.

:mod:`.recipe` (the official behaviour and a corrected one), :mod:`.losses` (LossFunction2), :mod:`.schedule`
(Adam and the warm-up), :mod:`.step` (one training iteration). See TRAINING_NOTES.md for the official facts.
"""

from .losses import LossTerms, laplacian_pyramid, matting_loss
from .recipe import CORRECTED, OFFICIAL, TrainingRecipe, recipe_by_name
from .schedule import build_optimizer, build_scheduler, lr_factor, trainable_parameters
from .step import HeadTrainer, StepNoise, StepResult, TrainingBatch, TrainingForward, check_loss, convert_sync_batchnorm

__all__ = [
    "CORRECTED",
    "OFFICIAL",
    "HeadTrainer",
    "LossTerms",
    "StepNoise",
    "StepResult",
    "TrainingBatch",
    "TrainingForward",
    "TrainingRecipe",
    "build_optimizer",
    "build_scheduler",
    "check_loss",
    "convert_sync_batchnorm",
    "laplacian_pyramid",
    "lr_factor",
    "matting_loss",
    "recipe_by_name",
    "trainable_parameters",
]
