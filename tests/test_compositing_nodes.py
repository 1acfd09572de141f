"""Composite over Background and the foreground options of the cut-out nodes, against the ComfyUI doubles."""

from __future__ import annotations

import pytest
import torch


@pytest.fixture(scope="module")
def node(pack):
    return pack.NODE_CLASS_MAPPINGS["IconMattingComposite"]()


def _run(node, foreground, alpha=None, background=None, mode="straight", fit="cover", colour="#00ff00"):
    return node.composite(foreground, mode, fit, colour, alpha=alpha, background=background)[0]


def test_rgba_over_a_colour(node):
    rgba = torch.rand(2, 6, 5, 4, generator=torch.Generator().manual_seed(0))
    result = _run(node, rgba, colour="#ff0000")
    alpha = rgba[..., 3:]
    expected = alpha * rgba[..., :3] + (1 - alpha) * torch.tensor([1.0, 0.0, 0.0])
    assert result.shape == (2, 6, 5, 3)
    torch.testing.assert_close(result, expected)


def test_straight_and_premultiplied_agree(node):
    colour = torch.rand(3, 6, 5, 3, generator=torch.Generator().manual_seed(1))
    alpha = torch.rand(3, 6, 5, generator=torch.Generator().manual_seed(2))
    background = torch.rand(3, 9, 9, 3, generator=torch.Generator().manual_seed(3))
    straight = _run(node, colour, alpha, background, fit="stretch")
    premultiplied = _run(node, colour * alpha.unsqueeze(-1), alpha, background, "premultiplied", fit="stretch")
    torch.testing.assert_close(straight, premultiplied)
    assert not torch.allclose(straight, _run(node, colour, alpha, background, "premultiplied", fit="stretch"))


def test_alpha_input_wins_over_the_fourth_channel(node):
    rgba = torch.rand(1, 4, 4, 4)
    opaque = _run(node, rgba, alpha=torch.ones(4, 4))  # a 2-D MASK is one alpha
    torch.testing.assert_close(opaque, rgba[..., :3])


def test_sizes_and_batch_broadcasting(node):
    foreground = torch.rand(4, 10, 16, 3, generator=torch.Generator().manual_seed(4))
    alpha = torch.zeros(1, 10, 16)  # one alpha for every image: all background
    background = torch.rand(1, 3, 2, 3, generator=torch.Generator().manual_seed(5))
    tiled = _run(node, foreground, alpha, background, fit="tile")
    assert tiled.shape == (4, 10, 16, 3)
    assert torch.equal(tiled[2, 4, 5], background[0, 1, 1]) and torch.equal(tiled[0], tiled[3])
    per_image = torch.rand(4, 30, 20, 3, generator=torch.Generator().manual_seed(6))
    covered = _run(node, foreground, alpha, per_image, fit="cover")
    assert covered.shape == (4, 10, 16, 3) and not torch.equal(covered[0], covered[1])
    stretched = _run(node, foreground, torch.ones(4, 10, 16), torch.rand(1, 100, 7, 4), fit="stretch")
    torch.testing.assert_close(stretched, foreground)


@pytest.mark.parametrize(
    ("inputs", "message"),
    [
        ({"foreground": torch.rand(1, 4, 4, 3)}, "foreground has no alpha channel: wire the alpha MASK"),
        ({"foreground": torch.rand(4, 4, 3)}, r"foreground must be an IMAGE \[batch, height, width, 3 or 4\]"),
        ({"foreground": torch.rand(1, 4, 4, 3), "alpha": torch.rand(1, 4, 5)}, r"alpha \[1, 4, 5\] does not fit"),
        (
            {"foreground": torch.rand(3, 4, 4, 3), "alpha": torch.rand(2, 4, 4)},
            r"batch sizes do not match \(foreground 3, alpha 2\)",
        ),
        (
            {"foreground": torch.rand(2, 4, 4, 4), "background": torch.rand(3, 8, 8, 3)},
            r"batch sizes do not match \(foreground 2, alpha 2, background 3\)",
        ),
        ({"foreground": torch.rand(1, 4, 4, 4), "background": torch.rand(8, 8, 3)}, "background must be an IMAGE"),
        ({"foreground": torch.rand(1, 4, 4, 4), "colour": "chartreuse"}, "background_color 'chartreuse' is not a"),
    ],
)
def test_bad_input_is_named(node, inputs, message):
    with pytest.raises(ValueError, match=message):
        _run(node, **inputs)


def test_apply_alpha_estimates_the_foreground_colour(pack):
    apply = pack.NODE_CLASS_MAPPINGS["IconMattingApplyAlpha"]()
    rows = torch.linspace(0, 1, 40).view(1, 40, 1).expand(1, 40, 30)
    alpha = rows.clamp(0.2, 0.8).sub(0.2).div(0.6)  # a wide soft edge
    red, blue = torch.tensor([1.0, 0.0, 0.0]), torch.tensor([0.0, 0.0, 1.0])
    image = alpha.unsqueeze(-1) * red + (1 - alpha.unsqueeze(-1)) * blue
    soft = (alpha > 0.05) & (alpha < 0.95)
    for method, bound in (("multilevel", 0.05), ("blur_fusion", 0.3)):
        foreground, rgba = apply.apply(image, alpha, method)
        assert (rgba[..., :3][soft] - red).abs().max() < bound, method  # no blue fringe
        torch.testing.assert_close(foreground, rgba[..., :3] * alpha.unsqueeze(-1))
    plain = apply.apply(image, alpha, "multiply")[1]
    assert (plain[..., :3][soft] - red).abs().max() > 0.8  # the old background in the soft edge


