"""The Fine-tune IconMatting Head node, against the ComfyUI test doubles with a tiny random SD2-architecture U-Net.

ComfyUI runs every node under ``torch.inference_mode()``; so do these tests, so that training inside a node is
checked where it must work.
"""

from __future__ import annotations

import os

import pytest
import torch
from comfy_env import pack_module
from helpers import MODEL_NAME

STEPS = 3


@pytest.fixture
def reference(nodes, icm, comfy_sd2):
    model, vae, clip = comfy_sd2
    image = torch.rand(1, 96, 160, 3, generator=torch.Generator().manual_seed(1))
    mask = torch.zeros(1, 96, 160)
    mask[:, 24:72, 48:112] = 1.0
    with torch.inference_mode():
        return nodes["EncodeReferenceContext"]().encode(icm, model, vae, image, mask, "mask", 200, 2, 0, clip=clip)[
            "result"
        ][0]


@pytest.fixture
def targets() -> tuple[torch.Tensor, torch.Tensor]:
    """Two 80x120 targets and painted 0/1 mattes of a rectangle each."""
    images = torch.rand(2, 80, 120, 3, generator=torch.Generator().manual_seed(2))
    alphas = torch.zeros(2, 80, 120)
    alphas[0, 20:60, 30:90] = 1.0
    alphas[1, 10:50, 50:110] = 1.0
    return images, alphas


def _state(decoder) -> dict[str, torch.Tensor]:
    return {key: value.clone() for key, value in decoder.state_dict().items()}


def _fine_tune(nodes, reference, images, alphas, **options):
    with torch.inference_mode():
        return nodes["IconMattingFineTune"]().fine_tune(reference, images, alphas, **{"steps": STEPS, **options})


def test_fine_tune_outputs_a_new_model_for_matting_head(nodes, icm, reference, targets):
    """A changed copy comes out, bound to the reference; the input model is untouched; the rerun's alpha differs."""
    images, alphas = targets
    before = _state(icm.decoder)
    out = _fine_tune(nodes, reference, images, alphas, learning_rate=1e-3)
    model, tuned_reference = out["result"]
    assert model is not icm and tuned_reference.iconmatting_model is model
    assert tuned_reference.context is reference.context and tuned_reference.backbone is reference.backbone
    assert all(torch.equal(value, before[key]) for key, value in icm.decoder.state_dict().items())
    tuned = model.decoder.state_dict()
    changed = [key for key, value in tuned.items() if not torch.equal(value, before[key])]
    assert len(changed) == len(tuned)  # every parameter and BatchNorm buffer moved
    assert not model.decoder.training and not any(p.requires_grad for p in model.decoder.parameters())
    assert out["ui"]["text"][0].startswith(f"{STEPS} steps on 2 target(s): loss ")

    def rerun(ref, iconmatting_model):
        with torch.inference_mode():
            guidance = nodes["InContextSimilarity"]().compute(ref, images, 2, 0)[0]
            return nodes["MattingHead"]().matte(iconmatting_model, guidance, images)[0]

    old, new = rerun(reference, icm), rerun(tuned_reference, model)
    assert new.shape == (2, 80, 120) and float((new - old).abs().max()) > 1e-3


def test_fine_tune_progress_is_planned_and_full_only_at_the_end(nodes, reference, targets):
    import comfy.utils

    updates = []
    comfy.utils.set_progress_bar_global_hook(lambda value, total, preview, node_id=None: updates.append((value, total)))
    try:
        _fine_tune(nodes, reference, *targets)
    finally:
        comfy.utils.set_progress_bar_global_hook(None)
    total = updates[0][1]
    assert updates == [(value, total) for value in range(1, total + 1)]
    assert total == STEPS * (1 + 21 + 1)  # per step: one VAE encode + 21 U-Net blocks for both targets, the head


def test_fine_tune_cancel_leaves_models_untouched(nodes, icm, comfy_sd2, reference, targets, monkeypatch):
    """Cancel inside a U-Net pass of the second step: the node stops, the IconMatting and SD models are unchanged."""
    import comfy.model_management
    import comfy.utils

    interrupt = type("InterruptProcessingException", (Exception,), {})
    monkeypatch.setattr(comfy.model_management, "InterruptProcessingException", interrupt)
    before, options = _state(icm.decoder), repr(comfy_sd2[0].model_options)

    def cancel(value, total, preview, node_id=None):
        if value == 30:
            comfy.model_management.interrupt_current_processing()

    comfy.utils.set_progress_bar_global_hook(cancel)
    try:
        with pytest.raises(interrupt):
            _fine_tune(nodes, reference, *targets)
    finally:
        comfy.utils.set_progress_bar_global_hook(None)
    assert all(torch.equal(value, before[key]) for key, value in icm.decoder.state_dict().items())
    assert repr(comfy_sd2[0].model_options) == options and reference.backbone._current is None


def test_fine_tune_saves_a_checkpoint_the_loader_reads(nodes, icm, reference, targets):
    import folder_paths

    out = _fine_tune(nodes, reference, *targets, save_name="tuned head")
    assert out["ui"]["text"][0].endswith("saved as tuned head.safetensors")
    assert "tuned head.safetensors" in folder_paths.get_filename_list("icon_matting")
    loaded = nodes["LoadIconMattingModel"]().load("tuned head.safetensors")[0]
    saved = out["result"][0].decoder.state_dict()
    assert all(torch.equal(value, saved[key]) for key, value in loaded.decoder.state_dict().items())
    with pytest.raises(ValueError, match="tuned head.safetensors exists; choose another name"):
        _fine_tune(nodes, reference, *targets, save_name="tuned head")
    with pytest.raises(ValueError, match="no folders"):
        _fine_tune(nodes, reference, *targets, save_name="../" + MODEL_NAME)
    os.remove(folder_paths.get_full_path("icon_matting", "tuned head.safetensors"))


def test_fine_tune_bad_inputs(nodes, reference, targets):
    images, alphas = targets
    with pytest.raises(ValueError, match=r"target_alpha has 1 masks of \[80, 120\] for 2 target images"):
        _fine_tune(nodes, reference, images, alphas[:1])
    with pytest.raises(ValueError, match=r"target_alpha has 2 masks of \[40, 60\]"):
        _fine_tune(nodes, reference, images, alphas[:, :40, :60])
    with pytest.raises(ValueError, match="target_alpha is LoadImage's empty 64x64 MASK"):
        _fine_tune(nodes, reference, images, torch.zeros(1, 64, 64))
    assert (
        pack_module("nodes.training_nodes").IconMattingFineTune.INPUT_TYPES()["required"]["recipe"][1]["default"]
        == "corrected"
    )
