"""Shared fixtures: tiny random SD2-architecture models."""

from __future__ import annotations

import os

import pytest
import torch
from helpers import MODEL_NAME

from icm_model.decoder.checkpoint import save_decoder
from icm_model.random_models import TINY_DECODER, random_backbone, random_decoder


@pytest.fixture(scope="session")
def tiny_backbone():
    return random_backbone("tiny", seed=0)


@pytest.fixture(scope="session")
def tiny_decoder():
    return random_decoder(TINY_DECODER, seed=0)


@pytest.fixture
def reference_pair() -> tuple[torch.Tensor, torch.Tensor]:
    """A 96x160 reference image and a mask marking a 48x64 rectangle of it."""
    image = torch.rand(1, 3, 96, 160, generator=torch.Generator().manual_seed(1))
    mask = torch.zeros(1, 96, 160)
    mask[:, 24:72, 48:112] = 1.0
    return image, mask


@pytest.fixture(scope="session")
def pack(tmp_path_factory):
    """The pack imported as ComfyUI imports it, against the ComfyUI test doubles."""
    from comfy_env import load_pack

    return load_pack(tmp_path_factory.mktemp("models"))


@pytest.fixture(scope="session")
def comfy_sd2(pack):
    """ComfyUI-side MODEL, VAE and CLIP doubles on the tiny random SD2 weights of ``tiny_backbone``."""
    from comfy.sd import CLIP, VAE
    from comfy_env import comfy_model

    from icm_model.random_models import random_prompt_embeds, random_unet_vae

    unet, vae = random_unet_vae("tiny", seed=0)
    return comfy_model(unet), VAE(vae), CLIP(random_prompt_embeds("tiny", seed=0))


@pytest.fixture(scope="session")
def comfy_checkpoint(tmp_path_factory):
    """The small random SD2.x-v checkpoint ComfyUI writes (tests/comfy_server.py); needs COMFYUI_PATH."""
    from comfy_server import comfyui_path, small_checkpoint

    comfyui_path()
    return small_checkpoint(tmp_path_factory.getbasetemp() / "checkpoint")


@pytest.fixture(scope="session")
def comfy_servers(tmp_path_factory):
    """Real ComfyUI servers, one per frontend, started on first use: ``comfy_servers.get("pinned")``."""
    from comfy_server import ComfyServers

    servers = ComfyServers(tmp_path_factory.mktemp("comfy"), tmp_path_factory.getbasetemp() / "checkpoint")
    yield servers
    servers.close()


@pytest.fixture(scope="module")
def nodes(pack):
    """NODE_CLASS_MAPPINGS of the pack under test."""
    return pack.NODE_CLASS_MAPPINGS


@pytest.fixture(scope="module")
def icm(pack, nodes):
    """The ICON_MATTING_MODEL of a random checkpoint written to models/icon_matting, loaded by the loader node."""
    import folder_paths

    folder = folder_paths.folder_names_and_paths["icon_matting"][0][0]
    os.makedirs(folder, exist_ok=True)
    save_decoder(random_decoder(seed=0), os.path.join(folder, MODEL_NAME))
    return nodes["LoadIconMattingModel"]().load(MODEL_NAME)[0]


@pytest.fixture(scope="session")
def standalone_models(tmp_path_factory):
    """A tiny diffusers SD2 folder, a random IconMatting checkpoint and a reference image + mask, as files:
    ``(root, matte arguments before --targets/--out)``."""
    import numpy as np
    from PIL import Image

    from icm_model.decoder.checkpoint import save_decoder
    from icm_model.random_models import random_decoder, write_diffusers_folder

    root = tmp_path_factory.mktemp("standalone")
    write_diffusers_folder(root / "sd", "tiny")
    save_decoder(random_decoder(), root / "icm.safetensors")
    rng = np.random.default_rng(0)
    Image.fromarray(rng.integers(0, 255, (100, 150, 3), dtype=np.uint8)).save(root / "ref.png")
    mask = np.zeros((100, 150), np.uint8)
    mask[20:80, 40:110] = 255
    Image.fromarray(mask).save(root / "mask.png")
    args = ["--sd", str(root / "sd"), "--icm", str(root / "icm.safetensors"), "--reference", str(root / "ref.png")]
    return root, [*args, "--reference-mask", str(root / "mask.png"), "--ensemble", "2", "--max-batch", "4"]
