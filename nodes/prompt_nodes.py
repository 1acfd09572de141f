"""Marking the reference with points, scribbles and boxes, and correcting a target over several rounds."""

from __future__ import annotations

from dataclasses import replace

import torch

from ..icm_model.decoder.config import DecoderConfig
from ..icm_model.geometry import Letterbox
from ..icm_model.pipeline import CORRESPONDENCE_STRIDE, DEFAULT_EXTENSION_TOP_M
from ..icm_model.prompts.fingerprint import picture_fingerprint
from ..icm_model.prompts.marks_json import kjnodes_points, parse_marks, points_from_kjnodes
from ..icm_model.prompts.raster import rasterise
from ..icm_model.prompts.tokens import point_radius
from .common import CATEGORY, as_mask_batch, channels_first
from .reference_nodes import REFERENCE_TYPE, Reference
from .reference_prompt import PROMPT_TYPE, MarkedReference, encode_marked, temp_png

MARKS_TOOLTIP = (
    "The marks as JSON, drawn in the editor on the image: left click = a point on the object, right click (or "
    "Alt/Ctrl+click) = not the object; scribbles and boxes alike. Pixels of the image shown."
)
REFERENCE_WORKING_SIZE = DecoderConfig().working_size
"""Canvas size that sets the radius of rasterised points in the reference_mask output (SD2.1: 768)."""


def _first_mask(mask: torch.Tensor | None, image: torch.Tensor, name: str) -> torch.Tensor | None:
    """Mask 0 of a MASK batch as ``[H, W]``; None when absent or all zero (e.g. LoadImage's empty mask)."""
    if mask is None or not mask.any():
        return None
    first = as_mask_batch(mask, name)[0]
    if first.shape != image.shape[-2:]:
        raise ValueError(
            f"{name} is {first.shape[-1]}x{first.shape[-2]} but the image is {image.shape[-1]}x{image.shape[-2]}: "
            "paint the mask on this image"
        )
    return first.cpu()


def _overlay(image: torch.Tensor, alpha: torch.Tensor) -> torch.Tensor:
    """``[H, W, 3]`` with the matte tinted green (the previous run's alpha, for the correction editor)."""
    tint = torch.tensor([0.1, 0.9, 0.2], device=image.device)
    alpha = alpha.to(image.device).unsqueeze(-1) * 0.45
    return image[..., :3] * (1 - alpha) + tint * alpha


