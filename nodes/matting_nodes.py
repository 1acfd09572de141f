"""Matting a batch of targets: in-context similarity, then the matting head."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from itertools import accumulate

import comfy.model_management
import torch

from ..icm_model.backbone.features import images_per_call
from ..icm_model.pipeline import (
    DEFAULT_MAX_BATCH,
    HEAD_STEPS,
    TargetGuidance,
    batch_slices,
    predict_alpha,
    target_guidance,
    target_steps,
)
from ..icm_model.visualize import overlay, similarity_maps
from .comfy_backbone import ComfyBackbone
from .common import ALPHA_CONVENTION, CATEGORY, NodeProgress, channels_first, channels_last
from .compositing_nodes import FOREGROUND_METHOD_INPUT, UPSAMPLING_INPUT, cutouts
from .model_nodes import MODEL_TYPE, IconMattingModel
from .reference_nodes import ENSEMBLE_INPUT, REFERENCE_TYPE, SEED_INPUT, Reference

GUIDANCE_TYPE = "ICON_MATTING_GUIDANCE"


@dataclass
class BatchGuidance:
    """What flows on an ICON_MATTING_GUIDANCE wire: the guidance of a target batch, a few targets per chunk."""

    chunks: list[TargetGuidance]
    iconmatting_model: IconMattingModel

    def __len__(self) -> int:
        return sum(len(chunk) for chunk in self.chunks)

    def with_slices(self) -> list[tuple[TargetGuidance, slice]]:
        """Each chunk with the slice of the target batch it covers."""
        ends = accumulate(len(chunk) for chunk in self.chunks)
        return [(chunk, slice(end - len(chunk), end)) for chunk, end in zip(self.chunks, ends, strict=True)]


def guidance_for_chunk(
    reference: Reference, images: torch.Tensor, ensemble_size: int, seed: int, progress: Callable[[int], None]
) -> TargetGuidance:
    """U-Net features and in-context similarity of targets ``[b, 3, H, W]``; ``progress`` is ticked
    :func:`~icm_model.pipeline.target_steps` times."""
    decoder = reference.iconmatting_model.load()
    return target_guidance(
        reference.backbone, decoder, reference.context, images, ensemble=ensemble_size, seed=seed, on_step=progress
    )


def guidance_steps(backbone: ComfyBackbone, chunks: list[slice], ensemble_size: int) -> int:
    """The progress steps :func:`guidance_for_chunk` reports for these chunks of targets."""
    return sum(target_steps(backbone, c.stop - c.start, ensemble_size) for c in chunks)


class InContextSimilarity:
    """Matches the reference context against every target: inter-similarity, spread by intra-similarity."""

    DESCRIPTION = (
        "Runs the frozen SD2.1 U-Net on the targets (any size; never cropped) and compares them with the reference "
        "context. Outputs the guidance for Matting Head, and pictures of the inter-similarity (where the reference "
        "object matches) and of the intra-similarity (that match spread over the whole object), as in paper Fig. 10."
    )
    CATEGORY = CATEGORY
    RETURN_TYPES = (GUIDANCE_TYPE, "IMAGE", "IMAGE")
    RETURN_NAMES = ("guidance", "inter_similarity", "intra_similarity")
    OUTPUT_TOOLTIPS = (
        "Guidance for Matting Head (wire the same target_image there).",
        "Inter-similarity heat map over each target (red = strong match with the reference).",
        "Intra-similarity heat map over each target (the match spread by the target's own self-attention).",
    )
    FUNCTION = "compute"
    SEARCH_ALIASES = ["matting", "similarity map", "alpha matte", "remove background"]

    @classmethod
    def INPUT_TYPES(cls):
        return {
            "required": {
                "reference": (REFERENCE_TYPE, {"tooltip": "From Encode Reference Context. Its timestep is used."}),
                "target_image": ("IMAGE", {"tooltip": "The images to matte; any size and aspect ratio."}),
                "ensemble_size": ENSEMBLE_INPUT,
                "seed": SEED_INPUT,
            }
        }

    def compute(self, reference: Reference, target_image, ensemble_size, seed):
        images = channels_first(target_image, "target_image")
        chunk_slices = batch_slices(images.shape[0], images_per_call(DEFAULT_MAX_BATCH, ensemble_size))
        progress = NodeProgress(guidance_steps(reference.backbone, chunk_slices, ensemble_size))
        offload = comfy.model_management.intermediate_device()
        chunks, inter_pictures, intra_pictures = [], [], []
        for chunk_slice in chunk_slices:
            chunk = images[chunk_slice]
            guidance = guidance_for_chunk(reference, chunk, ensemble_size, seed, progress)
            inter, intra = (m.to(offload) for m in similarity_maps(guidance.guidance))
            inter_pictures.append(overlay(chunk, inter, guidance.letterbox))
            intra_pictures.append(overlay(chunk, intra, guidance.letterbox))
            chunks.append(guidance.to(offload))
        return (
            BatchGuidance(chunks, reference.iconmatting_model),
            channels_last(torch.cat(inter_pictures)),
            channels_last(torch.cat(intra_pictures)),
        )


def alpha_for_chunk(
    iconmatting_model: IconMattingModel, guidance: TargetGuidance, images: torch.Tensor, upsampling: str = "guided"
) -> torch.Tensor:
    """The matting head on one chunk: alpha ``[b, H, W]`` in [0, 1] on the intermediate device."""
    decoder = iconmatting_model.load()
    device = next(decoder.parameters()).device
    alpha, _ = predict_alpha(decoder, guidance.to(device), images, upsampling)
    return alpha.squeeze(1).to(comfy.model_management.intermediate_device())


class MattingHead:
    """Turns the guidance and the target images into soft alpha mattes at full resolution."""

    DESCRIPTION = "The trained matting head (ViTMatte-style detail decoder): guidance + targets -> alpha. " + (
        ALPHA_CONVENTION
    )
    CATEGORY = CATEGORY
    RETURN_TYPES = ("MASK", "IMAGE", "IMAGE")
    RETURN_NAMES = ("alpha", "foreground", "rgba")
    OUTPUT_TOOLTIPS = (
        ALPHA_CONVENTION,
        "The foreground on black (colour x alpha, premultiplied), colour by foreground_method.",
        "Straight RGBA: the foreground colour with alpha as a 4th channel; SaveImage writes transparent PNGs.",
    )
    FUNCTION = "matte"
    SEARCH_ALIASES = [
        "remove background", "background removal", "cutout", "alpha matte", "matting", "transparent background",
    ]  # fmt: skip

    @classmethod
    def INPUT_TYPES(cls):
        return {
            "required": {
                "iconmatting_model": (MODEL_TYPE, {"tooltip": "The model the guidance was computed with."}),
                "guidance": (GUIDANCE_TYPE, {"tooltip": "From In-Context Similarity."}),
                "target_image": ("IMAGE", {"tooltip": "The same images In-Context Similarity received."}),
            },
            "optional": {"foreground_method": FOREGROUND_METHOD_INPUT, "upsampling": UPSAMPLING_INPUT},
        }

    def matte(
        self,
        iconmatting_model: IconMattingModel,
        guidance: BatchGuidance,
        target_image,
        foreground_method: str = "multilevel",
        upsampling: str = "guided",
    ):
        if iconmatting_model.fingerprint != guidance.iconmatting_model.fingerprint:
            raise ValueError(
                f"iconmatting_model is {iconmatting_model.describe()} but the guidance was computed with "
                f"{guidance.iconmatting_model.describe()}: wire the Load IconMatting Model node that feeds Encode "
                "Reference Context into Matting Head's iconmatting_model too"
            )
        images = channels_first(target_image, "target_image")
        if images.shape[0] != len(guidance):
            raise ValueError(
                f"target_image has {images.shape[0]} images but the guidance is for {len(guidance)}: "
                "wire the images In-Context Similarity received"
            )
        for chunk, part in guidance.with_slices():
            chunk.check_images(images[part], "target_image", part.start)
        progress = NodeProgress(len(guidance.chunks) * HEAD_STEPS)
        alphas = []
        for chunk, part in guidance.with_slices():
            alphas.append(alpha_for_chunk(iconmatting_model, chunk, images[part], upsampling))
            progress(HEAD_STEPS)
        alpha = torch.cat(alphas)
        return (alpha, *cutouts(target_image.to(alpha.device), alpha, foreground_method, "target_image"))


class IconMattingApplyAlpha:
    """Cut-outs from images and their alpha."""

    DESCRIPTION = (
        "Foreground on black (premultiplied) and straight RGBA (alpha as 4th channel) from images and alpha; the "
        "foreground colour is estimated without the old background (foreground_method)."
    )
    CATEGORY = CATEGORY
    RETURN_TYPES = ("IMAGE", "IMAGE")
    RETURN_NAMES = ("foreground", "rgba")
    OUTPUT_TOOLTIPS = (
        "The foreground on black (colour x alpha, premultiplied), colour by foreground_method.",
        "Straight RGBA: the foreground colour with alpha as a 4th channel; SaveImage writes transparent PNGs.",
    )
    FUNCTION = "apply"
    SEARCH_ALIASES = ["cutout", "apply mask", "transparent png", "rgba", "alpha matte", "remove background"]

    @classmethod
    def INPUT_TYPES(cls):
        return {
            "required": {
                "image": ("IMAGE", {"tooltip": "The images to cut out (e.g. the video frames), at alpha's size."}),
                "alpha": ("MASK", {"tooltip": ALPHA_CONVENTION + " One per image, or one for all."}),
            },
            "optional": {"foreground_method": FOREGROUND_METHOD_INPUT},
        }

    def apply(self, image, alpha, foreground_method: str = "multilevel"):
        return cutouts(image, alpha, foreground_method)
