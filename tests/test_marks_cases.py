"""The shared marks cases (tests/fixtures/marks_cases.json), read by the node's parser; tests/js/marks_cases.test.mjs
runs the editor's parser on the same file, so the two cannot disagree."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
import torch

from icm_model.prompts.fingerprint import picture_fingerprint, same_picture
from icm_model.prompts.marks import parse_points
from icm_model.prompts.marks_json import parse_marks

CASES = json.loads((Path(__file__).parent / "fixtures" / "marks_cases.json").read_text(encoding="utf-8"))


def _text(case: dict) -> str:
    return case["marks"] if isinstance(case["marks"], str) else json.dumps(case["marks"])


def _parse(case: dict):
    width, height = case["image"]
    return parse_marks(_text(case), height, width, "marks", case.get("fingerprint"))


def _as_case(prompt) -> dict:
    return {
        "points": [{"x": p.x, "y": p.y, "positive": p.positive} for p in prompt.points],
        "scribbles": [
            {"points": [list(v) for v in s.points], "width": s.width, "positive": s.positive} for s in prompt.scribbles
        ],
        "boxes": [
            {"x": b.x, "y": b.y, "width": b.width, "height": b.height, "positive": b.positive} for b in prompt.boxes
        ],
    }


@pytest.mark.parametrize("case", CASES["valid"], ids=[c["name"] for c in CASES["valid"]])
def test_valid_marks(case):
    got = _as_case(_parse(case))
    assert _close(got, case["expected"]), got


def _close(got, expected) -> bool:
    """Nested equality, numbers within 1e-9 (pytest.approx does not recurse into lists of dicts)."""
    if isinstance(expected, dict):
        return got.keys() == expected.keys() and all(_close(got[k], v) for k, v in expected.items())
    if isinstance(expected, list):
        return len(got) == len(expected) and all(map(_close, got, expected))
    if isinstance(expected, bool):
        return got is expected
    return abs(got - expected) <= 1e-9


@pytest.mark.parametrize("case", CASES["invalid"], ids=[c["name"] for c in CASES["invalid"]])
def test_invalid_marks(case):
    with pytest.raises(ValueError) as error:
        _parse(case)
    assert case["error"] in str(error.value)


@pytest.mark.parametrize("case", CASES["points"], ids=[c["name"] for c in CASES["points"]])
def test_points_json(case):
    width, height = case["image"]
    if "error" in case:
        with pytest.raises(ValueError) as error:
            parse_points(case["text"], "positive_points", height, width)
        assert case["error"] in str(error.value)
    else:
        assert parse_points(case["text"], "positive_points", height, width) == [tuple(p) for p in case["expected"]]


@pytest.mark.parametrize("case", CASES["fingerprints"]["pictures"], ids=lambda c: c["name"])
def test_picture_fingerprints(case):
    rgb = torch.tensor(case["rgb"], dtype=torch.float32) / 255  # as ComfyUI's LoadImage makes an IMAGE
    image = rgb.view(case["height"], case["width"], 3).permute(2, 0, 1)
    assert picture_fingerprint(image) == case["fingerprint"]


def test_fingerprint_pairs():
    assert [same_picture(p["a"], p["b"]) for p in CASES["fingerprints"]["pairs"]] == [
        p["same"] for p in CASES["fingerprints"]["pairs"]
    ]
