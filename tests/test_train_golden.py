"""Parity with the official IconMatting training on the fixtures of ../shared/icm/train_golden_dev (or
$ICM_TRAIN_GOLDEN_DIR): the loss (every term per sample, the dict, the total, its gradient, the Laplacian pyramid),
the learning rates, and 1 and 3 optimiser steps of the official module from two points of the warm-up.

Shapes, keys, configs and learning rates come from the fixture's train_meta.json, so any fixture set of the same
layout is checked unchanged. Tolerances: TRAINING_NOTES.md "Determinism" (the official code run with 2 threads
against itself).
"""

from __future__ import annotations

import copy
import json
import warnings

import pytest
import torch
from diffusers import AutoencoderKL, DDIMScheduler, UNet2DConditionModel
from helpers import require, shared_path
from safetensors.torch import load_file

from icm_model.backbone.diffusers_backbone import DiffusersBackbone
from icm_model.backbone.features import PerImageNoise
from icm_model.decoder.checkpoint import OFFICIAL_PREFIX, decoder_from_state_dict, official_key
from icm_model.decoder.config import DecoderConfig
from icm_model.training import (
    OFFICIAL,
    HeadTrainer,
    StepNoise,
    TrainingBatch,
    laplacian_pyramid,
    lr_factor,
    matting_loss,
    trainable_parameters,
)
from icm_model.training.losses import MATTING_TERMS, UNKNOWN

LOSS_RTOL = 7.5e-6
"""Loss terms: relative to the value (2 threads: <= 7.5e-6)."""
LOSS_ATOL = 1e-6
"""Loss terms near 0 (an empty region gives exactly 0)."""
PREDICTION_ATOL = 1.1e-4
"""Predicted alpha (2 threads: <= 1.1e-4)."""
GRAD_RTOL = 1.6e-5
"""Gradients, relative to the tensor's largest magnitude (2 threads: <= 1.6e-5)."""
PYRAMID_ATOL = 1e-6
PARAM_ATOL = 3e-5
"""Parameters after optimiser steps (2 threads, one phase-B step: <= 3.0e-5)."""
BUFFER_ATOL = 1.9e-4
"""BatchNorm running statistics (2 threads, 3 phase-B steps: <= 1.9e-4)."""
T10_BIAS = "detail_decoder.matting_head.matting_convs.0.bias"
"""T10: a conv bias before a train-mode BatchNorm; its true gradient is 0 and Adam walks on rounding noise."""
T10_GRAD_ATOL = 1e-5
T10_NORM_MEAN = "detail_decoder.matting_head.matting_convs.1.running_mean"
"""The BatchNorm right after the T10 bias: its running mean takes the bias in (its output does not)."""


@pytest.fixture(scope="module")
def golden_dir():
    return require(shared_path("ICM_TRAIN_GOLDEN_DIR", "icm/train_golden_dev"))


@pytest.fixture(scope="module")
def meta(golden_dir):
    return json.loads((golden_dir / "train_meta.json").read_text())


@pytest.fixture(scope="module")
def losses(golden_dir):
    return load_file(golden_dir / "train_losses.safetensors")


@pytest.fixture(scope="module")
def steps(golden_dir):
    return load_file(golden_dir / "train_step.safetensors")


def _close(ours: torch.Tensor, theirs: torch.Tensor, atol: float, rtol: float = 0.0) -> float:
    """The largest excess of ``|ours - theirs|`` over ``atol + rtol * |theirs|`` (<= 0 when within), shapes equal."""
    assert ours.shape == theirs.shape, (ours.shape, theirs.shape)
    return float(((ours.detach().float() - theirs.float()).abs() - atol - rtol * theirs.float().abs()).max())


def _decoder_config(meta) -> DecoderConfig:
    params = meta["config"]["in_context_decoder"]["params"]
    return DecoderConfig.from_official(
        {
            "in_context_fusion": params["cfg_in_context_fusion"]["params"],
            "detail_decoder": params["cfg_detail_decoder"]["params"],
        }
    )


def _with_prefix(tensors: dict[str, torch.Tensor], prefix: str) -> dict[str, torch.Tensor]:
    return {key.removeprefix(prefix): value.float() for key, value in tensors.items() if key.startswith(prefix)}


@pytest.fixture(scope="module")
def official_model(meta, steps):
    """The fixture's frozen backbone and its decoder before training (train mode is the trainer's)."""
    config = meta["config"]
    unet, vae = UNet2DConditionModel(**config["unet"]), AutoencoderKL(**config["vae"])
    unet.load_state_dict(_with_prefix(steps, "unet."))
    missing, unexpected = vae.load_state_dict(_with_prefix(steps, "vae."), strict=False)
    assert not unexpected and all(key.startswith("decoder.") for key in missing)  # the official drops the VAE decoder
    alphas_cumprod = DDIMScheduler.from_config(config["scheduler"]).alphas_cumprod
    backbone = DiffusersBackbone(unet, vae, steps["input.prompt_embeds"], alphas_cumprod)
    decoder_state = {OFFICIAL_PREFIX + key: value for key, value in _with_prefix(steps, "decoder.").items()}
    return backbone, decoder_from_state_dict(decoder_state, _decoder_config(meta), "train_step.safetensors")