# --- alpha and NaN checks, the same in both nodes ---------------------------------------------------------------------


@pytest.fixture(scope="module")
def apply(pack):
    return pack.NODE_CLASS_MAPPINGS["IconMattingApplyAlpha"]()


def _both(node, apply, image, alpha):
    """The straight RGBA of Apply Alpha and the composite over black of Composite, for the same image and alpha."""
    return apply.apply(image, alpha, "multiply")[1], _run(node, image, alpha, colour="#000000")


def test_alpha_slightly_outside_0_1_is_clamped_alike_in_both_nodes(node, apply):
    image = torch.rand(2, 5, 6, 3, generator=torch.Generator().manual_seed(7))
    alpha = torch.linspace(-0.25, 1.25, 60).view(2, 5, 6)  # the margin's ends are still clamped
    rgba, composed = _both(node, apply, image, alpha)
    clamped = alpha.clamp(0, 1)
    assert torch.equal(rgba[..., 3], clamped)
    torch.testing.assert_close(composed, image * clamped.unsqueeze(-1))


@pytest.mark.parametrize(
    ("alpha", "message"),
    [
        (torch.full((1, 5, 6), 255.0), r"alpha runs from 255 to 255, but alpha is 0 .* \(divide an alpha of 0..255"),
        (torch.full((1, 5, 6), 1.2501), "alpha runs from 0 to 1.2501|alpha runs from 1.2501 to 1.2501"),
        (torch.full((1, 5, 6), -1.0), r"alpha runs from -1 to -1, but alpha is 0 \(background\) to 1 \(foreground\);"),
        (torch.zeros(1, 5, 6).index_put_((torch.tensor([0]),) * 3, torch.tensor(float("nan"))), "alpha has 1 NaN"),
    ],
)
def test_bad_alpha_is_refused_alike_in_both_nodes(node, apply, alpha, message):
    image = torch.rand(1, 5, 6, 3)
    with pytest.raises(ValueError, match=message):
        apply.apply(image, alpha, "multiply")
    with pytest.raises(ValueError, match=message):
        _run(node, image, alpha)


@pytest.mark.parametrize("method", ["multiply", "multilevel", "blur_fusion"])
def test_nan_in_an_image_is_named(node, apply, method):
    image = torch.rand(2, 5, 6, 3)
    image[1, 2, 3, 0] = float("nan")
    with pytest.raises(ValueError, match="image has 1 NaN or infinite values: fix the node that produced it"):
        apply.apply(image, torch.rand(5, 6), method)
    with pytest.raises(ValueError, match="foreground has 1 NaN"):
        _run(node, image, torch.rand(5, 6))
    with pytest.raises(ValueError, match="background has 1 NaN"):
        _run(node, torch.rand(2, 5, 6, 4), background=image)
    rgba = torch.rand(1, 5, 6, 4)
    rgba[0, 0, 0, 3] = 255
    with pytest.raises(ValueError, match="foreground's alpha channel runs from"):
        _run(node, rgba)


def test_apply_alpha_batches(apply):
    image = torch.rand(3, 5, 6, 3)
    assert apply.apply(image, torch.rand(5, 6), "multiply")[1].shape == (3, 5, 6, 4)  # one alpha for all
    with pytest.raises(ValueError, match="alpha has 2 masks for 3 images in image: give one per image"):
        apply.apply(image, torch.rand(2, 5, 6), "multiply")
    with pytest.raises(ValueError, match=r"alpha \[1, 5, 7\] does not fit images of 6x5"):
        apply.apply(image, torch.rand(1, 5, 7), "multiply")


# --- Cancel ----------------------------------------------------------------------------------------------------------


@pytest.mark.parametrize("method", ["multilevel", "blur_fusion"])
def test_cancel_is_answered_within_one_image(apply, method, monkeypatch):
    """The interrupt check runs before every image and after every sweep of the estimation (it used to run once per
    16-megapixel chunk: 16 images of 1024^2 before Cancel was seen)."""
    import comfy.model_management

    calls = []
    check = comfy.model_management.throw_exception_if_processing_interrupted
    monkeypatch.setattr(comfy.model_management, "throw_exception_if_processing_interrupted", lambda: calls.append(1))
    image, alpha = torch.rand(4, 64, 64, 3), torch.rand(4, 64, 64)
    apply.apply(image, alpha, method)
    per_image, remainder = divmod(len(calls), 4)
    assert remainder == 0 and per_image == {"multilevel": 1 + 6 * 10 * 2 + 2 * 2, "blur_fusion": 1 + 2}[method]

    def cancel_halfway_through_the_first_image():
        calls.append(1)
        if len(calls) == per_image // 2:
            comfy.model_management.interrupt_current_processing()  # Cancel pressed: this very check answers
        check()

    calls.clear()
    monkeypatch.setattr(
        comfy.model_management, "throw_exception_if_processing_interrupted", cancel_halfway_through_the_first_image
    )
    with pytest.raises(comfy.model_management.InterruptProcessingException):
        apply.apply(image, alpha, method)
    assert len(calls) == per_image // 2 < per_image  # answered halfway through the first image
    assert not comfy.model_management.processing_interrupted()
