"""The node graph gives exactly the library's alpha: Encode Reference Context -> In-Context Similarity -> Matting Head,
and Video In-Context Matte, against ``InContextMatting`` on the same backbone, seed and settings.

The library's inputs are built here from the ComfyUI tensors (IMAGE ``[B, H, W, C]`` -> ``[B, 3, H, W]``, MASK as
is), so a node layer that swaps channels, inverts or misplaces the mask, or passes another seed, ensemble or timestep
fails these tests.
"""

from __future__ import annotations

import pytest
import torch
from comfy_env import pack_module

SEED, ENSEMBLE, TIMESTEP = 7, 2, 150


@pytest.fixture
def reference_inputs():
    image = torch.rand(1, 96, 160, 3, generator=torch.Generator().manual_seed(1))
    mask = torch.zeros(1, 96, 160)
    mask[:, 20:76, 30:100] = 1.0  # off-centre: a flipped or transposed mask marks other cells
    return image, mask


def _library(comfy_sd2, icm):
    """The library's ``InContextMatting`` (the pack's copy of icm_model, as ComfyUI imports it) on ComfyUI's MODEL and
    VAE through the ComfyUI backbone adapter (itself checked against diffusers in test_nodes.py), with the checkpoint
    the loader node read."""
    model, vae, clip = comfy_sd2
    embedding = clip.encode_from_tokens_scheduled(clip.tokenize(""))[0][0]
    backbone = pack_module("nodes.comfy_backbone").ComfyBackbone(model, vae, embedding)
    return pack_module("icm_model.pipeline").InContextMatting(backbone, icm.decoder)


def _chw(images: torch.Tensor) -> torch.Tensor:
    return images.permute(0, 3, 1, 2)


@pytest.mark.parametrize(
    ("batch", "height", "width"), [(3, 70, 90), (1, 150, 200)], ids=["below-canvas", "above-canvas-guided"]
)
def test_node_graph_equals_the_library(nodes, icm, comfy_sd2, reference_inputs, batch, height, width):
    model, vae, clip = comfy_sd2
    image, mask = reference_inputs
    targets = torch.rand(batch, height, width, 3, generator=torch.Generator().manual_seed(2))
    reference = nodes["EncodeReferenceContext"]().encode(
        icm, model, vae, image, mask, "mask", TIMESTEP, ENSEMBLE, SEED, clip=clip
    )["result"][0]
    guidance = nodes["InContextSimilarity"]().compute(reference, targets, ENSEMBLE, SEED)[0]
    alpha = nodes["MattingHead"]().matte(icm, guidance, targets)[0]

    library = _library(comfy_sd2, icm)
    context = library.encode_reference(_chw(image), mask, timestep=TIMESTEP, ensemble=ENSEMBLE, seed=SEED)
    expected = library.matte(context, _chw(targets), ensemble=ENSEMBLE, seed=SEED)
    assert alpha.shape == (batch, height, width)
    torch.testing.assert_close(alpha, expected[:, 0], rtol=0, atol=0)


def test_video_node_equals_the_library(nodes, icm, comfy_sd2):
    """Without the stabiliser, every frame's alpha is the library's, the reference being frame 2 under its own mask
    (one mask per frame given)."""
    model, vae, clip = comfy_sd2
    frames = torch.rand(5, 64, 80, 3, generator=torch.Generator().manual_seed(3))
    masks = torch.zeros(5, 64, 80)
    for index in range(5):
        masks[index, 8 + 4 * index : 40 + 4 * index, 10:60] = 1.0  # another place on every frame
    alpha = nodes["VideoInContextMatte"]().matte(
        icm, model, vae, frames, masks, 2, "mask", 2, TIMESTEP, ENSEMBLE, SEED, clip=clip, temporal_stability=0.0
    )["result"][0]

    library = _library(comfy_sd2, icm)
    context = library.encode_reference(_chw(frames[2:3]), masks[2:3], timestep=TIMESTEP, ensemble=ENSEMBLE, seed=SEED)
    chunks = [library.matte(context, _chw(frames[i : i + 2]), ensemble=ENSEMBLE, seed=SEED) for i in (0, 2, 4)]
    expected = torch.cat(chunks)
    torch.testing.assert_close(alpha, expected[:, 0], rtol=0, atol=0)
