"""Run with ComfyUI's Python (COMFYUI_PATH set): writes the assets the integration test needs from ComfyUI itself.

    python comfy_assets.py checkpoint OUT.safetensors SHARED_SCRIPT   # small random SD2.x-v checkpoint
    python comfy_assets.py video OUT.mp4                              # a short test video (needs PyAV, as ComfyUI)

The checkpoint comes from shared/comfy/make_sd21_random_ckpt.py with channel_mult [1, 1, 1, 1]: 320 channels at
every level, the SD2.1 block layout, and a v-prediction probe key, so ComfyUI detects it as SD2.x v-prediction
while it stays small enough for CPU tests.
"""

import importlib.util
import sys

SMALL_CHANNEL_MULT = [1, 1, 1, 1]


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
    else:
        write_video(sys.argv[2])
