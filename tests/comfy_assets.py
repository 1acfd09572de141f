"""Run with ComfyUI's Python (COMFYUI_PATH set): writes the assets the integration test needs from ComfyUI itself.

    python comfy_assets.py checkpoint OUT.safetensors SHARED_SCRIPT   # small random SD2.x-v checkpoint
    python comfy_assets.py video OUT.mp4                              # a short test video (needs PyAV, as ComfyUI)
    python comfy_assets.py features CKPT OUT.safetensors              # features through the pack's ComfyUI path

The checkpoint comes from shared/comfy/make_sd21_random_ckpt.py with channel_mult [1, 1, 1, 1]: 320 channels at
every level, the SD2.1 block layout, and a v-prediction probe key, so ComfyUI detects it as SD2.x v-prediction
while it stays small enough for CPU tests.
"""

import importlib
import importlib.util
import os
import sys
from pathlib import Path

SMALL_CHANNEL_MULT = [1, 1, 1, 1]
PACK_ROOT = Path(__file__).resolve().parents[1]
FEATURE_IMAGE_SIZE, FEATURE_ENSEMBLE = 256, 2


def feature_inputs(torch):
    """The images [1, 3, 256, 256] and the noise draws both sides of the ComfyUI/diffusers comparison use."""
    images = torch.rand(1, 3, FEATURE_IMAGE_SIZE, FEATURE_IMAGE_SIZE, generator=torch.Generator().manual_seed(0))
    diffusion = torch.randn(
        FEATURE_ENSEMBLE,
        4,
        FEATURE_IMAGE_SIZE // 8,
        FEATURE_IMAGE_SIZE // 8,
        generator=torch.Generator().manual_seed(1),
    )
    return images, diffusion


def write_features(checkpoint: str, out: str) -> None:
    """Loads the checkpoint the way CheckpointLoaderSimple does and extracts features through the pack."""
    sys.path.insert(0, os.environ["COMFYUI_PATH"])
    import comfy.cli_args

    comfy.cli_args.args.cpu = True
    import comfy.sd
    import torch
    from safetensors.torch import save_file

    model, clip, vae = comfy.sd.load_checkpoint_guess_config(checkpoint, output_vae=True, output_clip=True)[:3]
    name = "comfyui_iconmatting_features"
    spec = importlib.util.spec_from_file_location(
        name, PACK_ROOT / "__init__.py", submodule_search_locations=[str(PACK_ROOT)]
    )
    sys.modules[name] = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(sys.modules[name])
    backbone = importlib.import_module(f"{name}.nodes.comfy_backbone")
    common = importlib.import_module(f"{name}.nodes.common")
    features = importlib.import_module(f"{name}.icm_model.backbone.features")
    images, diffusion = feature_inputs(torch)
    noise = features.EnsembleNoise(torch.zeros_like(diffusion), diffusion)
    with torch.inference_mode():
        extractor = features.EnsembleFeatureExtractor(backbone.ComfyBackbone(model, vae, common.prompt_embedding(clip)))
        target = extractor.targets(images, noise)
        save_file(
            {
                "correspondence": target.correspondence,
                "low": target.features[0],
                "attention_low": target.attention[0],
                "attention_high": target.attention[1],
                "reference": extractor.correspondence(images, noise),
            },
            out,
        )


def write_checkpoint(out: str, script: str) -> None:
    spec = importlib.util.spec_from_file_location("make_sd21_random_ckpt", script)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    module.SD21_UNET["channel_mult"] = SMALL_CHANNEL_MULT
    module.main(out, 0)


def write_video(out: str, frames: int = 4, width: int = 192, height: int = 128) -> None:
    import av
    import numpy as np

    rng = np.random.default_rng(0)
    with av.open(out, mode="w") as container:
        stream = container.add_stream("libx264", rate=8)
        stream.width, stream.height, stream.pix_fmt = width, height, "yuv420p"
        for _ in range(frames):
            frame = av.VideoFrame.from_ndarray(rng.integers(0, 255, (height, width, 3), dtype=np.uint8), format="rgb24")
            container.mux(stream.encode(frame))
        container.mux(stream.encode())


if __name__ == "__main__":
    if sys.argv[1] == "checkpoint":
        write_checkpoint(sys.argv[2], sys.argv[3])
    elif sys.argv[1] == "features":
        write_features(sys.argv[2], sys.argv[3])
    else:
        write_video(sys.argv[2])
