"""Tests for icm_model.evaluation.metrics: official golden values, hand-worked cases and input validation."""

from __future__ import annotations

import json

import numpy as np
import pytest
from helpers import require, shared_path

from icm_model.evaluation.metrics import (
    MattingMetrics,
    alpha_to_255,
    compute_metrics,
    connectivity_error,
    gradient_error,
    mse,
    sad,
)

GOLDEN_TOLERANCE = 1e-6
METRIC_FUNCTIONS = {"sad": sad, "mse": mse, "grad": gradient_error, "conn": connectivity_error}


GOLDEN_PATH = shared_path("ICM_METRICS_GOLDEN", "icm/metrics_golden.json")


def _golden_params() -> list:
    """One parameter per official case; without the file one ``None`` that skips, or fails in CI (:func:`_case`)."""
    if not GOLDEN_PATH.is_file():
        return [pytest.param(None, id="golden-missing")]
    cases = json.loads(GOLDEN_PATH.read_text())["cases"]
    return [pytest.param(case, id=f"seed{case['seed']}") for case in cases]


def _case() -> dict:
    """Skips the test (fails it in CI) for the missing golden file."""
    require(GOLDEN_PATH)
    raise AssertionError("unreachable: the golden file exists but gave no case")


def _random_pair(seed: int, shape: tuple[int, int] = (24, 32)) -> tuple[np.ndarray, np.ndarray]:
    rng = np.random.default_rng(seed)
    target = np.clip(rng.normal(128, 90, shape), 0, 255).round()
    pred = np.clip(target + rng.normal(0, 25, shape), 0, 255).round()
    return pred, target


def _conn_blob_images(bridge: bool) -> tuple[np.ndarray, np.ndarray]:
    """6x6 mattes: opaque columns 0..3 plus a pixel X = (0, 5) with target 1.0 and pred 0.95.

    Column 4 is transparent, so X is a separate blob, unless ``bridge`` makes (0, 4) opaque in both mattes.
    """
    target = np.zeros((6, 6))
    target[:, :4] = 255.0
    target[0, 5] = 255.0
    if bridge:
        target[0, 4] = 255.0
    pred = target.copy()
    pred[0, 5] = 0.95 * 255.0
    return pred, target


@pytest.mark.parametrize("case", _golden_params())
@pytest.mark.parametrize("name", sorted(METRIC_FUNCTIONS))
def test_matches_official_golden_values(case: dict | None, name: str) -> None:
    case = case or _case()
    value = METRIC_FUNCTIONS[name](case["pred"], case["target"], case["trimap"])
    assert value == pytest.approx(case[name], abs=GOLDEN_TOLERANCE)


@pytest.mark.parametrize("case", _golden_params())
def test_compute_metrics_matches_official_golden_values(case: dict | None) -> None:
    case = case or _case()
    metrics = compute_metrics(np.array(case["pred"]), np.array(case["target"]), np.array(case["trimap"]))
    for name, value in metrics.as_dict().items():
        assert value == pytest.approx(case[name], abs=GOLDEN_TOLERANCE), name
    unknown = np.count_nonzero(np.array(case["trimap"]) == 128) / 1000
    assert unknown == pytest.approx(case["unknown_pixels_over_1000"])


def test_sad_and_mse_by_hand() -> None:
    target = np.zeros((4, 4))
    pred = np.zeros((4, 4))
    pred[0, 0], pred[1, 1], pred[2, 2] = 255.0, 51.0, 102.0  # errors 1.0, 0.2, 0.4
    trimap = np.zeros((4, 4))
    trimap[:2] = 128.0  # 8 unknown pixels; (2, 2) is outside the region
    assert sad(pred, target, trimap) == pytest.approx((1.0 + 0.2) / 1000)
    assert mse(pred, target, trimap) == pytest.approx((1.0 + 0.04) / 8)
    assert sad(pred, target) == pytest.approx((1.0 + 0.2 + 0.4) / 1000)
    assert mse(pred, target) == pytest.approx((1.0 + 0.04 + 0.16) / 16)


def test_identical_mattes_score_zero() -> None:
    pred, _ = _random_pair(seed=1)
    assert compute_metrics(pred, pred.copy()) == MattingMetrics(sad=0.0, mse=0.0, grad=0.0, conn=0.0)


def test_gradient_error_of_constant_images_is_zero() -> None:
    assert gradient_error(np.full((10, 12), 200.0), np.full((10, 12), 200.0)) == 0.0
    assert gradient_error(np.full((10, 12), 255.0), np.zeros((10, 12))) == pytest.approx(0.0, abs=1e-15)


def test_gradient_error_sees_an_edge_and_is_symmetric() -> None:
    edge = np.zeros((10, 12))
    edge[:, 6:] = 255.0
    flat = np.zeros((10, 12))
    assert gradient_error(edge, flat) > 0.0
    pred, target = _random_pair(seed=2)
    assert gradient_error(pred, target) == pytest.approx(gradient_error(target, pred))


def test_connectivity_penalises_a_disconnected_blob() -> None:
    # Joint mask = columns 0..3 (24 px, more than the 11-12 px outside it) plus X while threshold <= 0.9.
    # Separate blob: X leaves the largest component at threshold 0.1, so its level is 0:
    #   phi_pred = 1 - 0.95 = 0.05, phi_target = 1 - 1.0 = 0  ->  Conn = 0.05 / 1000.
    # Bridged blob: X stays connected until threshold 1.0, so its level is 0.9; both distances (0.05, 0.1) are
    #   below 0.15, so phi_pred = phi_target = 1  ->  Conn = 0.  SAD cannot tell the two apart.
    separate = _conn_blob_images(bridge=False)
    bridged = _conn_blob_images(bridge=True)
    assert connectivity_error(*separate) == pytest.approx(0.05 / 1000)
    assert connectivity_error(*bridged) == pytest.approx(0.0, abs=1e-15)
    assert sad(*separate) == pytest.approx(sad(*bridged)) == pytest.approx(0.05 / 1000)


