"""Which model computed what: Matting Head refuses guidance of another IconMatting checkpoint, Combine References
refuses features of another SD model (a LoRA-patched clone included). Identities are fingerprints of content."""

from __future__ import annotations

import collections
import os
import shutil

import pytest
import torch
from comfy_env import comfy_model, pack_module
from helpers import MODEL_NAME

from icm_model.decoder.checkpoint import save_decoder
from icm_model.fingerprint import SAMPLES_PER_TENSOR, content_fingerprint, weights_fingerprint
from icm_model.random_models import random_decoder, random_unet_vae


@pytest.fixture
def reference_inputs():
    image = torch.rand(1, 64, 80, 3, generator=torch.Generator().manual_seed(1))
    mask = torch.zeros(1, 64, 80)
    mask[:, 16:48, 16:64] = 1.0
    return image, mask


def _encode(nodes, icm, model, vae, clip, image, mask):
    return nodes["EncodeReferenceContext"]().encode(icm, model, vae, image, mask, "mask", 200, 1, 0, clip=clip)[
        "result"
    ][0]


def _attention_weight(model) -> str:
    """The state-dict key of the model's first self-attention query weight (a LoRA's usual target)."""
    return next(key for key in model.model.state_dict() if key.endswith("attn1.to_q.weight"))


def _lora(model, strength: float):
    """A clone of ``model`` with a rank-1 LoRA-style weight patch, as core LoraLoader makes it."""
    key = _attention_weight(model)
    shape = model.model.state_dict()[key].shape
    up = torch.ones(shape[0], 1)
    down = torch.full((1, shape[1]), 0.01)
    clone = model.clone()
    assert clone.add_patches({key: ("lora", (up, down, None, None))}, strength) == [key]
    return clone


@pytest.fixture
def checkpoints(pack):
    """Writes IconMatting checkpoints of the test architecture into models/icon_matting (``write(name, seed)``),
    and removes them afterwards: other tests list that folder."""
    import folder_paths

    folder = folder_paths.folder_names_and_paths["icon_matting"][0][0]
    written = []

    def write(name: str, seed: int | None = None) -> str:
        written.append(os.path.join(folder, name))
        if seed is None:
            shutil.copy(os.path.join(folder, MODEL_NAME), written[-1])
        else:
            save_decoder(random_decoder(seed=seed), written[-1])
        return name

    yield write
    for path in written:
        os.remove(path)


# --- fingerprints ----------------------------------------------------------------------------------------------------


def test_weights_fingerprint_is_of_content():
    first, same, other = (random_decoder(seed=s).state_dict() for s in (0, 0, 1))
    assert weights_fingerprint(first.items()) == weights_fingerprint(same.items())  # other objects, same weights
    assert weights_fingerprint(first.items()) != weights_fingerprint(other.items())
    tuned = {n: v + 1e-4 * torch.randn_like(v) if v.is_floating_point() else v for n, v in first.items()}  # fine-tune
    assert weights_fingerprint(first.items()) != weights_fingerprint(tuned.items())
    assert weights_fingerprint(first.items(), "a") != weights_fingerprint(first.items(), "b")


