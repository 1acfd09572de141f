"""The prompt and correction nodes, against the ComfyUI test doubles with a tiny random SD2-architecture U-Net."""

from __future__ import annotations

import json
import os

import pytest
import torch

from icm_model.prompts.fingerprint import picture_fingerprint


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
    # On the 128 canvas (scale 0.8, 8 rows of 16 px from y 25.6) the click lies on the border of columns 1 and 2, 1.6 px
    # into row 3, and its radius is 8 canvas px: cells (2..3, 1..2). The extension (top 3 of each) depends on attention.
    assert kinds.count("prompt") == 4 and 1 <= kinds.count("extension") <= 3 * 4
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


def test_prompt_node_bad_input(nodes, image):
    mark = nodes["IconMattingReferencePrompt"]().mark
    with pytest.raises(ValueError, match="marks: not valid JSON"):
        mark(image, '{"points": [', 8)
    with pytest.raises(ValueError, match=r"marks: points\[0\] at \(200, 5\) lies outside the 160x96 image"):
        mark(image, _marks(points=[{"x": 200, "y": 5}]), 8)
    with pytest.raises(ValueError, match=r"marks: boxes\[0\] is 30x0 pixels"):
        mark(image, _marks(boxes=[{"x": 10, "y": 10, "width": 30, "height": 0}]), 8)
    with pytest.raises(ValueError, match="drawn on a 100x100 image but the image is 160x96"):
        mark(image, _marks(image={"width": 100, "height": 100}, points=[{"x": 1, "y": 1}]), 8)
    with pytest.raises(ValueError, match="positive_points: not valid JSON"):
        mark(image, "", 8, positive_points="[{x: 1}]")
    with pytest.raises(ValueError, match="mask is 50x40 but the image is 160x96"):
        mark(image, "", 8, mask=torch.ones(1, 40, 50))
    # Marks drawn on the same image at another resolution are rescaled; LoadImage's empty mask is no mask.
    scaled = mark(image, _marks(image={"width": 320, "height": 192}, points=[{"x": 100, "y": 50}]), 8,
                  mask=torch.zeros(1, 64, 64))["result"][0]  # fmt: skip
    assert scaled.prompt.points[0].x == 50 and scaled.prompt.points[0].y == 25 and scaled.prompt.mask is None


def test_normalised_points_are_refused_by_both_point_nodes(nodes, image):
    """Points in 0..1 are refused alike by Reference Prompt (it read them as pixels at the top-left corner) and by
    Points to Reference Mask; pixel points pass both."""
    normalised, pixels = '[{"x": 0.5, "y": 0.25}, {"x": 0.75, "y": 0.5}]', '[{"x": 80, "y": 24}]'
    message = "positive_points are all within 0..1: they look like normalized coordinates, but they must be pixels"
    with pytest.raises(ValueError, match=message):
        nodes["IconMattingReferencePrompt"]().mark(image, "", 8, positive_points=normalised)
    with pytest.raises(ValueError, match=message):
        nodes["IconMattingPointsToMask"]().draw(image, normalised, 12)
    with pytest.raises(ValueError, match="negative_points are all within 0..1"):
        nodes["IconMattingReferencePrompt"]().mark(image, "", 8, positive_points=pixels, negative_points=normalised)
    prompt = nodes["IconMattingReferencePrompt"]().mark(image, "", 8, positive_points=pixels)["result"][0]
    assert prompt.prompt.points[0].x == 80 and prompt.prompt.points[0].y == 24
    assert nodes["IconMattingPointsToMask"]().draw(image, pixels, 12)[0][0, 24, 80] == 1


