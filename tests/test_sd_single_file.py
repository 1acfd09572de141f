"""Reading SD2.x single-file checkpoints: the architecture from tensor shapes, and refusals of other models.

A full load of a real-layout file is in tests/test_comfyui_integration.py (ComfyUI writes the file).
"""

from __future__ import annotations

import pytest
import torch

from icm_model.backbone.sd_single_file import UNET_PREFIX, V_PREDICTION_PROBE, sd2_unet_config, unet_config


def _state(channels=(320, 640, 1280, 1280), context=1024, in_channels=4, probe_std=0.2) -> dict[str, torch.Tensor]:
    state = {
        UNET_PREFIX + "input_blocks.0.0.weight": torch.zeros(channels[0], in_channels, 3, 3),
        UNET_PREFIX + "input_blocks.1.1.transformer_blocks.0.attn2.to_k.weight": torch.zeros(channels[0], context),
        V_PREDICTION_PROBE: torch.randn(channels[0], generator=torch.Generator().manual_seed(0)) * probe_std,
    }
    for block, width in zip((1, 4, 7, 10), channels, strict=True):
        state[f"{UNET_PREFIX}input_blocks.{block}.0.in_layers.2.weight"] = torch.zeros(width, width, 3, 3)
    return state


def test_sd21_architecture_from_shapes():
    config = unet_config(_state())
    assert config == sd2_unet_config([320, 640, 1280, 1280])
    assert config["attention_head_dim"] == [5, 10, 20, 20] and config["cross_attention_dim"] == 1024


def test_other_widths_are_read_too():
    assert unet_config(_state(channels=(320, 320, 320, 320)))["block_out_channels"] == [320, 320, 320, 320]


@pytest.mark.parametrize(
    ("state", "message"),
    [
        ({}, "no Stable Diffusion U-Net"),
        (_state(context=768), "768-wide text embeddings"),
        (_state(in_channels=9), "9-channel latents"),
        (_state(probe_std=0.01), "epsilon-prediction checkpoint"),
    ],
)
def test_other_models_are_refused(state, message):
    with pytest.raises(ValueError, match=message):
        unet_config(state)