def test_content_fingerprint_sees_captured_strengths():
    def patch_of(strength):
        def patch(h):
            return h * strength

        return patch

    assert content_fingerprint({"p": [patch_of(1.0)]}) == content_fingerprint({"p": [patch_of(1.0)]})
    assert content_fingerprint({"p": [patch_of(1.0)]}) != content_fingerprint({"p": [patch_of(0.5)]})
    tensor = torch.arange(1000.0)
    changed = tensor.clone()
    changed[(1000 // SAMPLES_PER_TENSOR) * 20] += 1  # one of the strided samples
    assert content_fingerprint((tensor,)) != content_fingerprint((changed,))


# --- IconMatting checkpoints -----------------------------------------------------------------------------------------


def test_matting_head_refuses_guidance_of_another_checkpoint(nodes, icm, comfy_sd2, reference_inputs, checkpoints):
    model, vae, clip = comfy_sd2
    other = nodes["LoadIconMattingModel"]().load(checkpoints("other.safetensors", seed=1))[0]  # same config
    assert other.decoder.config == icm.decoder.config
    targets = torch.rand(1, 40, 50, 3, generator=torch.Generator().manual_seed(2))
    guidance = nodes["InContextSimilarity"]().compute(_encode(nodes, icm, model, vae, clip, *reference_inputs),
                                                      targets, 1, 0)[0]  # fmt: skip
    with pytest.raises(ValueError) as error:
        nodes["MattingHead"]().matte(other, guidance, targets)
    assert str(error.value) == (
        f"iconmatting_model is other.safetensors (weights {other.fingerprint}) but the guidance was computed with "
        f"{MODEL_NAME} (weights {icm.fingerprint}): wire the Load IconMatting Model node that feeds Encode Reference "
        "Context into Matting Head's iconmatting_model too"
    )
    copy = nodes["LoadIconMattingModel"]().load(checkpoints("copy.safetensors"))[0]  # same weights, another name
    assert copy is not icm and copy.fingerprint == icm.fingerprint
    alpha = nodes["MattingHead"]().matte(copy, guidance, targets)[0]
    assert torch.equal(alpha, nodes["MattingHead"]().matte(icm, guidance, targets)[0])


def test_combine_refuses_references_of_another_checkpoint(nodes, icm, comfy_sd2, reference_inputs, checkpoints):
    model, vae, clip = comfy_sd2
    other = nodes["LoadIconMattingModel"]().load(checkpoints("other_combine.safetensors", seed=2))[0]
    first = _encode(nodes, icm, model, vae, clip, *reference_inputs)
    second = _encode(nodes, other, model, vae, clip, *reference_inputs)
    with pytest.raises(ValueError, match=r"reference_b was encoded for another IconMatting model \(other_combine"):
        nodes["IconMattingCombineReferences"]().combine(first, second)


# --- SD models and their patches -------------------------------------------------------------------------------------


def test_combine_refuses_a_lora_patched_clone(nodes, icm, comfy_sd2, reference_inputs):
    """The issue's case: a correction built on a LoRA clone of the MODEL, combined with a reference of the MODEL."""
    model, vae, clip = comfy_sd2
    plain = _encode(nodes, icm, model, vae, clip, *reference_inputs)
    lora = _encode(nodes, icm, _lora(model, 1.0), vae, clip, *reference_inputs)
    alpha = torch.zeros(1, 64, 80)
    alpha[:, 20:40, 20:60] = 1.0
    corrected = nodes["IconMattingCorrection"]().correct(lora, reference_inputs[0], alpha, 0, "")["result"][0]
    for patched in (lora, corrected):
        with pytest.raises(ValueError, match="reference_b was encoded with another SD model than reference_a"):
            nodes["IconMattingCombineReferences"]().combine(plain, patched)
    # an unpatched clone is the same model; the same LoRA at another strength is not
    clone = _encode(nodes, icm, model.clone(), vae, clip, *reference_inputs)
    assert len(nodes["IconMattingCombineReferences"]().combine(plain, clone)["result"][0].context.token_masks) == 2
    half = _encode(nodes, icm, _lora(model, 0.5), vae, clip, *reference_inputs)
    with pytest.raises(ValueError, match="another SD model"):
        nodes["IconMattingCombineReferences"]().combine(lora, half)
    again = _encode(nodes, icm, _lora(model, 1.0), vae, clip, *reference_inputs)  # another LoraLoader, same LoRA
    assert len(nodes["IconMattingCombineReferences"]().combine(lora, again)["result"][0].context.token_masks) == 2


def test_model_identity_is_of_the_weights_as_loaded():
    """Two loads of one checkpoint agree (content, not the object); a weight ComfyUI patched in place (a LoRA clone
    loaded on the device) is read from the backup, so the MODEL's identity does not change with what is loaded."""
    identity = pack_module("nodes.model_identity").model_identity
    first, second, other = (comfy_model(random_unet_vae("tiny", seed=s)[0]) for s in (0, 0, 1))
    assert identity(first) == identity(second) != identity(other)
    patched = comfy_model(random_unet_vae("tiny", seed=0)[0])
    key = _attention_weight(patched)
    weight = patched.model.state_dict()[key]
    patched.backup[key] = collections.namedtuple("Dimension", ["weight", "inplace_update"])(weight.clone(), True)
    with torch.no_grad():
        weight.add_(1.0)  # as ModelPatcher.patch_weight_to_device does in place
    assert identity(patched) == identity(first)
