"""Streaming a long video through the graph over several queued runs, one batch of frames per run."""

from __future__ import annotations

import hashlib

import torch

from ..icm_model.video.batches import BatchSchedule, VideoBatch, clip_digest
from .common import CATEGORY

__all__ = ["VIDEO_BATCH_TYPE", "IconMattingVideoBatchManager", "VideoBatch", "fingerprint"]

VIDEO_BATCH_TYPE = "ICON_MATTING_VIDEO_BATCH"
SCHEDULE = BatchSchedule()
"""Every clip's next batch; advanced only when Video In-Context Matte commits (finishes) a batch."""


def fingerprint(*tensors: torch.Tensor) -> str:
    """A short content hash of tensors (their shapes and values)."""
    digest = hashlib.sha1()
    for tensor in tensors:
        digest.update(str(tuple(tensor.shape)).encode())
        digest.update(tensor.detach().cpu().contiguous().numpy().tobytes())
    return digest.hexdigest()[:16]


class IconMattingVideoBatchManager:
    """Hands out the next range of frames on every queued run, so a long video streams through the graph."""

    DESCRIPTION = (
        "Streams a long video through the workflow over several runs: every queued run gets the next "
        "frames_per_batch frames (queue the workflow as many times as it says). Wire 'batch' into Video In-Context "
        "Matte: it keeps the encoded reference and its temporal state from one batch to the next, and a batch counts "
        "as done only when Video In-Context Matte finished it (a cancelled batch is handed out again). Either give "
        "it the whole video as 'frames', or drive a loader that loads a frame range with start_frame and frame_count."
    )
    CATEGORY = CATEGORY
    RETURN_TYPES = (VIDEO_BATCH_TYPE, "IMAGE", "INT", "INT")
    RETURN_NAMES = ("batch", "frames", "start_frame", "frame_count")
    OUTPUT_TOOLTIPS = (
        "For Video In-Context Matte's 'batch' input.",
        "This run's frames (only when 'frames' is connected).",
        "Index of this run's first frame in the video (e.g. for a loader's skip_first_frames).",
        "Frames in this run (e.g. for a loader's frame_load_cap).",
    )
    FUNCTION = "next_batch"
    SEARCH_ALIASES = ["batch manager", "meta batch", "long video", "frame range", "video in batches"]

    @classmethod
    def INPUT_TYPES(cls):
        return {
            "required": {
                "frames_per_batch": (
                    "INT",
                    {"default": 16, "min": 1, "max": 4096, "tooltip": "Frames per queued run."},
                ),
                "total_frames": (
                    "INT",
                    {
                        "default": 0,
                        "min": 0,
                        "max": 10_000_000,
                        "tooltip": "Frames of the video to stream. 0 = all of 'frames' (then 'frames' is needed).",
                    },
                ),
            },
            "optional": {"frames": ("IMAGE", {"tooltip": "The whole video, when it fits in memory."})},
            "hidden": {"unique_id": "UNIQUE_ID"},
        }

    @classmethod
    def IS_CHANGED(cls, **_inputs):
        return float("nan")  # a new batch on every run

    def next_batch(self, frames_per_batch, total_frames, frames=None, unique_id=None):
        if frames is None and total_frames == 0:
            raise ValueError("connect the video's frames, or set total_frames to the number of frames of the video")
        total = frames.shape[0] if frames is not None else total_frames
        if total_frames:
            total = min(total, total_frames)
        video = clip_digest(frames[:total]) if frames is not None else "unloaded"
        batch = SCHEDULE.next_batch(f"{unique_id}|{frames_per_batch}|{total}|{video}", total, frames_per_batch)
        selected = frames[batch.start : batch.start + batch.count] if frames is not None else None
        return {"ui": {"text": [batch.describe()]}, "result": (batch, selected, batch.start, batch.count)}
