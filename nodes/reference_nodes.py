"""Marking the object once: reference prompts and the reusable reference context."""

from __future__ import annotations

from dataclasses import dataclass, replace

from ..icm_model.pipeline import (
    DEFAULT_ENSEMBLE,
    DEFAULT_TIMESTEP,
    ReferenceContext,
    encode_reference,
    reference_steps,
)
from ..icm_model.prompts.marks import box_mask, parse_points, points_mask
from .comfy_backbone import ComfyBackbone
from .common import CATEGORY, NodeProgress, as_mask_batch, channels_first, prompt_embedding
from .model_nodes import MODEL_TYPE, IconMattingModel
from .reference_prompt import PROMPT_TYPE, MarkedReference, encode_prompted_reference

REFERENCE_TYPE = "ICON_MATTING_REFERENCE"
PROMPT_TYPES = {"mask": "inside", "box": "inside", "points": "touched", "scribble": "touched"}
SEED_INPUT = (
    "INT",
    {
        "default": 0,
        "min": 0,
        "max": 0xFFFFFFFFFFFFFFFF,
        "tooltip": "Seed of the noise ensemble. The same seed gives the same result.",
    },
)
ENSEMBLE_INPUT = (
    "INT",
    {
        "default": DEFAULT_ENSEMBLE,
        "min": 1,
        "max": 16,
        "tooltip": "Noisy copies averaged per image (paper: 4). More is smoother and slower.",
    },
)
TIMESTEP_INPUT = (
    "INT",
    {
        "default": DEFAULT_TIMESTEP,
        "min": 0,
        "max": 999,
        "tooltip": "Diffusion timestep of the features (paper: 200). Targets use the same one.",
    },
)
SD_INPUTS = {
    "model": ("MODEL", {"tooltip": "Stable Diffusion 2.1 768-v from Load Checkpoint. It is never modified."}),
    "vae": ("VAE", {"tooltip": "The VAE of the same SD2.1 checkpoint."}),
}
ICON_MATTING_MODEL_INPUT = (MODEL_TYPE, {"tooltip": "From Load IconMatting Model."})
PROMPT_TYPE_INPUT = (list(PROMPT_TYPES), {"default": "mask", "tooltip": (
    "mask / box: feature cells entirely inside the mask form the query. "
    "points / scribble: every cell the mark touches.")})  # fmt: skip
PROMPT_INPUTS = {
    "clip": ("CLIP", {"tooltip": "The CLIP of the SD2.1 checkpoint, for the empty prompt."}),
    "empty_conditioning": ("CONDITIONING", {"tooltip": "Instead of CLIP: an empty-prompt SD2.1 conditioning."}),
}


@dataclass
class Reference:
    """What flows on an ICON_MATTING_REFERENCE wire: the encoded query and the means to encode targets alike."""

    context: ReferenceContext
    backbone: ComfyBackbone
    iconmatting_model: IconMattingModel
    ensemble: int = DEFAULT_ENSEMBLE
    """Ensemble size and seed the reference was encoded with: corrections encode the corrected target alike."""
    seed: int = 0

    def summary(self) -> str:
        tokens = [int(mask.sum()) for mask in self.context.token_masks]
        return (
            f"{len(tokens)} reference(s), {sum(tokens)} query tokens ({', '.join(map(str, tokens))}); "
            f"timestep {self.context.timestep}; canvas {self.context.working_size}px"
        )


