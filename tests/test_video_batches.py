"""The Video Batch Manager's state (icm_model.video.batches): batches of a clip, and clips told apart by content."""

from __future__ import annotations

import torch

from icm_model.video.batches import BatchSchedule, clip_digest


def _fading_clip(middle: float, frames: int = 7) -> torch.Tensor:
    """``[N, 32, 48, 3]``: black first and last frames, a grey level of ``middle`` in between."""
    clip = torch.full((frames, 32, 48, 3), middle)
    clip[0] = clip[-1] = 0
    return clip


def test_digest_reads_every_frame_not_only_the_ends():
    first, second = _fading_clip(0.5), _fading_clip(0.25)
    assert torch.equal(first[0], second[0]) and torch.equal(first[-1], second[-1])
    assert clip_digest(first) != clip_digest(second)
    one_frame = first.clone()
    one_frame[3, 16, 24] = 0.75  # one pixel of one middle frame, on the sampling grid (64 x 64 covers 32 x 48)
    assert clip_digest(one_frame) != clip_digest(first)
    assert clip_digest(first.clone()) == clip_digest(first)  # content, not identity
    assert clip_digest(first[:6]) != clip_digest(first)


def test_digest_strides_large_frames():
    frames = torch.zeros(2, 640, 200, 3)
    changed = frames.clone()
    changed[1, 630, 192] = 1  # rows every 10, columns every 4: on the grid
    assert clip_digest(changed) != clip_digest(frames)


def test_schedule_hands_out_batches_and_restarts_after_the_last():
    schedule = BatchSchedule()
    batch = schedule.next_batch("a", 7, 3)
    assert (batch.start, batch.count, batch.index, batch.batches) == (0, 3, 0, 3)
    assert batch.describe() == "batch 1 of 3: frames 0-2 of 7; queue 2 more run(s)"
    assert schedule.next_batch("a", 7, 3).start == 0  # not committed (e.g. cancelled): handed out again
    batch.commit()
    batch = schedule.next_batch("a", 7, 3)
    assert (batch.start, batch.count) == (3, 3)
    batch.commit()
    batch = schedule.next_batch("a", 7, 3)
    assert (batch.start, batch.count) == (6, 1) and batch.describe() == "batch 3 of 3: frames 6-6 of 7; the last batch"
    batch.commit()
    assert schedule.next_batch("a", 7, 3).start == 0


def test_schedule_keeps_clips_apart_and_forgets_the_oldest():
    schedule = BatchSchedule(kept=2)
    for clip in ("a", "b", "c"):
        schedule.next_batch(clip, 10, 4).commit()
    assert [schedule.next_batch(clip, 10, 4).start for clip in ("a", "b", "c")] == [0, 4, 4]
