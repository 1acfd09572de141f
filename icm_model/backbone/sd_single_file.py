"""Stable Diffusion 2.x from its single-file checkpoint (the file ComfyUI loads from models/checkpoints).

SD2.1 left its Hugging Face home in November 2025, and diffusers' own single-file loader fetches configs from there;
this module needs nothing from the network: the U-Net config is read off the tensor shapes, the VAE and text encoder
configs are SD2's fixed ones, and the empty prompt is tokenized without a tokenizer file.
"""

from __future__ import annotations

from pathlib import Path

import torch
from diffusers import AutoencoderKL, UNet2DConditionModel
from diffusers.loaders.single_file_utils import (
    convert_ldm_unet_checkpoint,
    convert_ldm_vae_checkpoint,
    convert_open_clip_checkpoint,
)
from safetensors.torch import load_file

from ..validation import InputError

UNET_PREFIX = "model.diffusion_model."
SD2_SCHEDULER = dict(
    num_train_timesteps=1000, beta_start=0.00085, beta_end=0.012, beta_schedule="scaled_linear",
    prediction_type="v_prediction", clip_sample=False, set_alpha_to_one=False, steps_offset=1,
)  # fmt: skip
"""SD2.1 768-v's training noise schedule (scheduler/scheduler_config.json of the diffusers release)."""
VAE_CONFIG = dict(
    in_channels=3, out_channels=3, latent_channels=4, down_block_types=["DownEncoderBlock2D"] * 4,
    up_block_types=["UpDecoderBlock2D"] * 4, block_out_channels=[128, 256, 512, 512], layers_per_block=2,
    scaling_factor=0.18215, sample_size=768,
)  # fmt: skip
OPEN_CLIP_H_TEXT = dict(
    vocab_size=49408, hidden_size=1024, intermediate_size=4096, num_hidden_layers=23, num_attention_heads=16,
    max_position_embeddings=77, hidden_act="gelu", projection_dim=1024,
)  # fmt: skip
"""OpenCLIP ViT-H/14's text tower as SD2 uses it: the penultimate layer (23 of 24), then the final LayerNorm."""
EMPTY_PROMPT_IDS = [49406, 49407] + [0] * 75
"""The empty prompt for OpenCLIP: start and end of text, padded with 0."""
V_PREDICTION_PROBE = UNET_PREFIX + "output_blocks.11.1.transformer_blocks.0.norm1.bias"
V_PREDICTION_STD = 0.09
"""ComfyUI's test (supported_models.SD20.model_type): SD2 768-v has a wide spread of this bias, SD2-base does not."""


def read_checkpoint(path: Path) -> dict[str, torch.Tensor]:
    """The tensors of a ``.safetensors`` or ``.ckpt`` (read with ``weights_only``) single-file checkpoint."""
    if path.suffix.lower() == ".safetensors":
        return load_file(str(path))
    loaded = torch.load(path, map_location="cpu", weights_only=True)
    return loaded.get("state_dict", loaded)


def sd2_unet_config(block_out_channels: list[int], **overrides) -> dict:
    """A diffusers U-Net config of the SD2.x layout: 4 levels of 2 res blocks, cross-attention on the first three,
    linear projections, heads of 64 channels, 1024-wide text embeddings; ``overrides`` replace any entry."""
    return dict(
        sample_size=96, in_channels=4, out_channels=4, layers_per_block=2, block_out_channels=block_out_channels,
        down_block_types=["CrossAttnDownBlock2D"] * 3 + ["DownBlock2D"],
        up_block_types=["UpBlock2D"] + ["CrossAttnUpBlock2D"] * 3,
        attention_head_dim=[c // 64 for c in block_out_channels], cross_attention_dim=1024,
        use_linear_projection=True, upcast_attention=True,
    ) | overrides  # fmt: skip


def unet_config(state: dict[str, torch.Tensor]) -> dict:
    """The diffusers U-Net config of an SD2.x checkpoint, read off its tensor shapes.

    Raises:
        ValueError: when the file is not an SD2.x v-prediction text-to-image checkpoint.
    """
    to_k = state.get(UNET_PREFIX + "input_blocks.1.1.transformer_blocks.0.attn2.to_k.weight")
    first = state.get(UNET_PREFIX + "input_blocks.0.0.weight")
    if to_k is None or first is None:
        raise InputError("this file holds no Stable Diffusion U-Net (no model.diffusion_model.* tensors)")
    if to_k.shape[1] != 1024 or first.shape[1] != 4:
        raise InputError(
            f"this U-Net reads {to_k.shape[1]}-wide text embeddings and {first.shape[1]}-channel latents: "
            "IconMatting needs Stable Diffusion 2.1 768-v (1024, 4)"
        )
    probe = state.get(V_PREDICTION_PROBE)
    if probe is None or float(probe.float().std(unbiased=False)) <= V_PREDICTION_STD:
        raise InputError("this is an SD2.x epsilon-prediction checkpoint (SD2-base): IconMatting needs SD2.1 768-v")
    channels = [state[f"{UNET_PREFIX}input_blocks.{block}.0.in_layers.2.weight"].shape[0] for block in (1, 4, 7, 10)]
    return sd2_unet_config(channels)


def _load_text_encoder(text_encoder: torch.nn.Module, converted: dict[str, torch.Tensor]) -> None:
    """Loads diffusers' converted OpenCLIP weights, whichever key layout this transformers version uses."""
    if not any(key.startswith("text_model.") for key in text_encoder.state_dict()):
        converted = {key.removeprefix("text_model."): value for key, value in converted.items()}
    missing, unexpected = text_encoder.load_state_dict(converted, strict=False)
    missing = [key for key in missing if not key.endswith("position_ids")]
    if missing or unexpected:
        raise InputError(
            f"the text encoder of this checkpoint does not match SD2's OpenCLIP-H: missing {missing[:5]}, "
            f"unexpected {unexpected[:5]}"
        )


def load_single_file(path: str | Path) -> tuple[UNet2DConditionModel, AutoencoderKL, torch.Tensor]:
    """U-Net, VAE (fp32, CPU) and the empty-prompt embedding ``[1, 77, 1024]`` of an SD2.1 768-v file.

    Needs ``transformers`` for the text encoder, which runs once and is dropped.
    """
    from transformers import CLIPTextConfig, CLIPTextModel

    state = read_checkpoint(Path(path))
    unet = UNet2DConditionModel(**unet_config(state))
    unet.load_state_dict(convert_ldm_unet_checkpoint(state, unet.config))
    vae = AutoencoderKL(**VAE_CONFIG)
    vae.load_state_dict(convert_ldm_vae_checkpoint(state, vae.config))
    text_encoder = CLIPTextModel(CLIPTextConfig(**OPEN_CLIP_H_TEXT))
    _load_text_encoder(text_encoder, convert_open_clip_checkpoint(text_encoder, state))
    with torch.no_grad():
        prompt_embeds = text_encoder(torch.tensor([EMPTY_PROMPT_IDS]))[0]
    return unet.eval(), vae.eval(), prompt_embeds
