"""The Matting Metrics node: the paper's metrics of a MASK against a ground-truth MASK, per image and on average."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from icm_model.evaluation.metrics import compute_metrics

METRICS = ("sad", "mse", "grad", "conn")


@pytest.fixture
def node(pack):
    return pack.NODE_CLASS_MAPPINGS["IconMattingMetrics"]()


def _masks(batch: int, height: int = 24, width: int = 32, seed: int = 0) -> tuple[torch.Tensor, torch.Tensor]:
    """Predicted and true alpha ``[batch, height, width]`` in 0..1: a soft square, and a noisy copy of it."""
    generator = torch.Generator().manual_seed(seed)
    truth = torch.zeros(batch, height, width)
    truth[:, 6:18, 8:24] = 1.0
    truth[:, 5, 8:24] = 0.5
    predicted = (truth + 0.2 * torch.randn(batch, height, width, generator=generator)).clamp(0, 1)
    return predicted, truth


def _trimap(height: int = 24, width: int = 32, unknown: float = 0.5) -> torch.Tensor:
    trimap = torch.zeros(height, width)
    trimap[4:20, 6:26] = unknown
    trimap[8:16, 10:22] = 1.0
    return trimap


def _trimap255() -> np.ndarray:
    """The trimap of :func:`_trimap` with exact 0 / 128 / 255 values, as a numpy array."""
    return (_trimap(unknown=128 / 255) * 255).round().double().numpy()


def _expected(predicted, truth, trimap255=None) -> list[dict[str, float]]:
    """The metrics module on the same masks, converted to 0..255 by hand."""
    return [
        compute_metrics(predicted[i].double().numpy() * 255, truth[i].double().numpy() * 255, trimap255).as_dict()
        for i in range(predicted.shape[0])
    ]


def _means(expected: list[dict[str, float]]) -> list[float]:
    return [sum(values[name] for values in expected) / len(expected) for name in METRICS]


def test_schema(pack, node):
    cls = type(node)
    inputs = cls.INPUT_TYPES()
    assert list(inputs["required"]) == ["alpha", "ground_truth"]
    assert list(inputs["optional"]) == ["trimap"]
    assert all(spec[0] == "MASK" and spec[1]["tooltip"] for group in inputs.values() for spec in group.values())
    assert cls.RETURN_TYPES == ("FLOAT", "FLOAT", "FLOAT", "FLOAT", "STRING")
    assert cls.RETURN_NAMES == ("sad", "mse", "grad", "conn", "report")
    assert len(cls.OUTPUT_TOOLTIPS) == len(cls.RETURN_TYPES)
    assert cls.CATEGORY == "IconMatting" and cls.DESCRIPTION and callable(getattr(node, cls.FUNCTION))
    assert pack.NODE_DISPLAY_NAME_MAPPINGS["IconMattingMetrics"] == "Matting Metrics (IconMatting)"


def test_node_gives_the_library_measurement(pack, node):
    from comfy_env import pack_module

    predicted, truth = _masks(3)
    measured = pack_module("icm_model.evaluation.mask_metrics").measure_masks(predicted, truth, _trimap()[None])
    output = node.measure(predicted, truth, _trimap())
    assert output["result"] == (*measured.mean.as_dict().values(), measured.report)
    assert output["ui"]["text"] == [measured.report]


def test_single_masks_and_a_shared_ground_truth(node):
    predicted, truth = _masks(2)
    single = node.measure(predicted[0], truth[0])["result"]
    assert single[:4] == pytest.approx(list(_expected(predicted[:1], truth[:1])[0].values()), rel=1e-12)
    shared = node.measure(predicted, truth[:1])["result"]
    assert shared[:4] == pytest.approx(node.measure(predicted, truth)["result"][:4], rel=1e-12)


@pytest.mark.parametrize(
    ("change", "message"),
    [
        (lambda p, t, tri: (p, t[:, :20], tri), "ground_truth is 32x20 but alpha is 32x24"),
        (lambda p, t, tri: (p, torch.cat([t, t, t[:1]]), tri), "ground_truth has 5 masks for 2 in alpha"),
        (lambda p, t, tri: (p, t, tri[:, :30]), "trimap is 30x24 but alpha is 32x24"),
        (lambda p, t, tri: (p, t, torch.zeros(24, 32)), "trimap #0 has no unknown pixels"),
        (lambda p, t, tri: (p * 255, t, tri), "alpha must be a MASK with values in 0..1"),
        (lambda p, t, tri: (p, t.unsqueeze(-1), tri), "ground_truth must be a MASK [batch, height, width]"),
        (lambda p, t, tri: (p[:0], t, tri), "alpha is empty"),
    ],
)
def test_errors_name_the_inputs(node, change, message):
    predicted, truth = _masks(2)
    with pytest.raises(ValueError, match=message.replace("[", r"\[")):
        node.measure(*change(predicted, truth, _trimap()))
