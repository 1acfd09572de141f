"""Which frame of a video and which of the given masks mark the object (a mask painted on one frame of the clip)."""

from __future__ import annotations

from ..validation import InputError


def reference_indices(
    frames: int, frame_size: tuple[int, int], masks: int, mask_size: tuple[int, int], reference_frame: int,
    first_frame: int = 0,
) -> tuple[int, int]:  # fmt: skip
    """(index among ``frames``, index among ``masks``) of the marked frame and its mask.

    Args:
        frames: frames in this batch; ``first_frame`` is the clip index of its first one (a batch of a longer video).
        frame_size, mask_size: (height, width) of the frames and of the masks.
        masks: one mask (of the reference frame) or one per frame of the batch.
        reference_frame: the clip index of the marked frame.
    """
    if mask_size != frame_size:
        raise InputError(
            f"reference_mask is {mask_size[1]}x{mask_size[0]} but frames are {frame_size[1]}x{frame_size[0]} (width x "
            "height): paint the mask on a frame of this video (or resize it to the frames)"
        )
    local = reference_frame - first_frame
    if not 0 <= local < frames:
        last = first_frame + frames - 1
        raise InputError(f"reference_frame {reference_frame} is not a frame of this video ({first_frame}..{last})")
    if masks not in (1, frames):
        raise InputError(
            f"reference_mask has {masks} masks: give one mask (of the reference frame) or one per frame ({frames})"
        )
    return local, local if masks == frames else 0