class IconMattingReferencePrompt:
    """Points, scribbles and boxes (positive and negative) drawn on the reference, plus an optional mask."""

    DESCRIPTION = (
        "Mark the object on the reference image: click points, draw scribbles or boxes (left = object, right = not "
        "the object), optionally with a painted mask. Feed reference_prompt to Encode Reference Context. Points and "
        "scribbles select every feature cell they touch, boxes and the mask the cells entirely inside; negative marks "
        "remove the cells they touch."
    )
    CATEGORY = CATEGORY
    RETURN_TYPES = (PROMPT_TYPE, "STRING", "STRING", "MASK")
    RETURN_NAMES = ("reference_prompt", "positive_points", "negative_points", "reference_mask")
    OUTPUT_TOOLTIPS = (
        "The marks, for Encode Reference Context's reference_prompt.",
        'All positive points as KJNodes Points Editor JSON ([{"x": 10, "y": 20}, ...]), for point-prompt nodes.',
        "All negative points as KJNodes Points Editor JSON.",
        "The marks rasterised (1 = object: mask, positive boxes, points, scribbles, minus the negative marks).",
    )
    FUNCTION = "mark"
    SEARCH_ALIASES = ["points editor", "click prompt", "scribble", "box prompt", "mark object", "reference marks"]

    @classmethod
    def INPUT_TYPES(cls):
        points = (
            "STRING",
            {"forceInput": True, "tooltip": "More {sign} points as KJNodes Points Editor JSON, merged with the marks."},
        )
        return {
            "required": {
                "reference_image": ("IMAGE", {"tooltip": "The reference image; the marks are on image 0."}),
                "marks": ("STRING", {"default": "", "multiline": True, "tooltip": MARKS_TOOLTIP}),
                "extension_top_m": (
                    "INT",
                    {
                        "default": DEFAULT_EXTENSION_TOP_M,
                        "min": 0,
                        "max": 64,
                        "tooltip": "Reference-prompt extension (paper 3.6): for every cell a point or scribble "
                        "touches, add the m cells it attends to most in the reference. 0 = off.",
                    },
                ),
            },
            "optional": {
                "mask": ("MASK", {"tooltip": "A positive mask (1 = object), e.g. painted in LoadImage's editor."}),
                "positive_points": (points[0], {**points[1], "tooltip": points[1]["tooltip"].format(sign="positive")}),
                "negative_points": (points[0], {**points[1], "tooltip": points[1]["tooltip"].format(sign="negative")}),
            },
        }

    def mark(self, reference_image, marks, extension_top_m, mask=None, positive_points="", negative_points=""):
        image = channels_first(reference_image, "reference_image")[0]
        height, width = image.shape[-2:]
        fingerprint = picture_fingerprint(image)
        prompt = parse_marks(marks, height, width, "marks", fingerprint)
        more = points_from_kjnodes(positive_points, True, "positive_points", height, width)
        more += points_from_kjnodes(negative_points, False, "negative_points", height, width)
        prompt = prompt.merged(more).with_mask(_first_mask(mask, image, "mask"))
        box = Letterbox.fit(height, width, REFERENCE_WORKING_SIZE)
        raster = rasterise(prompt, point_radius(box, REFERENCE_WORKING_SIZE // CORRESPONDENCE_STRIDE))
        outputs = (
            MarkedReference(prompt, extension_top_m),
            kjnodes_points(prompt, True),
            kjnodes_points(prompt, False),
            raster.unsqueeze(0),
        )
        shown = {**temp_png(reference_image[0], "iconmatting_reference"), "fingerprint": fingerprint}
        return {"ui": {"iconmatting_image": [shown]}, "result": outputs}


class IconMattingCorrection:
    """One round of corrections on one target: the corrected target joins the reference context."""

    DESCRIPTION = (
        "Correct one target after a run: click or scribble on it (left = object the matte missed, right = where it "
        "leaked). That target's previous alpha (> 0.5) plus the positive marks, minus the negative marks, becomes "
        "one more reference of the context. Rerun the targets with the new reference; chain another Correct Target "
        "for another round."
    )
    CATEGORY = CATEGORY
    RETURN_TYPES = (REFERENCE_TYPE,)
    RETURN_NAMES = ("reference",)
    OUTPUT_TOOLTIPS = ("The reference context with the corrected target as one more reference.",)
    FUNCTION = "correct"
    SEARCH_ALIASES = ["correct matte", "refine", "fix alpha", "interactive matting", "correction"]

    @classmethod
    def INPUT_TYPES(cls):
        return {
            "required": {
                "reference": (REFERENCE_TYPE, {"tooltip": "The reference context the targets were matted with."}),
                "target_image": ("IMAGE", {"tooltip": "The targets of the last run."}),
                "previous_alpha": (
                    "MASK",
                    {
                        "tooltip": "The alpha of the last run (Matting Head's alpha, 1 = foreground): all targets, or "
                        "only the corrected one."
                    },
                ),  # fmt: skip
                "target_index": (
                    "INT",
                    {"default": 0, "min": 0, "max": 4095, "tooltip": "Which target is corrected (0 = the first)."},
                ),
                "marks": ("STRING", {"default": "", "multiline": True, "tooltip": f"{MARKS_TOOLTIP} On the target."}),
            }
        }

    def correct(self, reference: Reference, target_image, previous_alpha, target_index, marks):
        images = channels_first(target_image, "target_image")
        if not 0 <= target_index < images.shape[0]:
            raise ValueError(
                f"target_index {target_index} is not a target: target_image has {images.shape[0]} images "
                f"(0..{images.shape[0] - 1})"
            )
        if previous_alpha.ndim == 2:
            previous_alpha = previous_alpha.unsqueeze(0)
        if previous_alpha.ndim != 3 or previous_alpha.shape[0] not in (1, images.shape[0]):
            raise ValueError(
                f"previous_alpha has shape {list(previous_alpha.shape)}: wire the alpha MASK the last run gave these "
                f"{images.shape[0]} targets (or that of the corrected target alone)"
            )
        alpha = previous_alpha[target_index if previous_alpha.shape[0] > 1 else 0].float().cpu()
        image = images[target_index : target_index + 1]
        height, width = image.shape[-2:]
        if alpha.shape != (height, width):
            raise ValueError(
                f"previous_alpha is {alpha.shape[-1]}x{alpha.shape[-2]} but target {target_index} is {width}x{height}: "
                "wire the alpha this target got in the last run (Matting Head's alpha)"
            )
        fingerprint = picture_fingerprint(image[0])
        prompt = parse_marks(marks, height, width, "marks", fingerprint).with_mask(alpha)
        context, ui = encode_marked(
            reference.backbone, image, [prompt], reference.iconmatting_model.working_size, extension_top_m=0,
            timestep=reference.context.timestep, ensemble=reference.ensemble, seed=reference.seed,
            name="the correction (previous_alpha > 0.5 plus the positive marks, minus the negative ones)",
        )  # fmt: skip
        corrected = replace(reference, context=reference.context.union(context))
        overlay = temp_png(_overlay(target_image[target_index], alpha), "iconmatting_correction")
        ui["iconmatting_image"] = [{**overlay, "fingerprint": fingerprint}]  # of the target, not of its overlay
        return {"ui": {"text": [corrected.summary()], **ui}, "result": (corrected,)}
