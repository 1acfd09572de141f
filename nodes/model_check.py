"""Is the wired MODEL the Stable Diffusion 2.1 768-v that IconMatting was trained on?"""

from __future__ import annotations

SD2_UNET = {"context_dim": 1024, "model_channels": 320, "adm_in_channels": None}
WHAT_IS_NEEDED = (
    "IconMatting needs Stable Diffusion 2.1 768-v (v2-1_768-ema-pruned.safetensors, SD2.x v-prediction) in the "
    "MODEL input: load it with Load Checkpoint from models/checkpoints"
)


def describe(model) -> str:
    """A short name of a MODEL: its detected model family and prediction type, as ComfyUI names them."""
    base = getattr(model, "model", None)
    family = type(getattr(base, "model_config", None) or base).__name__
    model_type = getattr(getattr(base, "model_type", None), "name", "unknown prediction type")
    return f"{family} ({model_type})"


def check_sd2_v(model) -> None:
    """Raises ValueError naming what was wired when ``model`` is not an SD2.x v-prediction U-Net (ModelPatcher)."""
    base = getattr(model, "model", None)
    unet_config = getattr(getattr(base, "model_config", None), "unet_config", None) or {}
    if not hasattr(model, "clone") or not hasattr(base, "diffusion_model"):
        raise ValueError(f"the MODEL input is not a diffusion model ({type(model).__name__}). {WHAT_IS_NEEDED}")
    if any(unet_config.get(key, "missing") != value for key, value in SD2_UNET.items()):
        raise ValueError(f"the MODEL input is {describe(model)}, not Stable Diffusion 2.x. {WHAT_IS_NEEDED}")
    if unet_config.get("in_channels", 4) != 4:
        raise ValueError(f"the MODEL input is an SD2.x inpainting or depth model. {WHAT_IS_NEEDED}")
    if getattr(base.model_type, "name", None) != "V_PREDICTION":
        raise ValueError(
            f"the MODEL input is {describe(model)}: SD2.x with epsilon prediction is SD2-base (512px). {WHAT_IS_NEEDED}"
        )
