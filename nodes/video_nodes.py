"""Video: one marked frame, a matte for every frame, streamed in chunks; optionally over several runs."""

from __future__ import annotations

from collections import OrderedDict
from dataclasses import dataclass

import comfy.model_management
import torch

from ..icm_model.pipeline import ReferenceContext, target_steps
from ..icm_model.video.reference import reference_indices
from ..icm_model.video.stream import stream_mattes
from ..icm_model.video.temporal import DEFAULT_STRENGTH, MAX_STRENGTH, TemporalStabiliser
from .comfy_backbone import ComfyBackbone
from .common import ALPHA_CONVENTION, CATEGORY, NodeProgress, as_mask_batch, channels_first, prompt_embedding
from .matting_nodes import alpha_for_chunk, guidance_for_chunk
from .model_identity import vae_identity
from .reference_nodes import (
    ENSEMBLE_INPUT,
    ICON_MATTING_MODEL_INPUT,
    PROMPT_INPUTS,
    PROMPT_TYPE_INPUT,
    SD_INPUTS,
    SEED_INPUT,
    TIMESTEP_INPUT,
    Reference,
    encode_reference_context,
)
from .video_batch_nodes import VIDEO_BATCH_TYPE, VideoBatch, fingerprint

UNET_SHARE_OF_FRAME = 0.9
"""Share of a frame's progress step given over the U-Net work covering it (block by block); the rest when its matte is
written."""
_CLIPS_KEPT = 4


def reference_frame_and_mask(frames, reference_mask, reference_frame: int, reference_image=None, first_frame: int = 0):
    """The reference IMAGE and MASK: a separate reference if given, else the marked frame of the video
    (:func:`~icm_model.video.reference.reference_indices`)."""
    masks = as_mask_batch(reference_mask, "reference_mask")
    if reference_image is not None:
        return reference_image, masks
    frame, mask = reference_indices(
        frames.shape[0], tuple(frames.shape[1:3]), masks.shape[0], tuple(masks.shape[-2:]), reference_frame, first_frame
    )
    return frames[frame : frame + 1], masks[mask : mask + 1]


class FrameProgress(NodeProgress):
    """A progress bar over frames that is full only once the last frame's matte is written.

    :meth:`chunk` gives the ``on_step`` of a chunk's U-Net work: its steps (every VAE encode and U-Net block, planned by
    :func:`~icm_model.pipeline.target_steps`) advance the bar by ``UNET_SHARE_OF_FRAME`` of the chunk's frames in all;
    :meth:`frames_done` completes their step. :meth:`reference_pass` only checks for a cancel.
    """

    def __init__(self, frames: int) -> None:
        super().__init__(frames)
        self.done = 0

    def chunk(self, frames: int, steps: int):
        """The ``on_step`` of the U-Net work on the next ``frames`` frames, which reports ``steps`` steps."""
        share = UNET_SHARE_OF_FRAME * frames / steps
        position = [float(self.done)]

        def on_step(count: int) -> None:
            comfy.model_management.throw_exception_if_processing_interrupted()
            position[0] += share * count
            self.bar.update_absolute(min(position[0], self.done + UNET_SHARE_OF_FRAME * frames))

        return on_step

    @staticmethod
    def reference_pass(_steps: int) -> None:
        comfy.model_management.throw_exception_if_processing_interrupted()

    def frames_done(self, frames: int) -> None:
        self.done += frames
        self.bar.update_absolute(self.done)


@dataclass
class ClipState:
    """What Video In-Context Matte keeps between the batches of one clip: content only, on the offload device (no
    MODEL, VAE, patched clone or IconMatting model: ComfyUI alone decides how long those live)."""

    context: ReferenceContext
    stabiliser: TemporalStabiliser | None
    next_frame: int


def offloaded(context: ReferenceContext) -> ReferenceContext:
    """The context with its query on ComfyUI's offload device (CPU)."""
    device = comfy.model_management.unet_offload_device()
    return ReferenceContext(context.query.to(device), context.token_masks, context.timestep, context.working_size)


