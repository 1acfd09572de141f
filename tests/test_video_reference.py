"""Choosing the marked frame of a video and its mask (icm_model.video.reference, behind Video In-Context Matte)."""

from __future__ import annotations

import pytest

from icm_model.video.reference import reference_indices

SIZE = (64, 80)


@pytest.mark.parametrize(
    ("frames", "masks", "reference_frame", "first_frame", "expected"),
    [
        (5, 1, 0, 0, (0, 0)),  # one mask: it marks the reference frame
        (5, 1, 3, 0, (3, 0)),
        (5, 5, 3, 0, (3, 3)),  # one mask per frame: the reference frame's
        (4, 4, 10, 8, (2, 2)),  # a batch of a longer video: clip index 10 is the batch's frame 2
        (1, 1, 7, 7, (0, 0)),
    ],
)
def test_reference_frame_and_its_mask(frames, masks, reference_frame, first_frame, expected):
    assert reference_indices(frames, SIZE, masks, SIZE, reference_frame, first_frame) == expected


@pytest.mark.parametrize(
    ("arguments", "message"),
    [
        ((5, SIZE, 1, (60, 80), 0, 0), r"reference_mask is 80x60 but frames are 80x64 \(width x height\)"),
        ((5, SIZE, 1, SIZE, 5, 0), r"reference_frame 5 is not a frame of this video \(0..4\)"),
        ((4, SIZE, 1, SIZE, 3, 8), r"reference_frame 3 is not a frame of this video \(8..11\)"),
        ((5, SIZE, 3, SIZE, 0, 0), r"reference_mask has 3 masks: give one mask \(of the reference frame\) or one per "),
    ],
)
def test_bad_choices_name_the_input(arguments, message):
    with pytest.raises(ValueError, match=message):
        reference_indices(*arguments)
