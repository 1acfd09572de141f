"""Training on the tiny random model: what is trained and what stays frozen, the recipes' switches against exact
values, the step's guards, and overfitting one batch."""

from __future__ import annotations

import dataclasses

import pytest
import torch
import torch.nn.functional as F

from icm_model.decoder.config import DecoderConfig
from icm_model.decoder.model import InContextDecoder
from icm_model.random_models import TINY_DECODER, random_backbone, random_decoder
from icm_model.training import (
    CORRECTED,
    OFFICIAL,
    HeadTrainer,
    TrainingBatch,
    check_loss,
    laplacian_pyramid,
    lr_factor,
    matting_loss,
    recipe_by_name,
    trainable_parameters,
)

SIZE = 128
"""The tiny model's working canvas."""
OVERFIT_STEPS = 40
OVERFIT_RECIPE = dataclasses.replace(CORRECTED, learning_rate=3e-2, warmup_steps=5)
"""The corrected recipe with a 75x learning rate and a 5-step warm-up, so that one batch is learnt in few steps."""


def _soft_ellipse(cy: float, cx: float, ry: float, rx: float, ramp: float = 6.0) -> torch.Tensor:
    """``[1, SIZE, SIZE]`` alpha: 1 inside an ellipse, a linear ramp about ``ramp`` pixels wide at its edge."""
    yy, xx = torch.meshgrid(torch.arange(SIZE), torch.arange(SIZE), indexing="ij")
    distance = (((yy - cy) / ry) ** 2 + ((xx - cx) / rx) ** 2).sqrt()
    return ((1 - distance) * max(ry, rx) / ramp + 0.5).clamp(0, 1)[None]


def _trimap(alpha: torch.Tensor) -> torch.Tensor:
    """{0, 0.5, 1}: unknown = the soft pixels dilated by 3, else the alpha's own 0 or 1."""
    soft = F.max_pool2d(((alpha > 0) & (alpha < 1)).float()[None], 7, 1, 3)[0] > 0
    return torch.where(soft, torch.tensor(0.5), (alpha > 0.5).float())


def _batch(seed: int = 0) -> TrainingBatch:
    """Two pairs: soft ellipses over noise, the reference of each its own ellipse."""
    generator = torch.Generator().manual_seed(seed)
    alphas = torch.stack([_soft_ellipse(64, 60, 30, 40), _soft_ellipse(50, 70, 35, 25)])
    references = torch.stack([_soft_ellipse(60, 64, 34, 30), _soft_ellipse(70, 60, 30, 36)])
    colour = torch.tensor([0.6, 0.2, 0.1]).view(1, 3, 1, 1)

    def images(alpha: torch.Tensor) -> torch.Tensor:
        return (torch.rand(2, 3, SIZE, SIZE, generator=generator) * 0.3 + alpha * colour) * 2 - 1

    trimaps = torch.stack([_trimap(a) for a in alphas])
    return TrainingBatch(images(references), references, images(alphas), alphas, trimaps)


@pytest.fixture(scope="module")
def backbone():
    return random_backbone("tiny", seed=0)


def test_trainable_set_is_the_decoders_50_tensors():
    """Released architecture: 50 parameters, all of the decoder, detail decoder first; with the BatchNorm buffers
    they are the checkpoint's 89 tensors."""
    with torch.device("meta"):
        decoder = InContextDecoder(DecoderConfig())
    trainable = trainable_parameters(decoder)
    assert len(trainable) == 50 and len(decoder.state_dict()) == 89
    assert {id(p) for p in trainable} == {id(p) for p in decoder.parameters()}
    names = {id(p): name for name, p in decoder.named_parameters()}
    assert [names[id(p)].startswith("head.detail.") for p in trainable] == [True] * 27 + [False] * 23


