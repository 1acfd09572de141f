"""Video parts in plain PyTorch: the temporal stabiliser on a textured disc, the temporal measures, chunked streaming
(motion: test_video_motion.py; the stabiliser on photo clips: test_video_stability.py)."""

from __future__ import annotations

import pytest
import torch

from icm_model.video.flicker import edge_band, flicker, mean_error, temporal_error
from icm_model.video.stream import stream_mattes
from icm_model.video.synthetic import moving_object_clip
from icm_model.video.temporal import TemporalStabiliser


@pytest.fixture(scope="module")
def clip():
    images, truth = moving_object_clip(frames=10, height=80, width=112, radius=20, speed=(3.0, 1.0), seed=0)
    return images.movedim(-1, 1), truth


@pytest.fixture(scope="module")
def noisy(clip):
    _, truth = clip
    return (truth + 0.15 * torch.randn(truth.shape, generator=torch.Generator().manual_seed(5))).clamp(0, 1)


def test_stabiliser_reduces_flicker_of_noisy_mattes(clip, noisy):
    frames, truth = clip
    band = edge_band(truth)
    steady = TemporalStabiliser(0.8)(frames, noisy)
    assert flicker(steady, band) < 0.9 * flicker(noisy, band)
    assert temporal_error(steady, truth, band) < 0.75 * temporal_error(noisy, truth, band)


def test_stabiliser_does_not_smear_a_moving_edge(clip, noisy):
    frames, truth = clip
    band = edge_band(truth)
    swept = torch.zeros_like(band)
    swept[1:] = (truth[1:] - truth[:-1]).abs() > 0.5  # pixels the moving edge crossed since the previous frame
    steady = TemporalStabiliser(0.8)(frames, truth)  # exact mattes stay (nearly) exact
    assert mean_error(steady, truth, band) < 0.01 and mean_error(steady, truth, swept) < 0.02
    smoothed = TemporalStabiliser(0.8)(frames, noisy)
    assert mean_error(smoothed, truth, swept) < mean_error(noisy, truth, swept) + 0.01
    # A plain moving average (no motion, no gate) smears the edge: what the checks above would catch.
    naive = noisy.clone()
    for t in range(1, naive.shape[0]):
        naive[t] = 0.2 * noisy[t] + 0.8 * naive[t - 1]
    assert mean_error(naive, truth, swept) > 3 * mean_error(noisy, truth, swept)


def test_stabiliser_off_chunking_and_copies(clip, noisy):
    frames, _ = clip
    assert TemporalStabiliser(0)(frames, noisy) is noisy
    whole = TemporalStabiliser(0.5)(frames, noisy)
    stabiliser = TemporalStabiliser(0.5)
    first = stabiliser(frames[:3], noisy[:3])
    twin = stabiliser.copy()
    rest = stabiliser(frames[3:], noisy[3:])
    torch.testing.assert_close(torch.cat([first, rest]), whole)
    torch.testing.assert_close(twin(frames[3:], noisy[3:]), rest)  # the copy did not move on with the original
    assert torch.equal(whole[0], noisy[0])
    with pytest.raises(ValueError, match="temporal strength must be in 0..0.95"):
        TemporalStabiliser(1.0)


def test_measures_on_known_mattes():
    truth = torch.zeros(3, 20, 20)
    truth[:, 5:15, 5:15] = 1
    band = edge_band(truth, radius=2)
    assert band[0, 10, 4] and band[0, 10, 6] and not band[0, 10, 10] and not band[0, 10, 0]
    assert flicker(truth, band) == 0 and temporal_error(truth, truth, band) == 0
    noisy = truth.clone()
    noisy[1][band[1]] = 0.5
    assert flicker(noisy, band) == pytest.approx(0.5) and temporal_error(noisy, truth, band) == pytest.approx(0.5)


def test_stream_mattes_chunks_and_counts():
    frames = torch.rand(7, 6, 5, 4)
    calls, done = [], []

    def matte_chunk(chunk):
        calls.append(chunk.shape)
        return chunk.mean(dim=1)

    alpha = stream_mattes(frames, 3, matte_chunk, on_frames=done.append)
    torch.testing.assert_close(alpha, frames[..., :3].mean(dim=-1))
    assert calls == [(3, 3, 6, 5)] * 2 + [(1, 3, 6, 5)] and done == [3, 3, 1]
    with pytest.raises(ValueError, match="chunk_size must be at least 1"):
        stream_mattes(frames, 0, matte_chunk)


@pytest.mark.parametrize(("strength", "expected"), [(0.95, [0.0, 0.3, 0.5]), (0.5, [0.0, 0.3, 0.6])])
def test_stabiliser_on_a_still_shot_is_a_running_mean_up_to_its_strength(strength, expected):
    frame = torch.rand(1, 3, 24, 32, generator=torch.Generator().manual_seed(0)).expand(3, -1, -1, -1)
    alpha = torch.tensor([0.0, 0.6, 0.9]).view(3, 1, 1).expand(3, 24, 32)
    steady = TemporalStabiliser(strength)(frame, alpha)
    torch.testing.assert_close(steady, torch.tensor(expected).view(3, 1, 1).expand(3, 24, 32), atol=1e-5, rtol=0)