class EncodeReferenceContext:
    """Encodes the marked object once; every target and video frame is then matted against it."""

    DESCRIPTION = (
        "Encodes the object marked on the reference image(s) as the in-context query, once. Several reference "
        "images (a batch, one mask each) form one query: the union of their marked regions."
    )
    CATEGORY = CATEGORY
    RETURN_TYPES = (REFERENCE_TYPE,)
    RETURN_NAMES = ("reference",)
    OUTPUT_TOOLTIPS = ("The reference context: reuse it for any number of targets.",)
    FUNCTION = "encode"
    SEARCH_ALIASES = [
        "remove background", "background removal", "cutout", "alpha matte", "matting", "in-context matting",
        "reference mask", "mark object",
    ]  # fmt: skip

    @classmethod
    def INPUT_TYPES(cls):
        return {
            "required": {
                "iconmatting_model": ICON_MATTING_MODEL_INPUT,
                **SD_INPUTS,
                "reference_image": ("IMAGE", {"tooltip": "The image(s) on which the object is marked."}),
                "prompt_type": PROMPT_TYPE_INPUT,
                "timestep": TIMESTEP_INPUT,
                "ensemble_size": ENSEMBLE_INPUT,
                "seed": SEED_INPUT,
            },
            "optional": {
                "reference_mask": (
                    "MASK",
                    {
                        "tooltip": "1 = the object, one mask per reference image, same size. "
                        "A mask painted in LoadImage's mask editor works as is. Wire this or reference_prompt."
                    },
                ),
                **PROMPT_INPUTS,
                "reference_prompt": (
                    PROMPT_TYPE,
                    {
                        "tooltip": "Marks from Reference Prompt (points, scribbles, boxes, a mask) on the reference "
                        "image. With it, reference_mask and prompt_type are ignored."
                    },
                ),
            },
        }

    def encode(self, iconmatting_model, model, vae, reference_image, reference_mask=None, prompt_type="mask",
               timestep=DEFAULT_TIMESTEP, ensemble_size=DEFAULT_ENSEMBLE, seed=0, clip=None, empty_conditioning=None,
               reference_prompt: MarkedReference | None = None):  # fmt: skip
        if reference_prompt is None and reference_mask is None:
            raise ValueError(
                "wire reference_prompt (from Reference Prompt, to click, scribble or box the object) or reference_mask"
            )
        backbone = ComfyBackbone(model, vae, prompt_embedding(clip, empty_conditioning))
        if reference_prompt is None:
            reference = encode_reference_context(
                iconmatting_model, backbone, reference_image, reference_mask, prompt_type, timestep, ensemble_size, seed
            )
            return {"ui": {"text": [reference.summary()]}, "result": (reference,)}
        images = channels_first(reference_image, "reference_image")
        context, ui = encode_prompted_reference(
            backbone, images, reference_prompt, iconmatting_model.working_size, timestep, ensemble_size, seed
        )
        reference = Reference(context, backbone, iconmatting_model, ensemble_size, seed)
        return {"ui": {"text": [reference.summary()], **ui}, "result": (reference,)}


def encode_reference_context(iconmatting_model, backbone: ComfyBackbone, reference_image, reference_mask, prompt_type,
                             timestep, ensemble_size, seed, on_step=None):  # fmt: skip
    """What Encode Reference Context outputs, encoded with ``backbone`` (the SD2.1 MODEL, VAE and empty prompt);
    ``on_step`` (default: a progress bar planned over the reference passes, :func:`~icm_model.pipeline.reference_steps`)
    is ticked after every VAE encode and U-Net block and may raise to cancel. Returns a :class:`Reference`."""
    images = channels_first(reference_image, "reference_image")
    context = encode_reference(
        backbone, images, as_mask_batch(reference_mask, "reference_mask"), iconmatting_model.working_size,
        timestep=timestep, ensemble=ensemble_size, seed=seed,
        on_step=on_step or NodeProgress(reference_steps(backbone, images.shape[0], ensemble_size)),
        rule=PROMPT_TYPES[prompt_type],
    )  # fmt: skip
    return Reference(context, backbone, iconmatting_model, ensemble_size, seed)


class IconMattingCombineReferences:
    """One query from two reference contexts (references of different sizes, or added later)."""

    DESCRIPTION = "Combines two reference contexts into one: the union of their marked regions (paper Table 6)."
    CATEGORY = CATEGORY
    RETURN_TYPES = (REFERENCE_TYPE,)
    RETURN_NAMES = ("reference",)
    OUTPUT_TOOLTIPS = ("One reference context whose query holds the marked regions of both.",)
    FUNCTION = "combine"
    SEARCH_ALIASES = ["multiple references", "merge references", "several references"]

    @classmethod
    def INPUT_TYPES(cls):
        def reference(tooltip):
            return (REFERENCE_TYPE, {"tooltip": tooltip})

        return {
            "required": {
                "reference_a": reference(
                    "A reference context (Encode Reference Context). Its SD model is used for the targets."
                ),
                "reference_b": reference(
                    "Another reference context, encoded with the same SD2.1 model, timestep and IconMatting model."
                ),
            }
        }

    def combine(self, reference_a: Reference, reference_b: Reference):
        if reference_b.backbone.identity != reference_a.backbone.identity:
            raise ValueError(
                "reference_b was encoded with another SD model than reference_a (other weights, or the same weights "
                "with other patches such as a LoRA): their features cannot be compared. Wire the same MODEL output "
                "into the model input of both Encode Reference Context (or Correct Target) chains"
            )
        if reference_b.iconmatting_model.fingerprint != reference_a.iconmatting_model.fingerprint:
            raise ValueError(
                f"reference_b was encoded for another IconMatting model ({reference_b.iconmatting_model.describe()}) "
                f"than reference_a ({reference_a.iconmatting_model.describe()}): wire the same Load IconMatting Model "
                "node into both Encode Reference Context nodes"
            )
        try:
            context = reference_a.context.union(reference_b.context)
        except ValueError as error:
            raise ValueError(f"reference_b does not fit reference_a: {error}") from error
        combined = replace(reference_a, context=context)
        return {"ui": {"text": [combined.summary()]}, "result": (combined,)}