def test_step_trains_the_decoder_only(backbone):
    """After a step every decoder parameter moved and the U-Net/VAE got no gradient and did not change."""
    frozen = {name: p.clone() for name, p in [*backbone.unet.named_parameters(), *backbone.vae.named_parameters()]}
    decoder = random_decoder(TINY_DECODER, seed=0)
    before = {name: p.clone() for name, p in decoder.named_parameters()}
    trainer = HeadTrainer(backbone, decoder, CORRECTED, ensemble=1, total_steps=1000)
    trainer.optimizer.zero_grad()
    _, losses = trainer.loss(_batch(), trainer.draw_noise(_batch(), torch.Generator().manual_seed(0)))
    losses.total.backward()
    assert all(p.grad is not None for p in decoder.parameters())
    for module in (backbone.unet, backbone.vae):
        assert all(p.grad is None and not p.requires_grad for p in module.parameters())
    trainer.apply()
    assert decoder.training
    assert all(not torch.equal(p, before[name]) for name, p in decoder.named_parameters()), "a parameter did not move"
    current = dict([*backbone.unet.named_parameters(), *backbone.vae.named_parameters()])
    assert all(torch.equal(current[name], value) for name, value in frozen.items())


def test_overfit_one_batch(backbone):
    """A batch of 2 on the tiny random model: the loss falls by at least 90% in 40 steps (measured: 94%)."""
    trainer = HeadTrainer(
        backbone, random_decoder(TINY_DECODER, seed=0), OVERFIT_RECIPE, ensemble=1, total_steps=OVERFIT_STEPS
    )
    batch, generator = _batch(), torch.Generator().manual_seed(1)
    losses = [trainer.step(batch, trainer.draw_noise(batch, generator)).loss for _ in range(OVERFIT_STEPS)]
    assert losses[-1] <= 0.1 * losses[0], losses


def test_recipes_by_name():
    assert recipe_by_name("official") is OFFICIAL and recipe_by_name("corrected") is CORRECTED
    with pytest.raises(ValueError, match="unknown training recipe 'paper'.*corrected.*official"):
        recipe_by_name("paper")


def test_corrected_schedule_warms_up_then_decays_to_zero():
    total = 1000
    factors = [lr_factor(n, CORRECTED, total) for n in range(total + 1)]
    assert factors[0] == 1 / 250 and factors[250] == 1.0 and factors[total] == 0.0
    assert all(a < b for a, b in zip(factors[:250], factors[1:251], strict=True))
    assert all(a >= b for a, b in zip(factors[250:-1], factors[251:], strict=True))
    assert factors[625] == pytest.approx(0.5)
    with pytest.raises(ValueError, match="total_steps"):
        lr_factor(300, CORRECTED)
    assert [lr_factor(n, OFFICIAL) for n in (0, 250, 10**6)] == [1e-6, 1.0, 1.0]  # T5: never decays


def _two_samples() -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """Sample 0: a binary 0/1 mask with an unknown band; sample 1: soft matting. Predictions random in (0, 1)."""
    alpha = torch.stack([(_soft_ellipse(64, 64, 30, 30) > 0.5).float(), _soft_ellipse(60, 60, 30, 40)])
    prediction = torch.rand(alpha.shape, generator=torch.Generator().manual_seed(0))
    return prediction, alpha, torch.stack([_trimap(_soft_ellipse(64, 64, 30, 30)), _trimap(alpha[1])])


def test_official_routing_trains_binary_masks_as_matting():
    """T1: a mask with both 0 and 1 is a matting sample for the official loss; the corrected one routes it by its
    dataset kind, or by its values being only 0 and 1."""
    prediction, alpha, trimap = _two_samples()
    assert matting_loss(prediction, alpha, trimap, OFFICIAL).routes == ["matting", "matting"]
    assert matting_loss(prediction, alpha, trimap, CORRECTED).routes == ["segmentation", "matting"]
    assert matting_loss(prediction, alpha, trimap, CORRECTED, [False, True]).routes == ["matting", "segmentation"]


