"""Random-weight SD2-architecture models and decoders, for tests, benchmarks and trying the pack without weights.

``tiny``: a small SD2-layout U-Net/VAE (128x128 canvas, 4x4 and 8x8 token grids) matching :data:`TINY_DECODER`.
``sd21``: the full SD2.1-768-v architecture (865 M U-Net parameters) with the released decoder architecture.
"""

from __future__ import annotations

import json
from pathlib import Path

import torch
from diffusers import AutoencoderKL, DDIMScheduler, UNet2DConditionModel

from .backbone.diffusers_backbone import DiffusersBackbone
from .backbone.sd_single_file import SD2_SCHEDULER, VAE_CONFIG, sd2_unet_config
from .decoder.config import DecoderConfig
from .decoder.model import InContextDecoder

UNET_CONFIGS = {
    "tiny": sd2_unet_config([32, 64, 64, 64], sample_size=16, attention_head_dim=[2, 4, 4, 4], cross_attention_dim=32,
                            norm_num_groups=8),
    "sd21": sd2_unet_config([320, 640, 1280, 1280]),
}  # fmt: skip
VAE_CONFIGS = {
    "tiny": dict(VAE_CONFIG, block_out_channels=[16, 16, 32, 32], layers_per_block=1, norm_num_groups=8,
                 sample_size=128),
    "sd21": VAE_CONFIG,
}  # fmt: skip
TINY_DECODER = DecoderConfig(
    feature_channels=(64, 64),
    correspondence_channels=64,
    attention_tokens=(16, 64),
    guidance_channels=8,
    feature_out_channels=(16, 16),
    fusion_channels=(8, 8, 8, 8),
)
DECODER_CONFIGS = {"tiny": TINY_DECODER, "sd21": DecoderConfig()}


def random_unet_vae(size: str, seed: int = 0) -> tuple[UNet2DConditionModel, AutoencoderKL]:
    """A random U-Net and VAE of the ``tiny`` or ``sd21`` architecture (fp32, CPU, eval mode)."""
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(seed)
        return UNet2DConditionModel(**UNET_CONFIGS[size]).eval(), AutoencoderKL(**VAE_CONFIGS[size]).eval()


def random_prompt_embeds(size: str, seed: int = 0) -> torch.Tensor:
    """A stand-in for the empty-prompt embedding ``[1, 77, D]``."""
    generator = torch.Generator().manual_seed(seed)
    return torch.randn(1, 77, UNET_CONFIGS[size]["cross_attention_dim"], generator=generator)


def random_backbone(
    size: str = "tiny", seed: int = 0, device: str | torch.device = "cpu", dtype: torch.dtype = torch.float32
) -> DiffusersBackbone:
    """A :class:`DiffusersBackbone` on random weights."""
    unet, vae = random_unet_vae(size, seed)
    if dtype != torch.float32:
        unet, vae = unet.to(dtype=dtype), vae.to(dtype=dtype)
    return DiffusersBackbone(
        unet.to(device),
        vae.to(device),
        random_prompt_embeds(size, seed).to(device, dtype),
        DDIMScheduler(**SD2_SCHEDULER).alphas_cumprod,
    )


def random_decoder(config: DecoderConfig = TINY_DECODER, seed: int = 0) -> InContextDecoder:
    """A decoder with random weights and random BatchNorm statistics, in eval mode."""
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(seed)
        decoder = InContextDecoder(config)
        for name, buffer in decoder.named_buffers():
            if name.endswith("running_mean"):
                buffer.normal_(0, 0.1)
            elif name.endswith("running_var"):
                buffer.uniform_(0.5, 1.5)
    return decoder.eval().requires_grad_(False)


def write_diffusers_folder(folder: str | Path, size: str = "tiny", seed: int = 0) -> Path:
    """Writes a diffusers-format SD2 folder (unet, vae, scheduler, a tiny CLIP text encoder and tokenizer).

    The tokenizer knows only its special tokens: enough for the empty prompt. Needs ``transformers``.
    """
    from transformers import CLIPTextConfig, CLIPTextModel, CLIPTokenizer

    folder = Path(folder)
    unet, vae = random_unet_vae(size, seed)
    unet.save_pretrained(folder / "unet")
    vae.save_pretrained(folder / "vae")
    DDIMScheduler(**SD2_SCHEDULER).save_pretrained(folder / "scheduler")
    tokenizer_dir = folder / "tokenizer"
    tokenizer_dir.mkdir(parents=True, exist_ok=True)
    (tokenizer_dir / "vocab.json").write_text(json.dumps({"!": 0, "<|startoftext|>": 1, "<|endoftext|>": 2}))
    (tokenizer_dir / "merges.txt").write_text("#version: 0.2\n")
    CLIPTokenizer(
        str(tokenizer_dir / "vocab.json"), str(tokenizer_dir / "merges.txt"), pad_token="!", model_max_length=77
    ).save_pretrained(tokenizer_dir)
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(seed)
        text_encoder = CLIPTextModel(
            CLIPTextConfig(
                vocab_size=3,
                hidden_size=UNET_CONFIGS[size]["cross_attention_dim"],
                intermediate_size=64,
                num_hidden_layers=2,
                num_attention_heads=4,
                max_position_embeddings=77,
                bos_token_id=1,
                eos_token_id=2,
                pad_token_id=0,
            )
        )
    text_encoder.save_pretrained(folder / "text_encoder")
    return folder