def test_marks_remember_their_picture(nodes, image):
    """Marks carry the fingerprint the editor computed of the picture they were drawn on (the node sends its own with
    the image it shows): another picture of the same size is refused, the same one (also at double size) and old
    marks without a fingerprint are not."""
    mark = nodes["IconMattingReferencePrompt"]().mark
    out = mark(image, "", 8)
    fingerprint = out["ui"]["iconmatting_image"][0]["fingerprint"]
    assert fingerprint == picture_fingerprint(image[0].permute(2, 0, 1))
    drawn = _marks(image={"width": 160, "height": 96, "fingerprint": fingerprint}, points=[{"x": 40, "y": 30}])
    assert mark(image, drawn, 8)["result"][0].prompt.points[0].x == 40
    double = torch.nn.functional.interpolate(image.permute(0, 3, 1, 2), scale_factor=2, mode="nearest")
    assert mark(double.permute(0, 2, 3, 1), drawn, 8)["result"][0].prompt.points[0].x == 80
    other = torch.rand(1, 96, 160, 3, generator=torch.Generator().manual_seed(9)) ** 3
    with pytest.raises(ValueError, match="marks: drawn on another picture .*clear the marks and mark this image"):
        mark(other, drawn, 8)
    assert mark(other, _marks(points=[{"x": 40, "y": 30}]), 8)["result"][0].prompt.points[0].x == 40


def test_correction_marks_remember_their_target(nodes, icm, comfy_sd2, image):
    """Correct Target's marks drawn on target 0 are refused when target_index picks another target; the editor gets
    the fingerprint of the target, not of the tinted overlay it shows."""
    prompt = nodes["IconMattingReferencePrompt"]().mark(image, _marks(points=[{"x": 40, "y": 30}]), 0)["result"][0]
    reference = _encode_prompt(nodes, icm, comfy_sd2, image, prompt, ensemble=1)["result"][0]
    targets = torch.stack([torch.linspace(0, 1, 90).expand(70, 90), torch.linspace(0, 1, 70)[:, None].expand(70, 90)])
    targets = targets[..., None].expand(-1, -1, -1, 3).contiguous()
    alpha = torch.ones(2, 70, 90)
    correct = nodes["IconMattingCorrection"]().correct
    fingerprint = correct(reference, targets, alpha, 0, "")["ui"]["iconmatting_image"][0]["fingerprint"]
    assert fingerprint == picture_fingerprint(targets[0].permute(2, 0, 1))
    drawn = _marks(image={"width": 90, "height": 70, "fingerprint": fingerprint}, points=[{"x": 5, "y": 5}])
    assert len(correct(reference, targets, alpha, 0, drawn)["result"][0].context.token_masks) == 2
    with pytest.raises(ValueError, match="marks: drawn on another picture"):
        correct(reference, targets, alpha, 1, drawn)


def test_encode_refuses_missing_or_empty_prompts(nodes, icm, comfy_sd2, image):
    model, vae, clip = comfy_sd2
    with pytest.raises(ValueError, match="wire reference_prompt .* or reference_mask"):
        nodes["EncodeReferenceContext"]().encode(icm, model, vae, image, None, "mask", 200, 2, 0, clip=clip)
    empty = nodes["IconMattingReferencePrompt"]().mark(image, "", 8)["result"][0]
    with pytest.raises(ValueError, match="reference_prompt has no marks on the object"):
        _encode_prompt(nodes, icm, comfy_sd2, image, empty)
    cancelled = nodes["IconMattingReferencePrompt"]().mark(
        image, _marks(points=[{"x": 40, "y": 30}, {"x": 40, "y": 30, "positive": False}]), 8
    )["result"][0]
    with pytest.raises(ValueError, match="reference_prompt's marks select no 20x20-pixel cell"):
        _encode_prompt(nodes, icm, comfy_sd2, image, cancelled)
    prompt = nodes["IconMattingReferencePrompt"]().mark(image, _marks(points=[{"x": 40, "y": 30}]), 8)["result"][0]
    with pytest.raises(ValueError, match="made on a 160x96 image but reference_image is 90x70"):
        _encode_prompt(nodes, icm, comfy_sd2, torch.rand(1, 70, 90, 3), prompt)
    with pytest.raises(ValueError, match="reference_prompt marks one image but reference_image has 2"):
        _encode_prompt(nodes, icm, comfy_sd2, image.expand(2, -1, -1, -1), prompt)


