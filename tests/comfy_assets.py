"""Run with ComfyUI's Python (COMFYUI_PATH set): writes the assets the integration test needs from ComfyUI itself.

    python comfy_assets.py checkpoint OUT.safetensors SHARED_SCRIPT   # small random SD2.x-v checkpoint
    python comfy_assets.py video OUT.mp4                              # a short test video (needs PyAV, as ComfyUI)
    python comfy_assets.py features CKPT OUT.safetensors              # features through the pack's ComfyUI path
    python comfy_assets.py passes CKPT DECODER OUT.json               # progress and Cancel inside U-Net passes

The checkpoint comes from shared/comfy/make_sd21_random_ckpt.py with channel_mult [1, 1, 1, 1]: 320 channels at
every level, the SD2.1 block layout, and a v-prediction probe key, so ComfyUI detects it as SD2.x v-prediction
while it stays small enough for CPU tests.
"""

import importlib
import importlib.util
import inspect
import json
import os
import sys
import time
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


def load_comfy(checkpoint: str):
    """ComfyUI (``COMFYUI_PATH``, on the CPU) with the checkpoint loaded as CheckpointLoaderSimple loads it, and the
    pack imported as a package: ``(model, clip, vae, pack)``, ``pack(name)`` importing the pack's module ``name``."""
    sys.path.insert(0, os.environ["COMFYUI_PATH"])
    import comfy.cli_args

    comfy.cli_args.args.cpu = True
    import comfy.sd

    model, clip, vae = comfy.sd.load_checkpoint_guess_config(checkpoint, output_vae=True, output_clip=True)[:3]
    name = "comfyui_iconmatting_under_comfy"
    spec = importlib.util.spec_from_file_location(
        name, PACK_ROOT / "__init__.py", submodule_search_locations=[str(PACK_ROOT)]
    )
    sys.modules[name] = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(sys.modules[name])
    return model, clip, vae, lambda module: importlib.import_module(f"{name}.{module}")


def write_features(checkpoint: str, out: str) -> None:
    """Extracts features through the pack's ComfyUI backbone."""
    import torch
    from safetensors.torch import save_file

    model, clip, vae, pack = load_comfy(checkpoint)
    backbone, common, features = pack("nodes.comfy_backbone"), pack("nodes.common"), pack("icm_model.backbone.features")
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


CANCEL_AT = 6
"""The progress value whose update presses Cancel: the VAE encode and input blocks 0-4 done, input block 5 next."""


def write_passes(checkpoint: str, decoder: str, out: str) -> None:
    """Runs Encode Reference Context and In-Context Similarity (one target, ensemble 1) in ComfyUI with a progress hook,
    then presses Cancel (``interrupt_current_processing``) from the hook inside a U-Net pass. Writes JSON:

    - ``encode``/``similarity``: ``{"fast": updates, "waiting": updates}``, each update ``[value, total, inside]``
      (``inside``: reported from within a U-Net pass); ``fast`` with a hook that returns at once (as ComfyUI's own),
      ``waiting`` with one that waits out ComfyUI's progress throttle (``PROGRESS_THROTTLE_MIN_INTERVAL``, 0.33),
      so that every update the pack sends reaches it;
    - ``cancel``: the updates until Cancel (waiting hook), ``raised`` (InterruptProcessingException came out of the
      node), ``blocks`` (the U-Net blocks that ran), ``cleared`` (the flag and the pass's capture are reset);
    - ``untouched``: the MODEL's weights, ``model_options`` and patches unchanged, and the similarity maps of a run
      after the cancelled one equal to those before it;
    - ``interrupt_base``: the base class of ComfyUI's ``InterruptProcessingException``.
    """
    model, clip, vae, pack = load_comfy(checkpoint)
    import comfy.model_management
    import comfy.utils
    import folder_paths
    import torch

    folder_paths.add_model_folder_path("icon_matting", os.path.dirname(decoder))
    nodes = pack("nodes").NODE_CLASS_MAPPINGS
    icm = nodes["LoadIconMattingModel"]().load(os.path.basename(decoder))[0]
    unet_pass = pack("nodes.comfy_backbone").ComfyBackbone.run.__code__
    wait = getattr(comfy.utils, "PROGRESS_THROTTLE_MIN_INTERVAL", 0.0) * 1.5
    generator = torch.Generator().manual_seed(3)
    image, target = torch.rand(2, 1, FEATURE_IMAGE_SIZE, FEATURE_IMAGE_SIZE, 3, generator=generator)
    mask = torch.zeros(1, FEATURE_IMAGE_SIZE, FEATURE_IMAGE_SIZE)
    mask[:, 64:192, 96:160] = 1.0

    def with_progress(updates: list, wait: float, run, cancel_at: int | None = None):
        """``run()`` with a progress hook that appends ``[value, total, inside]`` to ``updates``, then sleeps
        ``wait`` seconds, and presses Cancel at the update ``cancel_at``."""

        def hook(value, total, preview, node_id=None):
            frame = inspect.currentframe()
            while frame is not None and frame.f_code is not unet_pass:
                frame = frame.f_back
            updates.append([value, total, frame is not None])
            if value == cancel_at:
                comfy.model_management.interrupt_current_processing()
            time.sleep(wait)

        comfy.utils.set_progress_bar_global_hook(hook)
        try:
            return run()
        finally:
            comfy.utils.set_progress_bar_global_hook(None)

    def encode():
        return nodes["EncodeReferenceContext"]().encode(icm, model, vae, image, mask, "mask", 200, 1, 0, clip=clip)

    report = {"interrupt_base": comfy.model_management.InterruptProcessingException.__mro__[1].__name__}
    weights = {k: v.clone() for k, v in model.model.state_dict().items()}
    options, patches = repr(model.model_options), repr(model.patches)
    report["encode"] = {"fast": [], "waiting": []}
    with_progress(report["encode"]["fast"], 0.0, encode)
    reference = with_progress(report["encode"]["waiting"], wait, encode)["result"][0]

    def similarity():
        return nodes["InContextSimilarity"]().compute(reference, target, 1, 0)

    report["similarity"] = {"fast": [], "waiting": []}
    with_progress(report["similarity"]["fast"], 0.0, similarity)
    before = with_progress(report["similarity"]["waiting"], wait, similarity)

    blocks = []
    unet = model.model.diffusion_model
    hooks = [  # on each block's first layer: the U-Net calls the layers of a block, not the block
        block[0].register_forward_pre_hook(lambda _m, _a, name=f"{kind}.{i}": blocks.append(name))
        for kind in ("input_blocks", "output_blocks")
        for i, block in enumerate(getattr(unet, kind))
    ]
    updates, raised = [], False
    try:
        with_progress(updates, wait, similarity, cancel_at=CANCEL_AT)
    except comfy.model_management.InterruptProcessingException:
        raised = True
    finally:
        for hook in hooks:
            hook.remove()
    report["cancel"] = {
        "updates": updates,
        "raised": raised,
        "blocks": blocks,
        "cleared": reference.backbone._current is None and not comfy.model_management.processing_interrupted(),
    }
    after = similarity()
    report["untouched"] = {
        "weights": all(torch.equal(v, weights[k]) for k, v in model.model.state_dict().items()),
        "model_options": repr(model.model_options) == options,
        "patches": repr(model.patches) == patches,
        "similarity": all(torch.equal(a, b) for a, b in zip(before[1:], after[1:], strict=True)),
    }
    Path(out).write_text(json.dumps(report))


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
    elif sys.argv[1] == "passes":
        write_passes(sys.argv[2], sys.argv[3], sys.argv[4])
    else:
        write_video(sys.argv[2])