def stabiliser_on(stabiliser: TemporalStabiliser | None, device) -> TemporalStabiliser | None:
    """An independent copy of ``stabiliser`` whose kept frame and alpha are on ``device``."""
    if stabiliser is None:
        return None
    twin = stabiliser.copy()
    twin.frame, twin.alpha = (None if t is None else t.to(device) for t in (twin.frame, twin.alpha))
    return twin


_clips: OrderedDict[tuple, ClipState] = OrderedDict()
"""(clip, content of the models, reference and settings) -> state after the last finished batch; the few most recent
clips."""


class VideoInContextMatte:
    """Mattes every frame of a video from one marked frame."""

    DESCRIPTION = (
        "Marks the object once (a mask on one frame, or a separate reference image) and mattes every frame. The "
        "reference is encoded once; frames go through the U-Net and the matting head a chunk at a time, so memory "
        "does not grow with the video's length; every frame uses the same noise draws. temporal_stability smooths "
        "alpha along the motion between frames (not a paper feature; 0 = off). With a Video Batch Manager a long "
        "video streams over several runs, keeping the reference and the temporal state. " + ALPHA_CONVENTION
    )
    CATEGORY = CATEGORY
    RETURN_TYPES = ("MASK",)
    RETURN_NAMES = ("alpha",)
    OUTPUT_TOOLTIPS = (ALPHA_CONVENTION + " One per frame.",)
    FUNCTION = "matte"
    SEARCH_ALIASES = [
        "rotoscope", "video matting", "remove background", "background removal", "cutout", "alpha matte", "matting",
    ]  # fmt: skip

    @classmethod
    def INPUT_TYPES(cls):
        return {
            "required": {
                "iconmatting_model": ICON_MATTING_MODEL_INPUT,
                **SD_INPUTS,
                "frames": ("IMAGE", {"tooltip": "The video frames (an IMAGE batch)."}),
                "reference_mask": (
                    "MASK",
                    {
                        "tooltip": "1 = the object on the reference frame (one mask, or one per "
                        "frame of which the reference frame's is used)."
                    },
                ),
                "reference_frame": (
                    "INT",
                    {
                        "default": 0,
                        "min": 0,
                        "max": 1_000_000,
                        "tooltip": "Index of the marked frame (in the whole video with a batch manager; ignored "
                        "with reference_image).",
                    },
                ),
                "prompt_type": PROMPT_TYPE_INPUT,
                "chunk_size": (
                    "INT",
                    {
                        "default": 4,
                        "min": 1,
                        "max": 64,
                        "tooltip": ("Frames processed together. Memory grows with it, not with the video length."),
                    },
                ),
                "timestep": TIMESTEP_INPUT,
                "ensemble_size": ENSEMBLE_INPUT,
                "seed": SEED_INPUT,
            },
            "optional": {
                **PROMPT_INPUTS,
                "reference_image": ("IMAGE", {"tooltip": "A separate reference image (then reference_mask marks it)."}),
                "temporal_stability": (
                    "FLOAT",
                    {
                        "default": DEFAULT_STRENGTH,
                        "min": 0.0,
                        "max": MAX_STRENGTH,
                        "step": 0.05,
                        "tooltip": "Blends each alpha with the previous frame's alpha moved along the motion, "
                        "only where that motion explains the new frame (moving edges are followed, not smeared). "
                        "Higher = steadier. 0 = off: every frame matted on its own, as in the paper.",
                    },
                ),
                "batch": (
                    VIDEO_BATCH_TYPE,
                    {"tooltip": "From Video Batch Manager: these frames are one batch of a longer video."},
                ),
            },
        }

    def matte(self, iconmatting_model, model, vae, frames, reference_mask, reference_frame, prompt_type, chunk_size,
              timestep, ensemble_size, seed, clip=None, empty_conditioning=None, reference_image=None,
              temporal_stability=DEFAULT_STRENGTH, batch: VideoBatch | None = None):  # fmt: skip
        if frames is None:
            raise ValueError("frames is empty: connect 'frames' to the Video Batch Manager (or to a frame loader)")
        channels_first(frames[:1], "frames")
        start = batch.start if batch is not None else 0
        if batch is not None and frames.shape[0] != batch.count:
            raise ValueError(
                f"frames has {frames.shape[0]} frames but the batch is frames {start}-{start + batch.count - 1}: wire "
                "the Video Batch Manager's frames (or a loader driven by its start_frame and frame_count)"
            )
        progress = FrameProgress(frames.shape[0])
        backbone = ComfyBackbone(model, vae, prompt_embedding(clip, empty_conditioning))
        key = None if batch is None else (batch.clip, self._settings(
            iconmatting_model, backbone, reference_mask, reference_frame, prompt_type, timestep, ensemble_size, seed,
            reference_image, temporal_stability,
        ))  # fmt: skip
        state = _clips.get(key) if key is not None else None
        device = comfy.model_management.get_torch_device()
        note = ""
        if state is not None and state.next_frame == start:
            stabiliser = stabiliser_on(state.stabiliser, device)
            reference = Reference(state.context, backbone, iconmatting_model, ensemble_size, seed)
            note = f"; reference and temporal state kept from frame {start - 1}"
        else:
            stabiliser = TemporalStabiliser(temporal_stability) if temporal_stability != 0 else None
            has_reference = reference_image is not None or 0 <= reference_frame - start < frames.shape[0]
            if state is not None and not has_reference:
                reference = Reference(state.context, backbone, iconmatting_model, ensemble_size, seed)
                note = "; reference kept, temporal state restarted (batch out of order)"
            elif not has_reference and batch is not None:
                raise ValueError(
                    f"reference_frame {reference_frame} is not in this batch (frames {start}-"
                    f"{start + batch.count - 1}) and no earlier batch of this video encoded it: run the batches from "
                    "the first (change frames_per_batch to restart the Video Batch Manager), or connect "
                    "reference_image"
                )
            else:
                image, mask = reference_frame_and_mask(frames, reference_mask, reference_frame, reference_image, start)
                reference = encode_reference_context(
                    iconmatting_model, backbone, image, mask, prompt_type, timestep, ensemble_size, seed,
                    on_step=progress.reference_pass,
                )  # fmt: skip

        def matte_chunk(chunk: torch.Tensor) -> torch.Tensor:
            steps = target_steps(reference.backbone, chunk.shape[0], ensemble_size)
            guidance = guidance_for_chunk(reference, chunk, ensemble_size, seed, progress.chunk(chunk.shape[0], steps))
            return alpha_for_chunk(iconmatting_model, guidance, chunk)

        alpha = stream_mattes(
            frames, chunk_size, matte_chunk, stabiliser, progress.frames_done,
            out_device=comfy.model_management.intermediate_device(),
            stabiliser_device=device,
        )  # fmt: skip
        if key is not None:
            offload = comfy.model_management.unet_offload_device()
            state = ClipState(offloaded(reference.context), stabiliser_on(stabiliser, offload), start + frames.shape[0])
            _clips[key] = state
            _clips.move_to_end(key)
            while len(_clips) > _CLIPS_KEPT:
                _clips.popitem(last=False)
            batch.commit()
        return {"ui": {"text": [reference.summary() + note]}, "result": (alpha,)}

    @staticmethod
    def _settings(iconmatting_model, backbone: ComfyBackbone, reference_mask, *values) -> tuple:
        """What identifies the reference and the temporal state, all by content: the IconMatting, SD and VAE weights
        (and the MODEL's patches), the empty-prompt embedding, the mask, the reference image and the settings."""
        return (
            iconmatting_model.fingerprint, backbone.identity,
            vae_identity(backbone.vae),
            fingerprint(backbone.conditioning), fingerprint(reference_mask),
            *(fingerprint(v) if isinstance(v, torch.Tensor) else v for v in values),
        )  # fmt: skip
