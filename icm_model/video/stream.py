"""Streaming a video through the matting pipeline a chunk of frames at a time, into one preallocated matte."""

from __future__ import annotations

from collections.abc import Callable

import torch

from .temporal import TemporalStabiliser


def stream_mattes(
    frames: torch.Tensor,
    chunk_size: int,
    matte_chunk: Callable[[torch.Tensor], torch.Tensor],
    stabiliser: TemporalStabiliser | None = None,
    on_frames: Callable[[int], None] | None = None,
    out_device: torch.device | str = "cpu",
    stabiliser_device: torch.device | str | None = None,
) -> torch.Tensor:
    """Alpha ``[N, H, W]`` in [0, 1] of video frames ``[N, H, W, C]`` (channels last, C >= 3, in [0, 1]).

    Beside the frames and the returned mattes, memory holds one chunk at a time: ``matte_chunk`` maps a chunk
    ``[b, 3, H, W]`` (float32) to its alpha ``[b, H, W]``, ``stabiliser`` (if any) carries the last frame and alpha
    from one chunk to the next (running on ``stabiliser_device``, default the alpha's), and ``on_frames(b)`` is called
    once a chunk's mattes are written to the result on ``out_device``.
    """
    if chunk_size < 1:
        raise ValueError(f"chunk_size must be at least 1, got {chunk_size}")
    count, height, width = frames.shape[:3]
    alpha = torch.empty(count, height, width, device=out_device)
    for start in range(0, count, chunk_size):
        chunk = frames[start : start + chunk_size, ..., :3].movedim(-1, 1).float()
        matte = matte_chunk(chunk)
        if stabiliser is not None:
            matte = stabiliser(chunk, matte.to(stabiliser_device or matte.device))
        size = chunk.shape[0]
        alpha[start : start + size] = matte.to(out_device)
        del chunk, matte
        if on_frames is not None:
            on_frames(size)
    return alpha
