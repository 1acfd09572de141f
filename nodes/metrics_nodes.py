"""Measuring a predicted alpha MASK against a ground-truth MASK with the paper's metrics, for tuning in a workflow."""

from __future__ import annotations

import torch

from ..icm_model.evaluation.evaluate import METRIC_NAMES
from ..icm_model.evaluation.metrics import MattingMetrics, alpha_to_255, compute_metrics
from ..icm_model.evaluation.report import markdown_table
from .common import CATEGORY, as_mask_batch

TRIMAP_BACKGROUND_BELOW = 0.25
TRIMAP_FOREGROUND_ABOVE = 0.75
TRIMAP_CONVENTION = (
    "Trimap MASK: 0 = background, 0.5 = unknown, 1 = foreground (values below 0.25 count as background, above 0.75 "
    "as foreground, the rest as unknown). The metrics are taken over the unknown pixels only."
)


def trimap_to_255(trimap: torch.Tensor) -> torch.Tensor:
    """A 0..1 trimap ``[H, W]`` -> 0 / 128 / 255 (see :data:`TRIMAP_CONVENTION`), float64."""
    trimap = trimap.double()
    out = torch.full_like(trimap, 128.0)
    out[trimap < TRIMAP_BACKGROUND_BELOW] = 0.0
    out[trimap > TRIMAP_FOREGROUND_ABOVE] = 255.0
    return out


def _masks(mask: torch.Tensor, name: str) -> torch.Tensor:
    """``mask`` as ``[B, H, W]`` float on the CPU, values checked to lie in 0..1 (within float slop)."""
    mask = as_mask_batch(mask, name).detach().cpu()
    try:
        alpha_to_255(mask)
    except ValueError as error:
        raise ValueError(f"{name} must be a MASK with values in 0..1: {error}") from error
    return mask


def _matching(mask: torch.Tensor, name: str, alpha: torch.Tensor) -> torch.Tensor:
    """``mask`` ``[1 or B, H, W]`` expanded to alpha's ``[B, H, W]``; errors name both inputs."""
    if mask.shape[-2:] != alpha.shape[-2:]:
        raise ValueError(
            f"{name} is {mask.shape[-1]}x{mask.shape[-2]} but alpha is {alpha.shape[-1]}x{alpha.shape[-2]} "
            "(width x height): measure masks of the same image size"
        )
    if mask.shape[0] not in (1, alpha.shape[0]):
        raise ValueError(
            f"{name} has {mask.shape[0]} masks for {alpha.shape[0]} in alpha: give one per alpha mask, or a single one "
            "for all of them"
        )
    return mask.expand_as(alpha)


def metrics_per_image(
    alpha: torch.Tensor, ground_truth: torch.Tensor, trimap: torch.Tensor | None
) -> list[MattingMetrics]:
    """Metrics of every alpha ``[B, H, W]`` in 0..1 against its ground truth (and trimap), all on the CPU."""
    results = []
    for index in range(alpha.shape[0]):
        region = None
        if trimap is not None:
            region = trimap_to_255(trimap[index])
            if not (region == 128.0).any():
                raise ValueError(
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


class IconMattingMetrics:
    """SAD, MSE, Grad and Conn of predicted alpha against ground truth, per image and on average."""

    DESCRIPTION = (
        "Measures predicted alpha against ground truth with the IconMatting paper's metrics (SAD, MSE, Grad, Conn; "
        "SAD, Grad and Conn divided by 1000), over a trimap's unknown region when one is connected, else the whole "
        "image. Batches give one value per image pair; the outputs are the batch means, and the report (also shown on "
        "the node) lists every image."
    )
    CATEGORY = CATEGORY
    OUTPUT_NODE = True
    RETURN_TYPES = ("FLOAT", "FLOAT", "FLOAT", "FLOAT", "STRING")
    RETURN_NAMES = ("sad", "mse", "grad", "conn", "report")
    OUTPUT_TOOLTIPS = (
        "Sum of absolute differences / 1000, mean over the batch (lower is better).",
        "Mean squared error, mean over the batch (lower is better).",
        "Gradient error / 1000, mean over the batch (lower is better).",
        "Connectivity error / 1000, mean over the batch (lower is better).",
        "Markdown table of the four metrics per image and their mean.",
    )
    FUNCTION = "measure"
    SEARCH_ALIASES = ["matting metrics", "evaluate matte", "SAD", "MSE", "alpha error"]

    @classmethod
    def INPUT_TYPES(cls):
        return {
            "required": {
                "alpha": ("MASK", {"tooltip": "Predicted alpha: 1 = foreground (Matting Head's alpha output)."}),
                "ground_truth": (
                    "MASK",
                    {"tooltip": "True alpha, 1 = foreground, same size as alpha; one per alpha mask or one for all."},
                ),
            },
            "optional": {
                "trimap": ("MASK", {"tooltip": TRIMAP_CONVENTION + " One per alpha mask or one for all."}),
            },
        }

    def measure(self, alpha, ground_truth, trimap=None):
        predicted = _masks(alpha, "alpha")
        truth = _matching(_masks(ground_truth, "ground_truth"), "ground_truth", predicted)
        region = None if trimap is None else _matching(_masks(trimap, "trimap"), "trimap", predicted)
        metrics = metrics_per_image(predicted, truth, region)
        text = report(metrics, "the whole image" if trimap is None else "the trimap's unknown pixels")
        return {"ui": {"text": [text]}, "result": (*mean_metrics(metrics).as_dict().values(), text)}
