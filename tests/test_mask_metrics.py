"""The paper's metrics of MASK batches (icm_model.evaluation.mask_metrics, behind the Matting Metrics node): per-image
values equal the metrics module's, the outputs are their means, a trimap restricts the region."""

from __future__ import annotations

import pytest
from test_metrics_node import METRICS, _expected, _masks, _means, _trimap, _trimap255

from icm_model.evaluation.mask_metrics import measure_masks


def _means_of(measured) -> list[float]:
    return [getattr(measured.mean, name) for name in METRICS]


def test_batch_values_equal_the_metrics_module_and_outputs_are_means():
    predicted, truth = _masks(3)
    measured = measure_masks(predicted, truth)
    expected = _expected(predicted, truth)
    assert [m.as_dict() for m in measured.per_image] == [pytest.approx(e, rel=1e-12) for e in expected]
    assert _means_of(measured) == pytest.approx(_means(expected), rel=1e-12)
    assert len(set(values["sad"] for values in expected)) == 3  # the mean is not any single image's value
    lines = measured.report.splitlines()
    assert lines[0] == "| # | SAD | MSE | Grad | Conn |"
    for index, values in enumerate(expected):
        assert lines[2 + index].startswith(f"| {index} | {values['sad']:.4g} | {values['mse']:.4g} |")
    assert lines[5].startswith(f"| mean | {_means(expected)[0]:.4g} |")
    assert "whole image" in measured.report


def test_a_shared_ground_truth_counts_for_every_image():
    predicted, truth = _masks(2)
    assert _means_of(measure_masks(predicted, truth[:1])) == pytest.approx(_means_of(measure_masks(predicted, truth)))


@pytest.mark.parametrize("unknown", [0.5, 128 / 255, 0.45])
def test_trimap_restricts_the_region(unknown):
    predicted, truth = _masks(2)
    measured = measure_masks(predicted, truth, _trimap(unknown=unknown)[None])
    assert _means_of(measured) == pytest.approx(_means(_expected(predicted, truth, _trimap255())), rel=1e-12)
    assert _means_of(measured) != pytest.approx(_means_of(measure_masks(predicted, truth)))
    assert "trimap's unknown pixels" in measured.report


def test_perfect_prediction_scores_zero():
    _, truth = _masks(1)
    assert _means_of(measure_masks(truth, truth)) == [0.0, 0.0, 0.0, 0.0]
