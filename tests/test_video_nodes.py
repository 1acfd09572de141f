"""Video In-Context Matte and the Video Batch Manager against the ComfyUI doubles (tiny random models)."""

from __future__ import annotations

import pytest
import torch
from comfy_env import pack_module
from test_nodes import _unet_output

from icm_model.video.synthetic import moving_object_clip

SETTINGS = {"prompt_type": "mask", "timestep": 200, "seed": 0}


@pytest.fixture(scope="module")
def clip():
    frames, truth = moving_object_clip(frames=7, height=64, width=80, radius=16, speed=(2.0, 1.0), seed=3)
    return frames, (truth[0:1] > 0.5).float()


def _matte(nodes, icm, comfy_sd2, frames, mask, *, chunk_size=4, ensemble=1, reference_frame=0, **optional):  # noqa: F811
    model, vae, clip = comfy_sd2
    out = nodes["VideoInContextMatte"]().matte(
        icm, model, vae, frames, mask, reference_frame, SETTINGS["prompt_type"], chunk_size, SETTINGS["timestep"],
        ensemble, SETTINGS["seed"], clip=clip, **optional,
    )  # fmt: skip
    return out["result"][0], out["ui"]["text"][0]


@pytest.fixture
def progress_log():
    import comfy.utils

    updates = []
    comfy.utils.set_progress_bar_global_hook(lambda value, total, preview, node_id=None: updates.append((value, total)))
    yield updates
    comfy.utils.set_progress_bar_global_hook(None)


def test_chunking_does_not_change_alpha(nodes, icm, comfy_sd2, clip):  # noqa: F811
    frames, mask = clip
    off = [_matte(nodes, icm, comfy_sd2, frames, mask, chunk_size=c, temporal_stability=0.0)[0] for c in (1, 3, 7)]
    assert off[0].shape == (7, 64, 80) and float(off[0].min()) >= 0 and float(off[0].max()) <= 1
    for other in off[1:]:
        torch.testing.assert_close(other, off[0], rtol=1e-4, atol=1e-5)
    on = [_matte(nodes, icm, comfy_sd2, frames, mask, chunk_size=c, temporal_stability=0.8)[0] for c in (1, 3)]
    torch.testing.assert_close(on[1], on[0], rtol=1e-4, atol=1e-5)  # the stabiliser's state crosses chunks
    assert not torch.allclose(on[0], off[0], atol=1e-4)  # and it does change the mattes of this moving clip (10x atol)
    torch.testing.assert_close(on[0][0], off[0][0])  # (not the first frame's: it has no predecessor)


def test_progress_counts_frames_and_is_full_only_at_the_end(nodes, icm, comfy_sd2, clip, progress_log):  # noqa: F811
    frames, mask = clip
    _matte(nodes, icm, comfy_sd2, frames, mask, chunk_size=3, ensemble=4)
    assert {total for _, total in progress_log} == {7}  # frames only: the reference pass does not show as done
    values = [value for value, _ in progress_log]
    assert values == sorted(values) and values[-1] == 7 and all(v < 7 for v in values[:-1])
    # ticks after every VAE encode, U-Net block and similarity (chunks of 3, 3, 1 frames: 2, 2, 1 U-Net calls of 1 + 21
    # steps, + 1), and after every chunk's mattes
    assert values.count(7) == 1 and len(values) == (2 * 22 + 1) * 2 + (22 + 1) + 3


def test_cancel_inside_a_chunk_leaves_the_model_untouched(nodes, icm, comfy_sd2, clip, progress_log):  # noqa: F811
    import comfy.model_management
    import comfy.utils

    model = comfy_sd2[0]
    frames, mask = clip
    before, options = _unet_output(model), repr(model.model_options)

    def cancel_after_first_pass(value, total, preview, node_id=None):
        progress_log.append((value, total))
        comfy.model_management.interrupt_current_processing()

    comfy.utils.set_progress_bar_global_hook(cancel_after_first_pass)
    with pytest.raises(comfy.model_management.InterruptProcessingException):
        # one chunk of 7 frames, 2 per U-Net call (ensemble 4): cancelled after its first call, inside the chunk
        _matte(nodes, icm, comfy_sd2, frames, mask, chunk_size=7, ensemble=4)
    # cancelled at the chunk's first step (its VAE encode): 0.9 x 7 frames over 4 calls x (1 + 21 blocks) + 1 steps
    assert progress_log == [(pytest.approx(0.9 * 7 / 89), 7)]
    assert torch.equal(_unet_output(model), before) and repr(model.model_options) == options


