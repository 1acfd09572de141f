"""Video In-Context Matte over several runs (Video Batch Manager) keeps the encoded reference only while its inputs are
the same: another reference mask, seed or MODEL (a LoRA-patched clone included) encodes the reference again.

Written against behaviour, not the cache's key: the reference image has its own aspect ratio, so its VAE encodes are
counted at the VAE; and the re-encoded batch gives the alpha of a fresh run with the new inputs.
"""

from __future__ import annotations

import pytest
import torch
from comfy_env import comfy_model
from test_identity import _lora

from icm_model.random_models import random_unet_vae

REFERENCE_SIZE = (48, 72)


@pytest.fixture
def video():
    frames = torch.rand(6, 64, 80, 3, generator=torch.Generator().manual_seed(3))
    image = torch.rand(1, *REFERENCE_SIZE, 3, generator=torch.Generator().manual_seed(4))
    mask = torch.zeros(1, *REFERENCE_SIZE)
    mask[:, 8:40, 10:50] = 1.0
    return frames, image, mask


def _run(nodes, icm, model, vae, clip, frames, image, mask, seed=0, batch=None):
    return nodes["VideoInContextMatte"]().matte(
        icm, model, vae, frames, mask, 0, "mask", 4, 200, 1, seed, clip=clip, reference_image=image,
        temporal_stability=0.0, batch=batch,
    )["result"][0]  # fmt: skip


@pytest.fixture
def reference_encodes(comfy_sd2, monkeypatch):
    """How many times the VAE encoded the reference: on the 128 canvas the 48x72 reference is letterboxed with 21 grey
    rows above it, the 64x80 frames with 13."""
    vae = comfy_sd2[1]
    encode, count = vae.encode, []

    def counting(pixels):
        if torch.all(pixels[:, 20] == 0.5):
            count.append(pixels.shape[0])
        return encode(pixels)

    monkeypatch.setattr(vae, "encode", counting)
    return count


def _other_mask(mask):
    other = torch.zeros_like(mask)
    other[:, 20:46, 30:70] = 1.0
    return other


CHANGES = {
    "nothing": lambda model, mask, seed: (model, mask, seed),
    "mask": lambda model, mask, seed: (model, _other_mask(mask), seed),
    "seed": lambda model, mask, seed: (model, mask, seed + 1),
    "model": lambda model, mask, seed: (comfy_model(random_unet_vae("tiny", seed=1)[0]), mask, seed),
    "lora clone": lambda model, mask, seed: (_lora(model, 1.0), mask, seed),
}


@pytest.mark.parametrize("change", list(CHANGES))
def test_next_batch_re_encodes_the_reference_only_when_its_inputs_change(
    nodes, icm, comfy_sd2, video, reference_encodes, change
):
    model, vae, clip = comfy_sd2
    frames, image, mask = video
    manager = nodes["IconMattingVideoBatchManager"]()
    batch, selected, _, _ = manager.next_batch(3, 0, frames, unique_id=f"cache-{change}")["result"]
    _run(nodes, icm, model, vae, clip, selected, image, mask, batch=batch)
    assert len(reference_encodes) == 1
    new_model, new_mask, new_seed = CHANGES[change](model, mask, 0)
    batch, selected, start, _ = manager.next_batch(3, 0, frames, unique_id=f"cache-{change}")["result"]
    assert start == 3
    alpha = _run(nodes, icm, new_model, vae, clip, selected, image, new_mask, new_seed, batch=batch)
    assert len(reference_encodes) == (1 if change == "nothing" else 2)
    fresh = _run(nodes, icm, new_model, vae, clip, frames[3:], image, new_mask, new_seed)  # no batch: no cache
    torch.testing.assert_close(alpha, fresh, rtol=0, atol=0)
    if change in ("mask", "seed", "model"):  # (the test doubles do not apply weight patches: a LoRA changes nothing)
        assert not torch.equal(alpha, _run(nodes, icm, model, vae, clip, frames[3:], image, mask, 0))
