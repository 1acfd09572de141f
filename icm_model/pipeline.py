"""In-context matting end to end: encode the reference once, then matte any number of targets."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

import torch
import torch.nn.functional as F

from .backbone.features import (
    VAE_DOWNSCALE,
    Backbone,
    EnsembleFeatureExtractor,
    TargetFeatures,
    extraction_steps,
    images_per_call,
    seeded_noise,
)
from .compositing.upsample import UPSAMPLING_METHODS, guided_upsample
from .decoder.model import Guidance, InContextDecoder
from .decoder.similarity import roi_query, roi_token_mask
from .geometry import Letterbox
from .prompts.prompt import ReferencePrompt
from .prompts.tokens import PromptTokens, TokenSelection, prompt_tokens, select_tokens
from .validation import InputError, check_images, check_masks

DEFAULT_TIMESTEP = 200
DEFAULT_ENSEMBLE = 4
DEFAULT_MAX_BATCH = 8
CORRESPONDENCE_STRIDE = 16
"""Pixels of the working canvas per token of the correspondence (high) grid: 8 (VAE) x 2 (U-Net level 1)."""
DEFAULT_EXTENSION_TOP_M = 8
"""Tokens the reference-prompt extension adds per token marked by a point or scribble (see the README)."""
FINGERPRINT_SIZE = 16
FINGERPRINT_TOLERANCE = 0.05
"""Largest difference of a 16x16 block mean (0..1) between the images a guidance was computed from and those given
to the matting head: more means other images (re-encoding or resampling noise stays far below it)."""
HEAD_STEPS = 1
"""Progress steps of one matting-head call (:meth:`InContextMatting.matte` and the nodes tick it after the call)."""


def batch_slices(count: int, size: int) -> list[slice]:
    """Consecutive slices of at most ``size`` items covering ``count`` items (the chunks of a batch)."""
    return [slice(start, min(start + size, count)) for start in range(0, count, size)]


def reference_steps(
    backbone: Backbone, images: int, ensemble: int, max_batch: int = DEFAULT_MAX_BATCH, reference_attention=False
) -> int:
    """The ``on_step`` calls of :func:`encode_reference` for ``images`` references (VAE encodes and U-Net blocks);
    ``reference_attention``: passes that also capture attention (see :func:`prompt_steps`)."""
    return extraction_steps(backbone, images, ensemble, max_batch, False, reference_attention)


def target_steps(backbone: Backbone, images: int, ensemble: int, max_batch: int = DEFAULT_MAX_BATCH) -> int:
    """The ``on_step`` calls of :func:`target_guidance` for ``images`` targets: the U-Net work, then the similarity."""
    return extraction_steps(backbone, images, ensemble, max_batch, with_attention=True) + 1


@dataclass
class ReferenceContext:
    """The in-context query of one or more references, encoded once and reused for every target.

    Attributes:
        query: ``[K, C]`` fp32 reference correspondence features under the RoI tokens of all references.
        token_masks: per reference, ``[h, w]`` bool: the tokens of the correspondence grid inside its RoI.
        timestep: the diffusion timestep the query was encoded at; targets are encoded at the same one.
        working_size: side of the square canvas the U-Net saw.
    """

    query: torch.Tensor
    token_masks: list[torch.Tensor]
    timestep: int
    working_size: int

    def union(self, other: ReferenceContext) -> ReferenceContext:
        """The context of both sets of references (the query is the union of their RoI tokens)."""
        if (other.timestep, other.working_size) != (self.timestep, self.working_size):
            raise InputError(
                f"cannot combine reference contexts encoded at timestep {self.timestep} / {self.working_size}px and "
                f"timestep {other.timestep} / {other.working_size}px: encode them with the same settings"
            )
        return ReferenceContext(
            torch.cat([self.query, other.query.to(self.query.device)]),
            self.token_masks + other.token_masks,
            self.timestep,
            self.working_size,
        )


def image_fingerprint(images: torch.Tensor) -> torch.Tensor:
    """A small copy ``[B, 3, 16, 16]`` (block means, fp32, CPU) of images ``[B, 3, H, W]``, to recognise them later."""
    return F.adaptive_avg_pool2d(images.float(), FINGERPRINT_SIZE).cpu()


@dataclass
class TargetGuidance:
    """What the matting head needs about a batch of same-size targets, beside the images themselves.

    Attributes:
        fingerprint: :func:`image_fingerprint` of the targets, so that the head refuses other images.
    """

    features: TargetFeatures
    guidance: Guidance
    letterbox: Letterbox
    fingerprint: torch.Tensor

    def __len__(self) -> int:
        return len(self.features)

    def to(self, device: torch.device | str) -> TargetGuidance:
        return TargetGuidance(self.features.to(device), self.guidance.to(device), self.letterbox, self.fingerprint)

    def check_images(self, images: torch.Tensor, name: str = "target_image", first: int = 0) -> None:
        """Raises ValueError naming ``name`` unless ``images`` ``[B, 3, H, W]`` are the images of this guidance
        (``first``: the batch index of ``images[0]`` in ``name``, for the message)."""
        if images.shape[0] != len(self) or (images.shape[-2], images.shape[-1]) != (
            self.letterbox.height,
            self.letterbox.width,
        ):
            raise InputError(
                f"{name} ({images.shape[0]} images of {images.shape[-1]}x{images.shape[-2]}) is not the batch the "
                f"guidance was computed from ({len(self)} of {self.letterbox.width}x{self.letterbox.height}): wire the "
                "images In-Context Similarity received"
            )
        difference = (image_fingerprint(images) - self.fingerprint).abs().flatten(1).amax(dim=1)
        other = [f"#{first + i}" for i, value in enumerate(difference.tolist()) if value > FINGERPRINT_TOLERANCE]
        if other:
            raise InputError(
                f"{name} {', '.join(other)} is not the image the guidance was computed from (same size, other "
                "content): wire the same IMAGE into In-Context Similarity and Matting Head"
            )


def encode_reference(
    backbone: Backbone,
    images: torch.Tensor,
    masks: torch.Tensor,
    working_size: int,
    *,
    timestep: int = DEFAULT_TIMESTEP,
    ensemble: int = DEFAULT_ENSEMBLE,
    seed: int = 0,
    max_batch: int = DEFAULT_MAX_BATCH,
    on_step: Callable[[int], None] | None = None,
    rule: str = "inside",
) -> ReferenceContext:
    """Encodes reference images ``[R, 3, H, W]`` in [0, 1] under their RoI masks ``[R, H, W]`` (> 0.5 = inside).

    ``rule`` picks the query tokens (see :func:`icm_model.decoder.similarity.roi_token_mask`). Only the correspondence
    feature is computed: each pass stops after U-Net up-block 1. ``on_step`` is the progress (see
    :func:`reference_steps`); it may raise to cancel.
    """
    check_images("reference_image", images)
    check_masks("reference_mask", masks, images, "reference_image")
    box = Letterbox.fit(images.shape[-2], images.shape[-1], working_size)
    grid = working_size // CORRESPONDENCE_STRIDE
    token_masks = roi_token_mask(box.mask(masks.float()), (grid, grid), rule)
    for index, tokens in enumerate(token_masks):
        if not tokens.any():
            cell = CORRESPONDENCE_STRIDE * max(images.shape[-2:]) / working_size
            raise InputError(
                f"reference_mask #{index} covers no whole {cell:.0f}x{cell:.0f}-pixel cell of the feature grid: "
                "mark a larger region of the object, or, for clicked points and thin strokes, use prompt_type points "
                "or scribble (every cell the mark touches counts)"
            )
    noise = seeded_noise(seed, ensemble, working_size // VAE_DOWNSCALE)[0]
    features = EnsembleFeatureExtractor(backbone, timestep, max_batch, on_step).correspondence(box.image(images), noise)
    return _context(features, token_masks, timestep, working_size)


def _context(features: torch.Tensor, token_masks: torch.Tensor, timestep: int, working_size: int) -> ReferenceContext:
    token_masks = token_masks.to(features.device)
    return ReferenceContext(roi_query(features, token_masks), list(token_masks.cpu()), timestep, working_size)


def _marked_tokens(
    images: torch.Tensor, prompts: list[ReferencePrompt], working_size: int, name: str
) -> list[PromptTokens]:
    """The checked tokens of one prompt per reference image ``[R, 3, H, W]`` (see :func:`encode_prompts`)."""
    check_images("reference_image", images)
    if len(prompts) != images.shape[0]:
        raise InputError(f"{len(prompts)} prompts for {images.shape[0]} reference images: give one prompt per image")
    height, width = images.shape[-2:]
    box = Letterbox.fit(height, width, working_size)
    grid = working_size // CORRESPONDENCE_STRIDE
    tokens = []
    for prompt in prompts:
        if (prompt.height, prompt.width) != (height, width):
            raise InputError(
                f"the reference prompt was made on a {prompt.width}x{prompt.height} image but reference_image is "
                f"{width}x{height}: wire the same image to the prompt and to the reference"
            )
        marked = prompt_tokens(prompt, box, grid)
        if not (marked.positive & ~marked.negative).any():
            cell = CORRESPONDENCE_STRIDE * max(height, width) / working_size
            raise InputError(
                f"{name} select no {cell:.0f}x{cell:.0f}-pixel cell of the feature grid: mark the object with a "
                "click, a scribble, a box or a mask (a box or mask must hold at least one whole cell), and keep "
                "negative marks off it"
            )
        tokens.append(marked)
    return tokens


def _extends(tokens: list[PromptTokens], extension_top_m: int) -> bool:
    """Whether the reference pass captures attention for the reference-prompt extension (points or scribbles)."""
    return extension_top_m > 0 and any(t.sparse.any() or t.negative_sparse.any() for t in tokens)


def prompt_steps(
    backbone: Backbone,
    images: torch.Tensor,
    prompts: list[ReferencePrompt],
    working_size: int,
    *,
    extension_top_m: int = DEFAULT_EXTENSION_TOP_M,
    ensemble: int = DEFAULT_ENSEMBLE,
    max_batch: int = DEFAULT_MAX_BATCH,
    name: str = "marks",
) -> int:
    """The ``on_step`` calls of :func:`encode_prompts` with these arguments."""
    extend = _extends(_marked_tokens(images, prompts, working_size, name), extension_top_m)
    return reference_steps(backbone, images.shape[0], ensemble, max_batch, reference_attention=extend)


def encode_prompts(
    backbone: Backbone,
    images: torch.Tensor,
    prompts: list[ReferencePrompt],
    working_size: int,
    *,
    extension_top_m: int = DEFAULT_EXTENSION_TOP_M,
    timestep: int = DEFAULT_TIMESTEP,
    ensemble: int = DEFAULT_ENSEMBLE,
    seed: int = 0,
    max_batch: int = DEFAULT_MAX_BATCH,
    on_step: Callable[[int], None] | None = None,
    name: str = "marks",
) -> tuple[ReferenceContext, list[TokenSelection]]:
    """Encodes reference images ``[R, 3, H, W]`` in [0, 1] under one prompt each (mask, points, scribbles, boxes).

    The query is the tokens of :func:`icm_model.prompts.tokens.prompt_tokens`; with ``extension_top_m`` > 0 and a
    point or scribble marked, the reference pass also captures the reference's self-attention on the correspondence
    grid and adds the reference-prompt extension (paper §3.6). Mask- and box-only prompts stop after up-block 1.

    Returns:
        The context and, per reference, which query tokens were marked and which the extension added.
    """
    tokens = _marked_tokens(images, prompts, working_size, name)
    extend = _extends(tokens, extension_top_m)
    box = Letterbox.fit(images.shape[-2], images.shape[-1], working_size)
    noise = seeded_noise(seed, ensemble, working_size // VAE_DOWNSCALE)[0]
    extractor = EnsembleFeatureExtractor(backbone, timestep, max_batch, on_step)
    if extend:
        features, attention = extractor.correspondence_and_attention(box.image(images), noise)
    else:
        features, attention = extractor.correspondence(box.image(images), noise), None
    selections = [
        select_tokens(t, None if attention is None else attention[i], extension_top_m) for i, t in enumerate(tokens)
    ]
    query_masks = torch.stack([selection.query for selection in selections])
    return _context(features, query_masks, timestep, working_size), selections


def target_guidance(
    backbone: Backbone,
    decoder: InContextDecoder,
    context: ReferenceContext,
    images: torch.Tensor,
    *,
    ensemble: int = DEFAULT_ENSEMBLE,
    seed: int = 0,
    max_batch: int = DEFAULT_MAX_BATCH,
    on_step: Callable[[int], None] | None = None,
) -> TargetGuidance:
    """U-Net features of targets ``[B, 3, H, W]`` in [0, 1], then their inter- and intra-similarity to the query.

    ``on_step`` is the progress (see :func:`target_steps`); it may raise to cancel.
    """
    check_images("target_image", images)
    if decoder.config.working_size != context.working_size:
        raise InputError(
            f"the reference context was encoded at {context.working_size}px but this IconMatting model works at "
            f"{decoder.config.working_size}px: encode the reference for this model"
        )
    box = Letterbox.fit(images.shape[-2], images.shape[-1], context.working_size)
    noise = seeded_noise(seed, ensemble, context.working_size // VAE_DOWNSCALE)[1]
    extractor = EnsembleFeatureExtractor(backbone, context.timestep, max_batch, on_step)
    features = extractor.targets(box.image(images), noise)
    device = next(decoder.parameters()).device  # read after the U-Net ran: model management may have moved it
    features = features.to(device)
    with torch.no_grad():
        guidance = decoder.guidance(context.query.to(device), features)
    if on_step is not None:
        on_step(1)
    return TargetGuidance(features, guidance, box, image_fingerprint(images))


@torch.no_grad()
def predict_alpha(
    decoder: InContextDecoder, target: TargetGuidance, images: torch.Tensor, upsampling: str = "guided"
) -> tuple[torch.Tensor, torch.Tensor]:
    """The matting head on targets ``[B, 3, H, W]`` in [0, 1] (the images ``target`` was computed from).

    ``upsampling`` brings alpha from the working canvas to targets larger than it: ``guided`` (edge-aware, guided by
    the full-resolution target, see :mod:`icm_model.compositing.upsample`) or ``bilinear``. Smaller targets are always
    resized bilinearly (antialiased).

    Returns:
        ``(alpha, guidance_preview)``, both ``[B, 1, H, W]`` at the images' own resolution; alpha in [0, 1].
    """
    if upsampling not in UPSAMPLING_METHODS:
        raise ValueError(f"unknown upsampling {upsampling!r}: use one of {', '.join(UPSAMPLING_METHODS)}")
    target.check_images(images)
    device = next(decoder.parameters()).device
    box, images = target.letterbox, images.to(device, torch.float32)
    canvas = box.image(images)
    alpha, preview = decoder.matte(target.guidance, target.features, canvas * 2 - 1)
    if upsampling == "guided" and box.upscales:
        alpha = guided_upsample(box.content(alpha).clamp(0, 1), box.content(canvas), images)
    else:
        alpha = box.restore(alpha).clamp(0, 1)
    return alpha, box.restore(preview)


class InContextMatting:
    """Standalone in-context matting: a frozen backbone plus the trained IconMatting decoder.

    Args:
        backbone: the SD2.1 U-Net backbone.
        decoder: the IconMatting decoder, on the device the backbone returns features on.
        max_batch: most latents per U-Net call (ensemble copies of several targets share a call).
    """

    def __init__(self, backbone: Backbone, decoder: InContextDecoder, max_batch: int = DEFAULT_MAX_BATCH) -> None:
        self.backbone, self.decoder, self.max_batch = backbone, decoder, max_batch

    def encode_reference(
        self,
        images: torch.Tensor,
        masks: torch.Tensor,
        *,
        timestep: int = DEFAULT_TIMESTEP,
        ensemble: int = DEFAULT_ENSEMBLE,
        seed: int = 0,
        rule: str = "inside",
        on_step: Callable[[int], None] | None = None,
    ) -> ReferenceContext:
        """See :func:`encode_reference`; the working size is the decoder's."""
        return encode_reference(
            self.backbone, images, masks, self.decoder.config.working_size, timestep=timestep, ensemble=ensemble,
            seed=seed, max_batch=self.max_batch, on_step=on_step, rule=rule,
        )  # fmt: skip

    def matte_steps(self, images: int, ensemble: int = DEFAULT_ENSEMBLE) -> int:
        """The ``on_step`` calls of :meth:`matte` for ``images`` targets."""
        chunks = batch_slices(images, images_per_call(self.max_batch, ensemble))
        return sum(target_steps(self.backbone, c.stop - c.start, ensemble, self.max_batch) + HEAD_STEPS for c in chunks)

    def matte(
        self,
        context: ReferenceContext,
        images: torch.Tensor,
        *,
        ensemble: int = DEFAULT_ENSEMBLE,
        seed: int = 0,
        on_step: Callable[[int], None] | None = None,
        upsampling: str = "guided",
    ) -> torch.Tensor:
        """Alpha ``[B, 1, H, W]`` in [0, 1] of targets ``[B, 3, H, W]`` in [0, 1], computed a few targets at a time.

        ``on_step`` is the progress, :meth:`matte_steps` calls in all; it may raise to cancel. ``upsampling`` as in
        :func:`predict_alpha`.
        """
        alphas = []
        for chunk_slice in batch_slices(images.shape[0], images_per_call(self.max_batch, ensemble)):
            chunk = images[chunk_slice]
            target = target_guidance(
                self.backbone, self.decoder, context, chunk, ensemble=ensemble, seed=seed, max_batch=self.max_batch,
                on_step=on_step,
            )  # fmt: skip
            alphas.append(predict_alpha(self.decoder, target, chunk, upsampling)[0].cpu())
            if on_step is not None:
                on_step(HEAD_STEPS)
        return torch.cat(alphas)