class IconMattingPointsToMask:
    """Points (KJNodes Points Editor JSON) as a reference mask."""

    DESCRIPTION = (
        'Draws clicked points as a reference mask. Reads the KJNodes Points Editor JSON ([{"x": 10, "y": 20}, ...], '
        "pixel coordinates of the image), as SAM-style point-prompt nodes do. Use prompt_type 'points' in Encode "
        "Reference Context."
    )
    CATEGORY = CATEGORY
    RETURN_TYPES = ("MASK",)
    RETURN_NAMES = ("reference_mask",)
    OUTPUT_TOOLTIPS = ("1 inside the discs around the positive points, minus the negative ones; one per image.",)
    FUNCTION = "draw"
    SEARCH_ALIASES = ["points to mask", "point prompt", "click prompt", "points editor"]

    @classmethod
    def INPUT_TYPES(cls):
        return {
            "required": {
                "reference_image": ("IMAGE", {"tooltip": "The image the points were placed on (for its size)."}),
                "positive_points": ("STRING", {"multiline": True, "default": "[]", "tooltip": "Points on the object."}),
                "radius": ("INT", {"default": 12, "min": 1, "max": 512, "tooltip": "Disc radius in pixels."}),
            },
            "optional": {
                "negative_points": (
                    "STRING",
                    {
                        "multiline": True,
                        "default": "[]",
                        "tooltip": "Points that are not the object: cut out of the mask.",
                    },
                ),
            },
        }

    def draw(self, reference_image, positive_points, radius, negative_points="[]"):
        images = channels_first(reference_image, "reference_image")
        height, width = images.shape[-2:]
        positive = parse_points(positive_points, "positive_points", height, width)
        if not positive:
            raise ValueError("positive_points has no points: click at least one point on the object")
        size = f"the {width}x{height} reference_image (width x height)"
        if not points_mask(height, width, positive, [], radius).any():
            raise ValueError(
                f"positive_points all lie outside {size}: place the points on the image they are drawn on (pixel "
                "coordinates, x to the right, y down, from the top-left corner)"
            )
        negative = parse_points(negative_points, "negative_points", height, width)
        mask = points_mask(height, width, positive, negative, radius)
        if not mask.any():
            raise ValueError("negative_points cut away every pixel the positive_points mark: move or remove some")
        return (mask.expand(images.shape[0], -1, -1).clone(),)


class IconMattingBoxToMask:
    """A box as a reference mask."""

    DESCRIPTION = "Draws a box (pixels, top-left corner and size) as a reference mask; use prompt_type 'box'."
    CATEGORY = CATEGORY
    RETURN_TYPES = ("MASK",)
    RETURN_NAMES = ("reference_mask",)
    OUTPUT_TOOLTIPS = ("1 inside the box (clipped to the image), 0 outside; one per image.",)
    FUNCTION = "draw"
    SEARCH_ALIASES = ["box to mask", "bounding box", "bbox", "box prompt"]

    @classmethod
    def INPUT_TYPES(cls):
        def pixels(tooltip, default=0):
            return ("INT", {"default": default, "min": 0, "max": 16384, "tooltip": tooltip})

        return {
            "required": {
                "reference_image": ("IMAGE", {"tooltip": "The image the box is drawn on (for its size)."}),
                "x": pixels("Left edge."),
                "y": pixels("Top edge."),
                "width": pixels("Box width.", 256),
                "height": pixels("Box height.", 256),
            }
        }

    def draw(self, reference_image, x, y, width, height):
        images = channels_first(reference_image, "reference_image")
        image_height, image_width = images.shape[-2:]
        mask = box_mask(image_height, image_width, x, y, width, height)
        if not mask.any():
            raise ValueError(
                f"the box (x {x}, y {y}, width {width}, height {height}) covers no pixel of the {image_width}x"
                f"{image_height} reference_image: give x below {image_width}, y below {image_height} and a width and "
                "height of at least 1"
            )
        return (mask.expand(images.shape[0], -1, -1).clone(),)
