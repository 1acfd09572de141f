"""Parity with the official IconMatting code on the fixtures of ../shared/icm/golden_dev (or $ICM_GOLDEN_DIR)."""

from __future__ import annotations

import json

import pytest
import torch
from diffusers import AutoencoderKL, DDIMScheduler, UNet2DConditionModel
from helpers import require, shared_path
from safetensors.torch import load_file

from icm_model.backbone.diffusers_backbone import DiffusersBackbone
from icm_model.backbone.features import EnsembleFeatureExtractor, EnsembleNoise, TargetFeatures
from icm_model.decoder.checkpoint import load_decoder
from icm_model.decoder.config import DecoderConfig
from icm_model.decoder.similarity import roi_query, roi_token_mask

TOLERANCE = 1e-4
DECODER_OUTPUTS = ("inter_similarity", "intra_low", "intra_high", "guidance_preview", "alpha")


@pytest.fixture(scope="module")
def golden_dir():
    return require(shared_path("ICM_GOLDEN_DIR", "icm/golden_dev"))


def _max_error(ours: torch.Tensor, theirs: torch.Tensor) -> float:
    assert ours.shape == theirs.shape
    return float((ours - theirs).abs().max())


def test_golden_decoder_parity(golden_dir):
    """Every decoder output, from the fixture's inputs and its weights under the official key names."""
    meta = json.loads((golden_dir / "decoder_meta.json").read_text())
    decoder = load_decoder(golden_dir / "decoder_weights.safetensors", DecoderConfig.from_official(meta))
    io = load_file(golden_dir / "decoder_io.safetensors")
    batch = io["input.reference_feature"].shape[0]
    for b in range(batch):  # the official batch pairs target b with reference b
        one = {key: value[b : b + 1] for key, value in io.items()}
        reference = one["input.reference_feature"]
        tokens = roi_token_mask(one["input.reference_mask"][:, 0], reference.shape[-2:])
        target = TargetFeatures(
            one["input.target_feature_cor"],
            (one["input.target_feature_low"], one["input.target_feature_high"]),
            (one["input.target_attn_low"], one["input.target_attn_high"]),
        )
        with torch.no_grad():
            guidance = decoder.guidance(roi_query(reference, tokens), target)
            alpha, preview = decoder.matte(guidance, target, one["input.target_image"])
        ours = dict(zip(DECODER_OUTPUTS, (guidance.inter, *guidance.intra, preview, alpha), strict=True))
        for name in DECODER_OUTPUTS:
            assert _max_error(ours[name], one[f"output.{name}"]) < TOLERANCE, (b, name)


def test_golden_feature_parity(golden_dir):
    """Features and attention maps of the SD feature extractor, with every random draw taken from the fixture."""
    meta = json.loads((golden_dir / "features_meta.json").read_text())
    weights = load_file(golden_dir / "features_weights.safetensors")
    io = load_file(golden_dir / "features_io.safetensors")
    unet, vae = UNet2DConditionModel(**meta["unet_config"]), AutoencoderKL(**meta["vae_config"])
    unet.load_state_dict({k.removeprefix("unet."): v for k, v in weights.items() if k.startswith("unet.")})
    vae.load_state_dict({k.removeprefix("vae."): v for k, v in weights.items() if k.startswith("vae.")})
    alphas_cumprod = DDIMScheduler(**meta["scheduler_config"]).alphas_cumprod
    backbone = DiffusersBackbone(unet, vae, io["input.prompt_embeds"], alphas_cumprod)
    extractor = EnsembleFeatureExtractor(backbone, timestep=meta["timestep"])

    def noise(role: str) -> EnsembleNoise:
        return EnsembleNoise(io[f"input.{role}_posterior_noise"], io[f"input.{role}_diffusion_noise"])

    # The fixture's images are the VAE input in [-1, 1]; our API takes [0, 1].
    reference = extractor.correspondence((io["input.reference_image"] + 1) / 2, noise("ref"))
    target = extractor.targets((io["input.target_image"] + 1) / 2, noise("target"))
    ours = {
        "reference_feature_cor": reference,
        "target_feature_cor": target.correspondence,
        "target_feature_low": target.features[0],
        "target_feature_high": target.features[1],
        "target_attn_low": target.attention[0],
        "target_attn_high": target.attention[1],
    }
    for name, value in ours.items():
        assert _max_error(value, io[f"output.{name}"]) < TOLERANCE, name