def test_connectivity_keeps_official_largest_label_quirk() -> None:
    # The joint mask (2 px) is smaller than the 34 px outside it, so the official code's "largest component" is
    # label 0, the outside. The spurious pred pixel (5, 5) keeps level 1 and gets phi = 1 in both mattes, so
    # Conn is 0 (a textbook foreground-only largest component would give 1 / 1000).
    target = np.zeros((6, 6))
    target[0, :2] = 255.0
    pred = target.copy()
    pred[5, 5] = 255.0
    assert connectivity_error(pred, target) == 0.0
    assert sad(pred, target) == pytest.approx(1 / 1000)


def test_no_trimap_equals_all_unknown_trimap() -> None:
    pred, target = _random_pair(seed=3)
    all_unknown = np.full(pred.shape, 128, dtype=np.uint8)
    assert compute_metrics(pred, target) == compute_metrics(pred, target, all_unknown)


def test_region_excludes_known_pixels_but_gradients_use_whole_image() -> None:
    pred, target = _random_pair(seed=4)
    trimap = np.full(pred.shape, 255.0)
    trimap[8:16, 10:20] = 128.0
    changed = pred.copy()
    changed[trimap != 128] = 255.0 - changed[trimap != 128]
    assert sad(changed, target, trimap) == sad(pred, target, trimap)
    assert mse(changed, target, trimap) == mse(pred, target, trimap)
    assert gradient_error(changed, target, trimap) != gradient_error(pred, target, trimap)


def test_trimap_from_unit_float_mask_is_accepted() -> None:
    pred, target = _random_pair(seed=5)
    trimap = np.zeros(pred.shape, dtype=np.uint8)
    trimap[5:15, 5:25] = 128
    expected = compute_metrics(pred, target, trimap)
    via_float32 = alpha_to_255((trimap / 255.0).astype(np.float32))
    via_half = alpha_to_255(np.where(trimap == 128, 0.5, 0.0))
    assert compute_metrics(pred, target, via_float32) == expected
    assert compute_metrics(pred, target, via_half) == expected


def test_as_dict_and_frozen_dataclass() -> None:
    metrics = MattingMetrics(sad=1.0, mse=2.0, grad=3.0, conn=4.0)
    assert metrics.as_dict() == {"sad": 1.0, "mse": 2.0, "grad": 3.0, "conn": 4.0}
    with pytest.raises(AttributeError):
        metrics.sad = 0.0  # type: ignore[misc]


def test_alpha_to_255() -> None:
    converted = alpha_to_255([[0.0, 0.5], [1.0, 0.2]])
    assert converted.dtype == np.float64
    np.testing.assert_allclose(converted, [[0.0, 127.5], [255.0, 51.0]])
    with pytest.raises(ValueError, match=r"x values must lie in 0\.\.1"):
        alpha_to_255(np.array([0.0, 255.0]))
    with pytest.raises(ValueError, match="x contains NaN"):
        alpha_to_255(np.array([0.0, np.nan]))


def test_accepts_torch_tensors() -> None:
    import torch

    pred, target = _random_pair(seed=6)
    expected = compute_metrics(pred, target)
    from_tensors = compute_metrics(torch.from_numpy(pred).float(), torch.from_numpy(target).float())
    assert from_tensors.as_dict() == pytest.approx(expected.as_dict(), rel=1e-9)
    mask = torch.rand(4, 5, requires_grad=True)
    np.testing.assert_allclose(alpha_to_255(mask), mask.detach().numpy().astype(np.float64) * 255.0)


def test_small_float_slop_outside_range_is_accepted() -> None:
    pred = np.full((3, 3), 255.0001)
    pred[0, 0] = -0.0001
    assert sad(pred, np.full((3, 3), 255.0)) > 0.0


@pytest.mark.parametrize(
    ("pred", "target", "trimap", "message"),
    [
        (np.zeros((4, 4)), np.zeros((4, 5)), None, r"target shape \(4, 5\) does not match pred shape \(4, 4\)"),
        (np.zeros((4, 4)), np.zeros((4, 4)), np.zeros((5, 4)), r"trimap shape \(5, 4\) does not match pred"),
        (np.zeros((1, 4, 4)), np.zeros((1, 4, 4)), None, r"pred must be a 2-D \(H, W\) array"),
        (np.zeros((4, 4)), np.zeros(4), None, r"target must be a 2-D \(H, W\) array"),
        (np.zeros((0, 4)), np.zeros((0, 4)), None, r"pred is empty"),
        (np.zeros((4, 4)), np.full((4, 4), np.nan), None, r"target contains NaN"),
        (np.full((4, 4), 256.0), np.zeros((4, 4)), None, r"pred values must lie in 0\.\.255"),
        (np.zeros((4, 4)), np.full((4, 4), -1.0), None, r"target values must lie in 0\.\.255"),
        (np.zeros((4, 4)), np.zeros((4, 4)), np.full((4, 4), 300.0), r"trimap values must lie in 0\.\.255"),
        (
            np.zeros((4, 4)),
            np.zeros((4, 4)),
            np.full((4, 4), 255.0),
            r"trimap has no unknown \(128\) pixels; pass trimap=None to evaluate the whole image",
        ),
    ],
)
@pytest.mark.parametrize("function", [*METRIC_FUNCTIONS.values(), compute_metrics])
def test_invalid_inputs_raise_value_error(pred, target, trimap, message: str, function) -> None:
    with pytest.raises(ValueError, match=message):
        function(pred, target, trimap)
