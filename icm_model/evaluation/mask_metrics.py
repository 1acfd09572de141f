"""The paper's metrics of a batch of predicted alpha masks in 0..1 against ground truth (and a 0..1 trimap): per image,
their mean, and a Markdown report. What the Matting Metrics node shows, without ComfyUI."""

from __future__ import annotations

from dataclasses import dataclass

import torch

from ..validation import InputError
from .evaluate import METRIC_NAMES
from .metrics import MattingMetrics, alpha_to_255, compute_metrics
from .report import markdown_table

TRIMAP_BACKGROUND_BELOW = 0.25
TRIMAP_FOREGROUND_ABOVE = 0.75
TRIMAP_CONVENTION = (
    "Trimap MASK: 0 = background, 0.5 = unknown, 1 = foreground (values below 0.25 count as background, above 0.75 "
    "as foreground, the rest as unknown). The metrics are taken over the unknown pixels only."
)


@dataclass(frozen=True)
class MaskMeasurement:
    """Metrics of every image of a batch, their mean, and the report listing both."""

    per_image: list[MattingMetrics]
    mean: MattingMetrics
    report: str


def trimap_to_255(trimap: torch.Tensor) -> torch.Tensor:
    """A 0..1 trimap ``[H, W]`` -> 0 / 128 / 255 (see :data:`TRIMAP_CONVENTION`), float64."""
    trimap = trimap.double()
    out = torch.full_like(trimap, 128.0)
    out[trimap < TRIMAP_BACKGROUND_BELOW] = 0.0
    out[trimap > TRIMAP_FOREGROUND_ABOVE] = 255.0
    return out


def checked_masks(mask: torch.Tensor, name: str) -> torch.Tensor:
    """``mask`` ``[B, H, W]`` on the CPU, its values checked to lie in 0..1 (within float slop)."""
    mask = mask.detach().cpu()
    try:
        alpha_to_255(mask)
    except ValueError as error:
        raise InputError(f"{name} must be a MASK with values in 0..1: {error}") from error
    return mask


def matching(mask: torch.Tensor, name: str, alpha: torch.Tensor) -> torch.Tensor:
    """``mask`` ``[1 or B, H, W]`` expanded to alpha's ``[B, H, W]``; errors name ``name`` and alpha."""
    if mask.shape[-2:] != alpha.shape[-2:]:
        raise InputError(
            f"{name} is {mask.shape[-1]}x{mask.shape[-2]} but alpha is {alpha.shape[-1]}x{alpha.shape[-2]} "
            "(width x height): measure masks of the same image size"
        )
    if mask.shape[0] not in (1, alpha.shape[0]):
        raise InputError(
            f"{name} has {mask.shape[0]} masks for {alpha.shape[0]} in alpha: give one per alpha mask, or a single one "
            "for all of them"
        )
    return mask.expand_as(alpha)


def metrics_per_image(
    alpha: torch.Tensor, ground_truth: torch.Tensor, trimap: torch.Tensor | None
) -> list[MattingMetrics]:
    """Metrics of every alpha ``[B, H, W]`` in 0..1 against its ground truth (and trimap) of the same shape."""
    results = []
    for index in range(alpha.shape[0]):
        region = None
        if trimap is not None:
            region = trimap_to_255(trimap[index])
            if not (region == 128.0).any():
                raise InputError(
                    f"trimap #{index} has no unknown pixels (values between {TRIMAP_BACKGROUND_BELOW} and "
                    f"{TRIMAP_FOREGROUND_ABOVE}): fix it, or disconnect trimap to measure the whole image"
                )
        results.append(compute_metrics(alpha_to_255(alpha[index]), alpha_to_255(ground_truth[index]), region))
    return results


def mean_metrics(metrics: list[MattingMetrics]) -> MattingMetrics:
    """The mean of each metric over a non-empty list."""
    return MattingMetrics(**{name: sum(getattr(m, name) for m in metrics) / len(metrics) for name in METRIC_NAMES})


def report(metrics: list[MattingMetrics], region: str) -> str:
    """A Markdown table: one row per image (``#`` from 0), then the mean; ``region`` says where they were taken."""
    rows = [(index, *m.as_dict().values()) for index, m in enumerate(metrics)]
    rows.append(("mean", *mean_metrics(metrics).as_dict().values()))
    table = markdown_table(("#", "SAD", "MSE", "Grad", "Conn"), rows)
    return f"{table}\n\nOver {region}. SAD, Grad and Conn are divided by 1000 (paper section 4.2)."


def measure_masks(
    alpha: torch.Tensor, ground_truth: torch.Tensor, trimap: torch.Tensor | None = None
) -> MaskMeasurement:
    """Metrics of predicted alpha ``[B, H, W]`` in 0..1 against ``ground_truth`` ``[1 or B, H, W]`` in 0..1, over the
    unknown pixels of ``trimap`` ``[1 or B, H, W]`` (:data:`TRIMAP_CONVENTION`) or the whole image without one."""
    predicted = checked_masks(alpha, "alpha")
    truth = matching(checked_masks(ground_truth, "ground_truth"), "ground_truth", predicted)
    region = None if trimap is None else matching(checked_masks(trimap, "trimap"), "trimap", predicted)
    per_image = metrics_per_image(predicted, truth, region)
    text = report(per_image, "the whole image" if trimap is None else "the trimap's unknown pixels")
    return MaskMeasurement(per_image, mean_metrics(per_image), text)