def test_train_golden_loss_terms_per_sample(meta, losses):
    """Every term of every sample on its route (keys as the fixture holds them) and the routes themselves."""
    prediction = losses["loss.input.prediction"]
    ours = matting_loss(prediction, losses["loss.input.alpha"], losses["loss.input.trimap"], OFFICIAL)
    assert ours.routes == meta["info"]["losses"]["routes"]
    assert torch.equal((losses["loss.input.trimap"] == UNKNOWN).float(), losses["loss.sample_map"])
    for i, sample in enumerate(ours.per_sample):
        theirs = {key.split(".", 2)[2]: value for key, value in losses.items() if key.startswith(f"loss.sample{i}.")}
        assert set(sample) == set(theirs), i
        for key, value in sample.items():
            assert _close(value, theirs[key], LOSS_ATOL, LOSS_RTOL) <= 0, (i, key, float(value), float(theirs[key]))


def test_train_golden_loss_dict_total_and_gradient(meta, losses):
    """The batch-summed dict, the total and d total / d prediction."""
    prediction = losses["loss.input.prediction"].clone().requires_grad_(True)
    ours = matting_loss(prediction, losses["loss.input.alpha"], losses["loss.input.trimap"], OFFICIAL)
    assert list(ours.terms) == meta["info"]["losses"]["loss_dict_keys"]
    for key, value in ours.terms.items():
        assert _close(value, losses[f"loss.term.{key}"], LOSS_ATOL, LOSS_RTOL) <= 0, key
    assert _close(ours.total, losses["loss.total"], LOSS_ATOL, LOSS_RTOL) <= 0
    ours.total.backward()
    theirs = losses["loss.grad_prediction"]
    assert _close(prediction.grad, theirs, GRAD_RTOL * float(theirs.abs().max())) <= 0


def test_train_golden_laplacian_pyramid(losses):
    """Every level of sample 0's pyramids (shapes included: odd sizes crop a row or column)."""
    for name in ("prediction", "alpha"):
        theirs = sorted(
            (key for key in losses if key.startswith(f"loss.debug.laplacian_pyramid.{name}.")),
            key=lambda key: int(key.rsplit(".", 1)[1]),
        )
        ours = laplacian_pyramid(losses[f"loss.input.{name}"][:1])
        assert len(ours) == len(theirs)
        for level, key in zip(ours, theirs, strict=True):
            assert _close(level, losses[key], PYRAMID_ATOL) <= 0, key


def _phase_start(meta) -> dict[str, int]:
    """Optimiser steps the schedule was advanced by before each phase: A from 0, B after the warm-up."""
    warmup = meta["official_model_params"]["cfg_scheduler"]["params"]["warm_up_steps"][0]
    return {"A": 0, "B": warmup}


def test_train_golden_recipe_and_learning_rates(meta):
    """The official recipe is the fixture's configuration, and its schedule gives every lr exactly."""
    params = meta["official_model_params"]
    schedule, loss = params["cfg_scheduler"]["params"], params["cfg_loss_function"]["params"]
    assert OFFICIAL.learning_rate == params["learning_rate"]
    assert OFFICIAL.warmup_steps == schedule["warm_up_steps"][0]
    assert OFFICIAL.warmup_start == schedule["f_start"][0]
    assert schedule["f_max"] == schedule["f_min"] == [1.0] and OFFICIAL.decay == "constant"
    assert tuple(loss["losses_matting"]) == MATTING_TERMS and loss["losses_seg"] == ["known_smooth_l1_loss"]
    for phase, start in _phase_start(meta).items():
        lrs = meta["info"]["step"]["phases"][phase]["lr"]
        assert [OFFICIAL.learning_rate * lr_factor(start + k, OFFICIAL) for k in range(len(lrs))] == lrs


def _batch(steps) -> TrainingBatch:
    return TrainingBatch(
        steps["input.reference_image"].clone(),
        steps["input.guidance_on_reference_image"].clone(),
        steps["input.source_image"].clone(),
        steps["input.alpha"].clone(),
        steps["input.trimap"].clone(),
    )


def _noise(steps, k: int, ensemble: int) -> StepNoise:
    def role(name: str) -> PerImageNoise:
        drawn = (steps[f"input.iter{k}.{name}_posterior_noise"], steps[f"input.iter{k}.{name}_diffusion_noise"])
        return PerImageNoise(*drawn, ensemble)

    return StepNoise(role("reference"), role("target"))


def _check_losses(result_terms, result_per_sample, total, steps, prefix: str) -> None:
    assert _close(torch.tensor(total), steps[f"{prefix}.loss"], LOSS_ATOL, LOSS_RTOL) <= 0, prefix
    for key, value in result_terms.items():
        assert _close(torch.tensor(value), steps[f"{prefix}.term.{key}"], LOSS_ATOL, LOSS_RTOL) <= 0, (prefix, key)
    for i, sample in enumerate(result_per_sample):
        theirs = {k.split(".")[-1] for k in steps if k.startswith(f"{prefix}.sample{i}.")}
        assert set(sample) == theirs, (prefix, i)
        for key, value in sample.items():
            assert _close(torch.tensor(value), steps[f"{prefix}.sample{i}.{key}"], LOSS_ATOL, LOSS_RTOL) <= 0


