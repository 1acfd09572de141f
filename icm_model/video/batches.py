"""Streaming a long video over several runs: which frames each run gets, and a clip's identity by its content."""

from __future__ import annotations

import hashlib
from collections import OrderedDict
from dataclasses import dataclass, field

import torch

DIGEST_SAMPLES = 64
"""A clip's digest reads every frame on a grid of at most this many rows and columns (evenly strided)."""
CLIPS_KEPT = 64
"""The schedule remembers the position of this many clips (the least recently used is forgotten)."""


def clip_digest(frames: torch.Tensor) -> str:
    """A short hash of a whole clip ``[N, H, W, C]``: its shape and every frame's values on an evenly strided grid of at
    most ``DIGEST_SAMPLES`` x ``DIGEST_SAMPLES`` pixels. Two clips that differ in any frame (not only their first and
    last) get different digests, unless they differ only between the grid's pixels."""
    step_y, step_x = (-(-size // DIGEST_SAMPLES) for size in frames.shape[1:3])
    samples = frames[:, ::step_y, ::step_x].detach().to("cpu", torch.float32).contiguous()
    digest = hashlib.sha1(str(tuple(frames.shape)).encode())
    digest.update(samples.numpy().tobytes())
    return digest.hexdigest()[:16]


@dataclass(frozen=True)
class VideoBatch:
    """Which frames of which clip one run covers.

    Attributes:
        clip: identifies the clip (the manager node, its settings and the video's content).
        start: index of this batch's first frame in the clip.
        count: frames in this batch.
        total: frames in the clip.
        size: frames per batch (the last batch may hold fewer).
        schedule: the schedule that handed it out (:meth:`commit` tells it the batch is done).
    """

    clip: str
    start: int
    count: int
    total: int
    size: int
    schedule: BatchSchedule = field(compare=False, repr=False)

    @property
    def index(self) -> int:
        return self.start // self.size

    @property
    def batches(self) -> int:
        return -(-self.total // self.size)

    def commit(self) -> None:
        """Marks this batch finished: its schedule hands out the next one on the next run."""
        self.schedule.commit(self)

    def describe(self) -> str:
        """E.g. "batch 2 of 3: frames 3-5 of 7; queue 1 more run(s)"."""
        remaining = self.batches - self.index - 1
        last = self.start + self.count - 1
        return f"batch {self.index + 1} of {self.batches}: frames {self.start}-{last} of {self.total}; " + (
            f"queue {remaining} more run(s)" if remaining else "the last batch"
        )


class BatchSchedule:
    """Hands out the next batch of every clip; a batch's frames count as done only when it is committed."""

    def __init__(self, kept: int = CLIPS_KEPT) -> None:
        self.kept = kept
        self.next_start: OrderedDict[str, int] = OrderedDict()
        """Clip -> first frame of the next batch to hand out."""

    def next_batch(self, clip: str, total: int, size: int) -> VideoBatch:
        """The batch after the last committed one of ``clip`` (``total`` frames, ``size`` per batch); after the last
        batch, the first again."""
        start = self.next_start.get(clip, 0)
        if start >= total:
            start = 0
        return VideoBatch(clip, start, min(size, total - start), total, size, self)

    def commit(self, batch: VideoBatch) -> None:
        """Marks ``batch`` finished: the next batch of its clip follows it."""
        self.next_start[batch.clip] = batch.start + batch.count
        self.next_start.move_to_end(batch.clip)
        while len(self.next_start) > self.kept:
            self.next_start.popitem(last=False)
