"""End-to-end behaviour of the standalone pipeline on tiny random models: geometry, seeds, bad input."""

from __future__ import annotations

import pytest
import torch

from icm_model.decoder.config import DecoderConfig
from icm_model.geometry import Letterbox
from icm_model.pipeline import InContextMatting, predict_alpha, target_guidance
from icm_model.random_models import random_decoder


@pytest.fixture
def matting(tiny_backbone, tiny_decoder) -> InContextMatting:
    return InContextMatting(tiny_backbone, tiny_decoder)


def _images(count: int, height: int, width: int, seed: int = 0) -> torch.Tensor:
    return torch.rand(count, 3, height, width, generator=torch.Generator().manual_seed(seed))


class _CountingBackbone:
    """Wraps a backbone and counts its U-Net calls and latents."""

    def __init__(self, backbone) -> None:
        self.backbone, self.calls, self.latents = backbone, 0, 0

    def __getattr__(self, name):
        return getattr(self.backbone, name)

    def run(self, noisy_latents, timestep, capture):
        self.calls += 1
        self.latents += noisy_latents.shape[0]
        return self.backbone.run(noisy_latents, timestep, capture)


@pytest.mark.parametrize(
    ("height", "width", "placed"),
    [
        (128, 128, (128, 128, 0, 0)),
        (96, 160, (77, 128, 25, 0)),  # 96 x 0.8 = 76.8 -> 77 rows, (128 - 77) // 2 = 25 above
        (300, 40, (128, 17, 0, 55)),  # 40 x 128 / 300 = 17.07 -> 17 columns
        (1, 1, (128, 128, 0, 0)),
        (4000, 100, (128, 3, 0, 62)),  # 100 x 0.032 = 3.2 -> 3
        (100, 4000, (3, 128, 62, 0)),
    ],
)
def test_letterbox_never_crops_and_restores_full_resolution(height, width, placed):
    """``placed``: content height and width, top and left on the 128 canvas, worked out by hand."""
    box = Letterbox.fit(height, width, 128)
    assert (box.content_height, box.content_width, box.top, box.left) == placed
    image = _images(1, height, width)
    canvas = box.image(image)
    assert canvas.shape == (1, 3, 128, 128)
    restored = box.restore(canvas)
    assert restored.shape == (1, 3, height, width)
    if height <= 128 and width <= 128 and (height, width) != (1, 1):
        # Upscaled then shrunk back: close to the original.
        assert (restored - image).abs().mean() < 0.1
    # The padding is mid grey and lies outside the content.
    if box.top > 0:
        assert torch.all(canvas[..., : box.top, :] == 0.5)


def test_alpha_at_full_resolution_for_any_aspect(matting, reference_pair):
    context = matting.encode_reference(*reference_pair)
    for height, width in [(64, 200), (250, 90), (1, 1), (4000, 100)]:
        alpha = matting.matte(context, _images(1, height, width))
        assert alpha.shape == (1, 1, height, width)
        assert float(alpha.min()) >= 0 and float(alpha.max()) <= 1


def test_same_seed_gives_identical_alpha(matting, reference_pair):
    targets = _images(2, 80, 120, seed=3)
    first = matting.matte(matting.encode_reference(*reference_pair, seed=7), targets, seed=11)
    second = matting.matte(matting.encode_reference(*reference_pair, seed=7), targets, seed=11)
    assert torch.equal(first, second)
    other = matting.matte(matting.encode_reference(*reference_pair, seed=7), targets, seed=12)
    assert not torch.equal(first, other)


def test_alpha_does_not_depend_on_the_batch(tiny_backbone, tiny_decoder, reference_pair):
    targets = _images(3, 64, 64, seed=4)
    batched = InContextMatting(tiny_backbone, tiny_decoder, max_batch=12)
    context = batched.encode_reference(*reference_pair)
    together = batched.matte(context, targets)
    one_by_one = InContextMatting(tiny_backbone, tiny_decoder, max_batch=4)
    alone = torch.cat([one_by_one.matte(context, targets[i : i + 1]) for i in range(3)])
    torch.testing.assert_close(together, alone, rtol=1e-4, atol=1e-5)


def test_reference_encoded_once_and_unet_batched(tiny_backbone, tiny_decoder, reference_pair):
    counting = _CountingBackbone(tiny_backbone)
    matting = InContextMatting(counting, tiny_decoder, max_batch=8)
    context = matting.encode_reference(*reference_pair, ensemble=4)
    assert (counting.calls, counting.latents) == (1, 4)
    matting.matte(context, _images(8, 64, 64), ensemble=4)
    assert (counting.calls, counting.latents) == (1 + 4, 4 + 32)


