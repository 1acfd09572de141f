"""Measuring a predicted alpha MASK against a ground-truth MASK with the paper's metrics, for tuning in a workflow."""

from __future__ import annotations

from ..icm_model.evaluation.mask_metrics import TRIMAP_CONVENTION, measure_masks
from .common import CATEGORY, as_mask_batch


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
        masks = [None if m is None else as_mask_batch(m, name) for m, name in
                 ((alpha, "alpha"), (ground_truth, "ground_truth"), (trimap, "trimap"))]  # fmt: skip
        measured = measure_masks(*masks)
        return {"ui": {"text": [measured.report]}, "result": (*measured.mean.as_dict().values(), measured.report)}
