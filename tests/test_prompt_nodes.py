"""The prompt and correction nodes, against the ComfyUI test doubles with a tiny random SD2-architecture U-Net."""

from __future__ import annotations

import json
import os

import pytest
import torch
from test_nodes import MODEL_NAME

from icm_model.decoder.checkpoint import save_decoder
from icm_model.random_models import random_decoder


@pytest.fixture(scope="module")
def nodes(pack):
    return pack.NODE_CLASS_MAPPINGS


@pytest.fixture(scope="module")
def icm(pack, nodes):
    import folder_paths

    folder = folder_paths.folder_names_and_paths["icon_matting"][0][0]
    os.makedirs(folder, exist_ok=True)
    save_decoder(random_decoder(seed=0), os.path.join(folder, MODEL_NAME))
    return nodes["LoadIconMattingModel"]().load(MODEL_NAME)[0]


@pytest.fixture
def image():
    return torch.rand(1, 96, 160, 3, generator=torch.Generator().manual_seed(1))


def _marks(**marks) -> str:
    return json.dumps({"version": 1, **marks})


def _encode_prompt(nodes, icm, comfy_sd2, image, prompt, ensemble=2):
    model, vae, clip = comfy_sd2
    return nodes["EncodeReferenceContext"]().encode(
        icm, model, vae, image, None, "mask", 200, ensemble, 0, clip=clip, reference_prompt=prompt
    )


def test_prompt_node_outputs_and_ui(nodes, image):
    import folder_paths

    marks = _marks(
        points=[{"x": 40, "y": 30}, {"x": 150, "y": 90, "positive": False}],
        scribbles=[{"points": [[60, 50], [100, 50]], "width": 4}],
        boxes=[{"x": 10, "y": 10, "width": 30, "height": 20}],
    )
    out = nodes["IconMattingReferencePrompt"]().mark(image, marks, 8, positive_points='[{"x": 5, "y": 6}]')
    prompt, positive, negative, mask = out["result"]
    assert json.loads(positive) == [{"x": 40, "y": 30}, {"x": 5, "y": 6}]
    assert json.loads(negative) == [{"x": 150, "y": 90}]
    assert mask.shape == (1, 96, 160) and mask[0, 50, 80] == 1 and mask[0, 15, 20] == 1 and mask[0, 90, 150] == 0
    assert prompt.extension_top_m == 8 and len(prompt.prompt.points) == 3
    (entry,) = out["ui"]["iconmatting_image"]
    assert entry["type"] == "temp" and entry["subfolder"] == ""
    assert os.path.isfile(os.path.join(folder_paths.get_temp_directory(), entry["filename"]))


def test_encode_with_prompt_reports_roi_cells(nodes, icm, comfy_sd2, image):
    marks = _marks(points=[{"x": 40, "y": 30}])
    prompt = nodes["IconMattingReferencePrompt"]().mark(image, marks, 3)["result"][0]
    out = _encode_prompt(nodes, icm, comfy_sd2, image, prompt)
    (roi,) = out["ui"]["iconmatting_roi"]
    assert (roi["width"], roi["height"]) == (160, 96)
    kinds = [cell[4] for cell in roi["cells"]]
    assert kinds.count("prompt") >= 1 and 1 <= kinds.count("extension") <= 3 * kinds.count("prompt")
    assert out["result"][0].context.query.shape[0] == len(kinds)


def test_correction_joins_the_context(nodes, icm, comfy_sd2, image):
    model, vae, clip = comfy_sd2
    mask = torch.zeros(1, 96, 160)
    mask[:, 24:72, 48:112] = 1.0
    reference = nodes["EncodeReferenceContext"]().encode(icm, model, vae, image, mask, "mask", 200, 2, 0, clip=clip)
    reference = reference["result"][0]
    targets = torch.rand(2, 70, 90, 3, generator=torch.Generator().manual_seed(2))
    alpha = torch.zeros(2, 70, 90)
    alpha[:, 10:60, 20:80] = 0.9
    marks = _marks(
        points=[{"x": 5, "y": 5}], scribbles=[{"points": [[30, 30], [60, 30]], "width": 6, "positive": False}]
    )
    out = nodes["IconMattingCorrection"]().correct(reference, targets, alpha, 1, marks)
    corrected = out["result"][0]
    assert len(corrected.context.token_masks) == 2
    assert out["ui"]["iconmatting_roi"][0]["width"] == 90 and out["ui"]["iconmatting_image"][0]["type"] == "temp"
    with pytest.raises(ValueError, match="previous_alpha is 90x60 but target 1 is 90x70"):
        nodes["IconMattingCorrection"]().correct(reference, targets, alpha[:, :60], 1, marks)
