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

FEATURE_PEAK_RELATIVE = 2e-6
"""Features: |ours - theirs| <= 2e-6 x the fixture tensor's largest magnitude (measured: up to 1.05e-6; float32
accumulation noise of the U-Net, ~1e-5 absolute on values up to ~11)."""
DECODER_TOLERANCES = {
    # name: (rtol, atol) of torch.testing.assert_close, i.e. |ours - theirs| <= atol + rtol * |theirs| per element
    "inter_similarity": (1e-6, 1e-9),  # measured: 3.0e-8 absolute, 2.4e-7 relative
    "intra_low": (1e-6, 1e-9),  # measured: 7.5e-9 absolute, 2.3e-7 relative (values average ~8e-3)
    "intra_high": (1e-6, 1e-9),  # measured: 3.0e-8 absolute, 3.3e-7 relative (values average ~2e-3)
    "guidance_preview": (1e-6, 3e-7),  # measured: 1.5e-7 absolute
    "alpha": (0.0, 2.5e-7),  # measured: 1.2e-7 absolute (2 float32 steps at alpha ~0.6)
}
DECODER_OUTPUTS = tuple(DECODER_TOLERANCES)
ATTENTION_TOLERANCE = (2e-6, 1e-9)
"""(rtol, atol) of the attention maps (softmax rows): measured 9.8e-7 relative, 4.5e-8 absolute."""


@pytest.fixture(scope="module")
def golden_dir():
    return require(shared_path("ICM_GOLDEN_DIR", "icm/golden_dev"))


def _check(name: str, ours: torch.Tensor, theirs: torch.Tensor, tolerance: tuple[float, float]) -> None:
    """Elementwise ``|ours - theirs| <= atol + rtol * |theirs|``, same shape and dtype; the message names the tensor."""
    rtol, atol = tolerance
    torch.testing.assert_close(ours, theirs, rtol=rtol, atol=atol, msg=lambda message: f"{name}: {message}")


def feature_tolerance(name: str, theirs: torch.Tensor) -> tuple[float, float]:
    """(rtol, atol) of a feature-extractor output: attention maps elementwise, features relative to their peak."""
    if "attn" in name:
        return ATTENTION_TOLERANCE
    return 0.0, FEATURE_PEAK_RELATIVE * float(theirs.abs().max())


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
            _check(f"{name} of pair {b}", ours[name], one[f"output.{name}"], DECODER_TOLERANCES[name])


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
        theirs = io[f"output.{name}"]
        _check(name, value, theirs, feature_tolerance(name, theirs))


def test_golden_tolerances_catch_a_one_in_ten_thousand_error(golden_dir):
    """The decoder tolerances above refuse every output 0.01 % off (the former 1e-4 absolute let similarity maps of
    ~1e-3 be 7 % off)."""
    io = load_file(golden_dir / "decoder_io.safetensors")
    for name, tolerance in DECODER_TOLERANCES.items():
        theirs = io[f"output.{name}"]
        with pytest.raises(AssertionError, match=name):
            _check(name, theirs * (1 + 1e-4), theirs, tolerance)