def test_several_references_form_the_union_of_their_rois(matting, reference_pair):
    image, mask = reference_pair
    first = matting.encode_reference(image, mask)
    second_mask = torch.zeros_like(mask)
    second_mask[:, :48, :80] = 1
    second = matting.encode_reference(image.flip(-1), second_mask)
    both = matting.encode_reference(torch.cat([image, image.flip(-1)]), torch.cat([mask, second_mask]))
    union = first.union(second)
    assert union.query.shape[0] == first.query.shape[0] + second.query.shape[0] == both.query.shape[0]
    torch.testing.assert_close(union.query, both.query, rtol=1e-4, atol=1e-5)
    assert len(both.token_masks) == 2
    with pytest.raises(ValueError, match="same settings"):
        first.union(matting.encode_reference(image, mask, timestep=100))


# --- bad input -------------------------------------------------------------------------------------------------


def test_empty_reference_mask(matting, reference_pair):
    image, mask = reference_pair
    with pytest.raises(ValueError, match="reference_mask is empty"):
        matting.encode_reference(image, torch.zeros_like(mask))


def test_all_ones_reference_mask(matting, reference_pair):
    image, mask = reference_pair
    with pytest.raises(ValueError, match="reference_mask covers the whole image"):
        matting.encode_reference(image, torch.ones_like(mask))


def test_mask_and_image_sizes_differ(matting, reference_pair):
    image, mask = reference_pair
    with pytest.raises(ValueError, match=r"reference_mask is 100x96 but reference_image is 160x96"):
        matting.encode_reference(image, mask[..., :100])
    with pytest.raises(ValueError, match="one mask per image"):
        matting.encode_reference(image, torch.cat([mask, mask]))


def test_nan_in_images(matting, reference_pair):
    image, mask = reference_pair
    broken = image.clone()
    broken[0, 0, 0, 0] = float("nan")
    with pytest.raises(ValueError, match="reference_image contains NaN"):
        matting.encode_reference(broken, mask)
    context = matting.encode_reference(image, mask)
    with pytest.raises(ValueError, match="target_image contains NaN"):
        matting.matte(context, broken)


def test_wrong_layout_and_range(matting, reference_pair):
    image, mask = reference_pair
    with pytest.raises(ValueError, match=r"reference_image must be RGB images \[batch, 3, height, width\]"):
        matting.encode_reference(image.permute(0, 2, 3, 1), mask)
    with pytest.raises(ValueError, match=r"reference_image must hold values in \[0, 1\]"):
        matting.encode_reference(image * 255, mask)


def test_reference_too_thin_for_any_token(matting):
    image, mask = _images(1, 4000, 100), torch.zeros(1, 4000, 100)
    mask[:, 1000:3000, 20:80] = 1
    with pytest.raises(ValueError, match="reference_mask #0 covers no whole 500x500-pixel cell") as info:
        matting.encode_reference(image, mask)
    assert "use prompt_type points or scribble" in str(info.value) and "touched" not in str(info.value)


def test_one_pixel_and_extreme_aspect_targets(matting, reference_pair):
    context = matting.encode_reference(*reference_pair)
    assert matting.matte(context, _images(1, 1, 1)).shape == (1, 1, 1, 1)
    assert matting.matte(context, _images(1, 4000, 100)).shape == (1, 1, 4000, 100)


def test_context_of_another_working_size(tiny_backbone, matting, reference_pair):
    context = matting.encode_reference(*reference_pair)
    other = random_decoder(DecoderConfig(), seed=0)
    with pytest.raises(ValueError, match="encoded at 128px but this IconMatting model works at 768px"):
        target_guidance(tiny_backbone, other, context, _images(1, 32, 32))


def test_head_refuses_other_images(matting, reference_pair):
    context = matting.encode_reference(*reference_pair)
    guidance = target_guidance(matting.backbone, matting.decoder, context, _images(2, 40, 50))
    with pytest.raises(ValueError, match="not the batch the guidance was computed from"):
        predict_alpha(matting.decoder, guidance, _images(2, 50, 40))


def test_head_refuses_other_images_of_the_same_size(matting, reference_pair):
    context = matting.encode_reference(*reference_pair)
    images = _images(2, 40, 50)
    guidance = target_guidance(matting.backbone, matting.decoder, context, images)
    other = images.clone()
    other[1] = other[1].flip(-1)
    with pytest.raises(ValueError, match=r"target_image #1 is not the image the guidance was computed from"):
        predict_alpha(matting.decoder, guidance, other)
    nearly = (images + 0.004 * torch.randn(images.shape, generator=torch.Generator().manual_seed(0))).clamp(0, 1)
    assert predict_alpha(matting.decoder, guidance, nearly)[0].shape == (2, 1, 40, 50)  # e.g. 8-bit re-encoding