def test_corrected_terms_are_region_means_averaged_over_the_batch():
    """Region terms are plain region means (no 262144, T2), the segmentation term a true L1 under its own key (T3),
    and the batch is averaged (T4): exact values from the definitions."""
    prediction, alpha, trimap = _two_samples()
    losses = matting_loss(prediction, alpha, trimap, CORRECTED, [True, False])
    known0, unknown1 = trimap[0] != 0.5, trimap[1] == 0.5
    seg = (prediction[0] - alpha[0]).abs()[known0].mean()
    unknown = (prediction[1] - alpha[1]).abs()[unknown1].mean()
    assert list(losses.per_sample[0]) == ["segmentation_l1_loss"]
    assert float(losses.per_sample[0]["segmentation_l1_loss"]) == pytest.approx(float(seg), rel=1e-5)
    assert float(losses.per_sample[1]["unknown_l1_loss"]) == pytest.approx(float(unknown), rel=1e-5)
    assert float(losses.terms["segmentation_l1_loss"]) == pytest.approx(float(seg) / 2, rel=1e-5)
    official = matting_loss(prediction, alpha, trimap, OFFICIAL)
    scale = 262144 / SIZE**2
    assert float(official.per_sample[1]["unknown_l1_loss"]) == pytest.approx(float(unknown) * scale, rel=1e-5)
    assert float(official.terms["unknown_l1_loss"]) == pytest.approx(
        sum(float(s["unknown_l1_loss"]) for s in official.per_sample), rel=1e-6
    )


def test_official_segmentation_term_is_half_the_squared_error():
    """T3: smooth L1 on values in [0, 1] is 0.5 (p - g)**2, over the known region, logged as known_l1_loss."""
    prediction, alpha, trimap = _two_samples()
    alpha, trimap = torch.ones_like(alpha[:1]), trimap[:1]
    losses = matting_loss(prediction[:1], alpha, trimap, OFFICIAL)
    known = trimap[0] != 0.5
    expected = 0.5 * ((prediction[0] - 1)[known] ** 2).mean() * 262144 / SIZE**2
    assert losses.routes == ["segmentation"]
    assert float(losses.per_sample[0]["known_l1_loss"]) == pytest.approx(float(expected), rel=1e-5)


def test_laplacian_pyramid_of_a_constant_is_zero():
    """Every level of a constant image is 0 (the reflect padding keeps it constant; the kernel sums to 1)."""
    levels = laplacian_pyramid(torch.full((1, 1, 100, 76), 0.3, dtype=torch.float64))
    assert [tuple(level.shape[-2:]) for level in levels] == [(100, 76), (50, 38), (24, 18), (12, 8), (6, 4)]
    assert all(float(level.abs().max()) < 1e-15 for level in levels)


def test_diverged_loss_raises():
    check_loss(torch.tensor(1e4), OFFICIAL)
    for value in (1.0001e4, float("nan")):
        with pytest.raises(ValueError, match="training loss is"):
            check_loss(torch.tensor(value), OFFICIAL)
    check_loss(torch.tensor(1e6), CORRECTED)
    with pytest.raises(ValueError, match="training loss is inf"):
        check_loss(torch.tensor(float("inf")), CORRECTED)


def test_guidance_binarised_in_place_only_by_the_official_recipe(backbone):
    """T11: the official step binarises the batch's guidance tensor itself; the corrected one leaves it alone."""
    for recipe, changed in ((OFFICIAL, True), (CORRECTED, False)):
        batch = _batch()
        soft = batch.reference_guidance.clone()
        trainer = HeadTrainer(backbone, random_decoder(TINY_DECODER, seed=0), recipe, ensemble=1, total_steps=1000)
        trainer.loss(batch, trainer.draw_noise(batch, torch.Generator().manual_seed(0)))
        assert torch.equal(batch.reference_guidance, (soft > 0.5).float() if changed else soft)


def test_bad_batches_are_refused(backbone):
    batch = _batch()
    with pytest.raises(ValueError, match=r"alpha must be \[2, 1, 128, 128\]"):
        dataclasses.replace(batch, alpha=batch.alpha[:, :, :64])
    with pytest.raises(ValueError, match="square and a multiple of 32"):
        TrainingBatch(*(x[..., :100, :100] for x in (batch.reference_image, batch.reference_guidance,
                                                      batch.target_image, batch.alpha, batch.trimap)))  # fmt: skip
    empty = dataclasses.replace(batch, reference_guidance=torch.zeros_like(batch.reference_guidance))
    trainer = HeadTrainer(backbone, random_decoder(TINY_DECODER, seed=0), CORRECTED, ensemble=1, total_steps=1000)
    with pytest.raises(ValueError, match="training sample 0: its reference guidance covers no whole 16x16"):
        trainer.loss(empty)