def _check_state(decoder, steps, phase: str, after: int, lrs: list[float], momentum: float) -> None:
    """Every parameter and BatchNorm buffer after ``after`` steps; the T10 bias and the running mean it feeds within
    what a walk of at most lr per step on each side allows."""
    state = {official_key(key).removeprefix(OFFICIAL_PREFIX): value for key, value in decoder.state_dict().items()}
    prefix = f"after.{phase}.{after}."
    assert set(state) == {key.removeprefix(prefix) for key in steps if key.startswith(prefix)}
    parameters = {official_key(name).removeprefix(OFFICIAL_PREFIX) for name, _ in decoder.named_parameters()}
    # bias_walk[k]: the most the T10 bias of two runs can differ after k steps (each moves <= lr per step).
    bias_walk = [2 * sum(lrs[:k]) for k in range(after + 1)]
    mean_walk = sum(momentum * (1 - momentum) ** (after - k) * bias_walk[k - 1] for k in range(1, after + 1))
    for key, value in state.items():
        theirs = steps[prefix + key]
        if key.endswith("num_batches_tracked"):
            assert int(value) == int(theirs), key
            continue
        atol = PARAM_ATOL if key in parameters else BUFFER_ATOL
        atol += {T10_BIAS: bias_walk[after], T10_NORM_MEAN: mean_walk}.get(key, 0.0)
        assert _close(value, theirs, atol) <= 0, (prefix + key, float((value.float() - theirs).abs().max()), atol)


@pytest.mark.parametrize("phase", ["A", "B"])
def test_train_golden_steps(meta, steps, official_model, phase):
    """Three official iterations on the fixture's batch and noise: losses and lrs of each, the gradients of the
    first, the prediction of the first, every parameter and BatchNorm buffer after 1 and 3 steps."""
    backbone, decoder = official_model
    info = meta["info"]["step"]
    extractor = meta["config"]["feature_extractor"]
    ensemble, timestep = extractor["ensemble_size"], extractor["time_steps"][0]
    trainer = HeadTrainer(backbone, copy.deepcopy(decoder), OFFICIAL, ensemble=ensemble, timestep=timestep)
    trainable = [official_key(n).removeprefix(OFFICIAL_PREFIX) for n, _ in trainer.decoder.named_parameters()]
    assert sorted(trainable) == sorted(info["phases"][phase]["param_order"])
    with warnings.catch_warnings():  # advancing the schedule before any optimiser step is the point here
        warnings.simplefilter("ignore", UserWarning)
        for _ in range(_phase_start(meta)[phase]):
            trainer.scheduler.step()
    lrs = info["phases"][phase]["lr"]
    momentum = next(m.momentum for m in trainer.decoder.modules() if isinstance(m, torch.nn.BatchNorm2d))
    batch = _batch(steps)
    iterations = sum(1 for key in steps if key.startswith(f"step.{phase}.") and key.endswith(".loss"))
    for k in range(iterations):
        noise = _noise(steps, k, ensemble)
        if k == 0:  # by hand, to see the gradients: zero_grad, forward, loss, backward, then Adam and the schedule
            trainer.optimizer.zero_grad(set_to_none=True)
            prediction, loss = trainer.loss(batch, noise)
            assert loss.routes == info["routes"]
            assert _close(prediction, steps["step.0.alpha_pred"], PREDICTION_ATOL) <= 0
            loss.total.backward()
            for name, parameter in trainer.decoder.named_parameters():
                key = official_key(name).removeprefix(OFFICIAL_PREFIX)
                theirs = steps[f"grad.step0.{key}"]
                atol = T10_GRAD_ATOL if key == T10_BIAS else GRAD_RTOL * float(theirs.abs().max())
                assert _close(parameter.grad, theirs, atol) <= 0, key
            terms = {key: float(value.detach()) for key, value in loss.terms.items()}
            per_sample = [{key: float(value.detach()) for key, value in s.items()} for s in loss.per_sample]
            total, lr = float(loss.total.detach()), trainer.apply()
        else:
            result = trainer.step(batch, noise)
            terms, per_sample, total, lr = result.terms, result.per_sample, result.loss, result.lr
            assert result.step == _phase_start(meta)[phase] + k + 1
        assert lr == lrs[k]
        _check_losses(terms, per_sample, total, steps, f"step.{phase}.{k}")
        if any(key.startswith(f"after.{phase}.{k + 1}.") for key in steps):
            _check_state(trainer.decoder, steps, phase, k + 1, lrs, momentum)
    assert all(p.grad is None for p in trainable_parameters(trainer.decoder))  # cleared after each step
    # T11: the official step binarised the batch's guidance in place.
    assert torch.equal(batch.reference_guidance, (steps["input.guidance_on_reference_image"] > 0.5).float())