def test_batches_over_several_runs_equal_one_run(nodes, icm, comfy_sd2, clip, monkeypatch):  # noqa: F811
    video_nodes = pack_module("nodes.video_nodes")
    encodes = []
    original = video_nodes.encode_reference_context
    monkeypatch.setattr(video_nodes, "encode_reference_context", lambda *a, **k: encodes.append(1) or original(*a, **k))
    frames, mask = clip
    whole, _ = _matte(nodes, icm, comfy_sd2, frames, mask, temporal_stability=0.8)
    manager = nodes["IconMattingVideoBatchManager"]()
    encodes.clear()
    parts, texts = [], []
    for _ in range(3):
        out = manager.next_batch(3, 0, frames, unique_id="batches")
        batch, selected, start, count = out["result"]
        texts.append(out["ui"]["text"][0])
        parts.append(_matte(nodes, icm, comfy_sd2, selected, mask, temporal_stability=0.8, batch=batch)[0])
        assert start == 3 * len(parts) - 3 and count == selected.shape[0] == batch.count
    assert [p.shape[0] for p in parts] == [3, 3, 1] and encodes == [1]  # the reference is encoded once
    torch.testing.assert_close(torch.cat(parts), whole, rtol=1e-4, atol=1e-5)
    assert texts[0] == "batch 1 of 3: frames 0-2 of 7; queue 2 more run(s)" and texts[2].endswith("the last batch")
    assert manager.next_batch(3, 0, frames, unique_id="batches")["result"][2] == 0  # then a new pass begins


def test_cancelled_batch_is_handed_out_again(nodes, icm, comfy_sd2, clip):  # noqa: F811
    import comfy.model_management
    import comfy.utils

    frames, mask = clip
    manager = nodes["IconMattingVideoBatchManager"]()
    batch, selected, _, _ = manager.next_batch(4, 0, frames, unique_id="cancel")["result"]
    _matte(nodes, icm, comfy_sd2, selected, mask, batch=batch)
    batch, selected, start, _ = manager.next_batch(4, 0, frames, unique_id="cancel")["result"]
    comfy.utils.set_progress_bar_global_hook(lambda *a, **k: comfy.model_management.interrupt_current_processing())
    try:
        with pytest.raises(comfy.model_management.InterruptProcessingException):
            _matte(nodes, icm, comfy_sd2, selected, mask, batch=batch, chunk_size=1)
    finally:
        comfy.utils.set_progress_bar_global_hook(None)
    assert start == 4 and manager.next_batch(4, 0, frames, unique_id="cancel")["result"][2] == 4


def test_clips_sharing_first_and_last_frames_are_told_apart(nodes):
    manager = nodes["IconMattingVideoBatchManager"]()
    first, second = torch.full((7, 16, 24, 3), 0.5), torch.full((7, 16, 24, 3), 0.25)
    first[0] = first[-1] = second[0] = second[-1] = 0  # both fade from and to black
    batch = manager.next_batch(3, 0, first, unique_id="fades")["result"][0]
    batch.commit()  # Video In-Context Matte finished the first clip's first batch
    assert manager.next_batch(3, 0, second, unique_id="fades")["result"][2] == 0  # the second clip starts at 0
    assert manager.next_batch(3, 0, first, unique_id="fades")["result"][2] == 3  # the first goes on


def test_video_bad_inputs(nodes, icm, comfy_sd2, clip):  # noqa: F811
    frames, mask = clip
    manager = nodes["IconMattingVideoBatchManager"]()
    with pytest.raises(ValueError, match="connect the video's frames, or set total_frames"):
        manager.next_batch(4, 0)
    batch, selected, _, _ = manager.next_batch(4, 0, frames, unique_id="bad")["result"]
    with pytest.raises(ValueError, match=r"frames has 7 frames but the batch is frames 0-3"):
        _matte(nodes, icm, comfy_sd2, frames, mask, batch=batch)
    with pytest.raises(ValueError, match=r"reference_frame 5 is not in this batch \(frames 0-3\)"):
        _matte(nodes, icm, comfy_sd2, selected, mask, batch=batch, reference_frame=5)
    with pytest.raises(ValueError, match="frames is empty: connect 'frames'"):
        _matte(nodes, icm, comfy_sd2, None, mask)
    with pytest.raises(ValueError, match=r"frames must be an IMAGE \[batch, height, width, 3\]"):
        _matte(nodes, icm, comfy_sd2, frames[..., 0], mask)
    with pytest.raises(ValueError, match="temporal strength must be in 0..0.95"):
        _matte(nodes, icm, comfy_sd2, frames, mask, temporal_stability=2.0)
    unloaded = manager.next_batch(5, 12, unique_id="loader")["result"]  # frames come from a loader: ranges only
    assert unloaded[1] is None and unloaded[2:] == (0, 5)