def test_correction_bad_input(nodes, icm, comfy_sd2, image):
    prompt = nodes["IconMattingReferencePrompt"]().mark(image, _marks(points=[{"x": 40, "y": 30}]), 0)["result"][0]
    reference = _encode_prompt(nodes, icm, comfy_sd2, image, prompt)["result"][0]
    targets = torch.rand(2, 70, 90, 3)
    correct = nodes["IconMattingCorrection"]().correct
    with pytest.raises(ValueError, match="target_index 2 is not a target: target_image has 2 images"):
        correct(reference, targets, torch.zeros(2, 70, 90), 2, "")
    with pytest.raises(ValueError, match="previous_alpha has shape \\[3, 70, 90\\]"):
        correct(reference, targets, torch.zeros(3, 70, 90), 0, "")
    with pytest.raises(ValueError, match="previous_alpha is 70x90 but target 0 is 90x70"):
        correct(reference, targets, torch.zeros(1, 90, 70), 0, "")
    with pytest.raises(ValueError, match=r"the correction \(previous_alpha > 0.5 .*\) select no"):
        correct(reference, targets, torch.zeros(2, 70, 90), 0, "")
    with pytest.raises(ValueError, match="outside the 90x70 image"):
        correct(reference, targets, torch.ones(2, 70, 90), 0, _marks(points=[{"x": 100, "y": 5}]))


def test_correction_rounds_chain(nodes, icm, comfy_sd2, image):
    prompt = nodes["IconMattingReferencePrompt"]().mark(image, _marks(points=[{"x": 40, "y": 30}]), 0)["result"][0]
    reference = _encode_prompt(nodes, icm, comfy_sd2, image, prompt)["result"][0]
    targets = torch.rand(1, 64, 64, 3, generator=torch.Generator().manual_seed(3))
    alpha = torch.zeros(1, 64, 64)
    alpha[:, 8:56, 8:56] = 1
    correct = nodes["IconMattingCorrection"]().correct
    first = correct(reference, targets, alpha, 0, _marks(points=[{"x": 60, "y": 60}]))["result"][0]
    leak = _marks(boxes=[{"x": 0, "y": 0, "width": 64, "height": 32, "positive": False}])
    second = correct(first, targets, alpha, 0, leak)
    tokens = [int(m.sum()) for m in second["result"][0].context.token_masks]
    # 64x64 targets fill the 128 canvas: cells of 8 target px. The reference: 4 cells (above). Round 1: alpha > 0.5 on
    # [8, 56)^2 holds the whole cells 1..6 of each axis (36) and the click at (60, 60) adds cell (7, 7) (the cells
    # beside lie exactly one radius, 4 px, away: not touched). Round 2: the negative box over y < 32 removes rows 1..3.
    assert tokens == [4, 36 + 1, 36 - 3 * 6]
    assert second["ui"]["text"][0].startswith("3 reference(s)")
    # The second correction's cells all lie below its negative box.
    cells = second["ui"]["iconmatting_roi"][0]["cells"]
    assert len(cells) == tokens[2] and all(y0 >= 32 for _, y0, *_ in cells)


def test_comfy_reference_attention_patcher(pack, comfy_sd2):
    from comfy_env import pack_module

    backbone_module = pack_module("nodes.comfy_backbone")
    capture_module = pack_module("icm_model.backbone.capture")
    model, vae, clip = comfy_sd2
    backbone = backbone_module.ComfyBackbone(model, vae, clip.embedding)
    patches = lambda p: p.model_options["transformer_options"].get("patches_replace", {}).get("attn1", {})  # noqa: E731
    assert patches(backbone.reference_patcher) == {} and patches(model) == {}
    assert set(patches(backbone.reference_attention_patcher)) == {
        ("input", 4, 0), ("input", 5, 0), ("output", 6, 0), ("output", 7, 0), ("output", 8, 0)
    }  # fmt: skip
    latents = torch.randn(2, 4, 16, 16, generator=torch.Generator().manual_seed(6))
    capture = capture_module.UNetCapture(with_attention=False, reference_attention=True)
    assert backbone.run(latents, 200, capture) is None
    assert capture.attention_layers == {capture_module.HIGH: 5} and set(capture.up_features) == {1}
    target = capture_module.UNetCapture(with_attention=True)
    backbone.run(latents, 200, target)
    torch.testing.assert_close(capture.attention(capture_module.HIGH), target.attention(capture_module.HIGH))
