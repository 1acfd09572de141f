"""A real ComfyUI server for tests: the base directory it runs on, its start and stop, and running prompts on it.

Used by tests/test_comfyui_integration.py (API-format workflows) and tests/browser/ (the frontends). ComfyUI runs as a
separate process with ``COMFYUI_PYTHON`` (default: this Python) from ``COMFYUI_PATH`` (read-only: everything it
writes goes to a temporary ``--base-directory``), on 127.0.0.1. The base directory holds:

- ``custom_nodes/comfyui-iconmatting``: this pack, as a user installs it (a git clone of this repository) when ``CI``
  is set, otherwise a symlink to this working tree (so local runs test uncommitted changes);
- ``models/checkpoints/v2-1_768-ema-pruned.safetensors``: a small random SD2.x-v checkpoint that ComfyUI itself
  writes (tests/comfy_assets.py; ``ICM_INTEGRATION_CACHE`` keeps the 1 GB file between runs);
- ``models/icon_matting/iconmatting.safetensors``: a random IconMatting decoder matching that checkpoint;
- ``input/``: the images, masks and video the example workflows name.

Without ``COMFYUI_PATH`` the tests that need a server are skipped, unless ``CI`` is set: then they fail.
"""

from __future__ import annotations

import json
import os
import socket
import subprocess
import sys
import time
import urllib.error
import urllib.request
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import pytest
from helpers import IN_CI, SHARED, unavailable
from PIL import Image

PACK_ROOT = Path(__file__).resolve().parents[1]
PACK_FOLDER = "comfyui-iconmatting"
SD_CHECKPOINT = "v2-1_768-ema-pruned.safetensors"
ICM_CHECKPOINT = "iconmatting.safetensors"
TARGET_IMAGES = {
    name: (512 - 40 * seed, 384 + 16 * seed)
    for seed, name in enumerate(
        [
            "icm_target_photo",
            "icm_target_painting",
            "icm_target_render",
            "icm_instance_view1",
            "icm_instance_view2",
            "icm_instance_view3",
        ],
        start=2,
    )
}
"""Input image name -> (width, height): every target has its own size and aspect ratio."""
RENDER_SIZE = (1024, 640)
"""(width, height) of the batch of renders the compositing workflow mattes: larger than the 768 canvas."""


def comfyui_path() -> Path:
    """The ComfyUI checkout from ``COMFYUI_PATH`` (skip, or fail in CI, without it)."""
    path = os.environ.get("COMFYUI_PATH")
    if not path or not (Path(path) / "main.py").is_file():
        unavailable("COMFYUI_PATH does not point at a ComfyUI checkout")
    return Path(path)


def comfy_python() -> str:
    return os.environ.get("COMFYUI_PYTHON", sys.executable)


def comfy_run(*args: str) -> None:
    """Runs tests/comfy_assets.py with ComfyUI's Python."""
    env = {**os.environ, "COMFYUI_PATH": str(comfyui_path()), "PYTHONDONTWRITEBYTECODE": "1"}
    result = subprocess.run(
        [comfy_python(), str(Path(__file__).with_name("comfy_assets.py")), *args],
        env=env,
        capture_output=True,
        text=True,
        timeout=900,
    )
    assert result.returncode == 0, f"comfy_assets.py {args[0]} failed:\n{result.stderr[-3000:]}"


def small_checkpoint(scratch: Path) -> Path:
    """The small random SD2.x-v checkpoint, written once into ``ICM_INTEGRATION_CACHE`` (else into ``scratch``)."""
    cache = Path(os.environ.get("ICM_INTEGRATION_CACHE") or scratch)
    cache.mkdir(parents=True, exist_ok=True)
    small = cache / "sd2_small_vpred.safetensors"
    if not small.exists():
        comfy_run("checkpoint", str(small), str(SHARED / "comfy" / "make_sd21_random_ckpt.py"))
    return small


def small_decoder_config():
    """The decoder matching the small checkpoint (320 channels at every level) on a 256x256 canvas."""
    from icm_model.decoder.config import DecoderConfig

    return DecoderConfig(
        feature_channels=(320, 320),
        correspondence_channels=320,
        attention_tokens=(64, 256),
        guidance_channels=16,
        feature_out_channels=(32, 32),
        fusion_channels=(16, 16, 16, 16),
    )


def install_pack(custom_nodes: Path) -> Path:
    """The pack in ``custom_nodes``: a git clone in CI (as a user installs it), else a symlink to this tree."""
    custom_nodes.mkdir(parents=True, exist_ok=True)
    target = custom_nodes / PACK_FOLDER
    if IN_CI:
        subprocess.run(["git", "clone", "--quiet", str(PACK_ROOT), str(target)], check=True, timeout=120)
    else:
        target.symlink_to(PACK_ROOT, target_is_directory=True)
    return target


def _image(path: Path, width: int, height: int, seed: int) -> None:
    rng = np.random.default_rng(seed)
    Image.fromarray(rng.integers(0, 255, (height, width, 3), dtype=np.uint8)).save(path)


def _mask(path: Path, width: int, height: int, box: tuple[int, int, int, int]) -> None:
    mask = np.zeros((height, width), np.uint8)
    x, y, w, h = box
    mask[y : y + h, x : x + w] = 255
    Image.fromarray(mask).convert("RGB").save(path)


def write_base(base: Path, checkpoint: Path) -> None:
    """A ComfyUI base directory with the pack, both checkpoints and the example workflows' inputs."""
    from icm_model.decoder.checkpoint import save_decoder
    from icm_model.random_models import random_decoder

    install_pack(base / "custom_nodes")
    checkpoints = base / "models" / "checkpoints"
    checkpoints.mkdir(parents=True)
    (checkpoints / SD_CHECKPOINT).symlink_to(checkpoint)
    (base / "models" / "icon_matting").mkdir(parents=True)
    save_decoder(random_decoder(small_decoder_config()), base / "models" / "icon_matting" / ICM_CHECKPOINT)
    inputs = base / "input"
    inputs.mkdir()
    _image(inputs / "icm_reference.png", 512, 384, 1)
    _mask(inputs / "icm_reference_mask.png", 512, 384, (160, 96, 240, 200))
    for seed, (name, (width, height)) in enumerate(TARGET_IMAGES.items(), start=2):
        _image(inputs / f"{name}.png", width, height, seed)
    for seed, name in enumerate(["icm_render_1", "icm_render_2"], start=10):
        _image(inputs / f"{name}.png", *RENDER_SIZE, seed)
    _image(inputs / "icm_background.png", 300, 400, 12)
    comfy_run("video", str(inputs / "icm_video.mp4"))
    _mask(inputs / "icm_video_mask.png", 192, 128, (48, 32, 96, 64))
    (base / "user").mkdir()


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@dataclass
class ComfyServer:
    """A running ComfyUI: ``url`` (no trailing slash), its ``base`` directory and ``log`` file."""

    url: str
    base: Path
    log: Path
    process: subprocess.Popen = field(repr=False)

    def get(self, path: str):
        """GET ``path`` (e.g. ``/object_info``) as JSON."""
        with urllib.request.urlopen(f"{self.url}{path}", timeout=30) as response:
            return json.loads(response.read())

    def post(self, path: str, data) -> bytes:
        """POST ``data`` as JSON to ``path``; the raw response body."""
        request = urllib.request.Request(
            f"{self.url}{path}", data=json.dumps(data).encode(), headers={"Content-Type": "application/json"}
        )
        with urllib.request.urlopen(request, timeout=30) as response:
            return response.read()

    def queue(self, prompt: dict) -> str:
        """Queues an API-format prompt; its prompt id (fails the test with ComfyUI's reason if refused)."""
        try:
            return json.loads(self.post("/prompt", {"prompt": prompt, "client_id": "icm-test"}))["prompt_id"]
        except urllib.error.HTTPError as error:
            pytest.fail(f"prompt refused: {error.read().decode()[:3000]}")

    def wait(self, prompt_id: str, timeout: float = 600.0) -> dict:
        """The history entry of ``prompt_id`` once it completed (successfully or not)."""
        deadline = time.time() + timeout
        while time.time() < deadline:
            history = self.get(f"/history/{prompt_id}")
            if prompt_id in history and history[prompt_id].get("status", {}).get("completed") is not None:
                return history[prompt_id]
            self.check_alive()
            time.sleep(0.5)
        pytest.fail(f"prompt {prompt_id} did not finish in {timeout} s")

    def run(self, prompt: dict, timeout: float = 600.0) -> dict:
        """Queues ``prompt`` and waits for it: the history entry (``status``, ``outputs``)."""
        return self.wait(self.queue(prompt), timeout)

    def clear_cache(self) -> None:
        """Forgets cached node outputs (and unloads models), so that the next prompt really executes every node."""
        self.post("/free", {"free_memory": True})

    def output_file(self, item: dict) -> Path:
        """The file of one ``outputs`` entry (``{"filename", "subfolder", "type"}``)."""
        folder = "output" if item["type"] == "output" else item["type"]
        return self.base / folder / item["subfolder"] / item["filename"]

    def log_tail(self, chars: int = 3000) -> str:
        return self.log.read_text(errors="replace")[-chars:]

    def check_alive(self) -> None:
        if self.process.poll() is not None:
            pytest.fail(f"ComfyUI exited ({self.process.returncode}): {self.log_tail()}")

    def stop(self) -> None:
        self.process.terminate()
        try:
            self.process.wait(timeout=30)
        except subprocess.TimeoutExpired:
            self.process.kill()
            self.process.wait(timeout=30)


def start_server(base: Path, extra_args: tuple[str, ...] = (), timeout: float = 180.0) -> ComfyServer:
    """Starts ComfyUI on ``base`` (made by :func:`write_base`) and waits until it answers."""
    port = _free_port()
    log = base / "comfyui.log"
    with open(log, "w") as out:
        process = subprocess.Popen(
            [comfy_python(), "main.py", "--cpu", "--listen", "127.0.0.1", "--port", str(port),
             "--base-directory", str(base), "--database-url", f"sqlite:///{base}/user/comfyui.db",
             "--disable-auto-launch", *extra_args],
            cwd=comfyui_path(), stdout=out, stderr=subprocess.STDOUT,
            env={**os.environ, "PYTHONDONTWRITEBYTECODE": "1"},
        )  # fmt: skip
    server = ComfyServer(f"http://127.0.0.1:{port}", base, log, process)
    deadline = time.time() + timeout
    while time.time() < deadline:
        server.check_alive()
        try:
            server.get("/system_stats")
            return server
        except (urllib.error.URLError, ConnectionError):
            time.sleep(0.5)
    server.stop()
    pytest.fail(f"ComfyUI did not start within {timeout} s: {server.log_tail()}")


FRONTENDS = ("pinned", "current")
"""``pinned``: the frontend ComfyUI's requirements.txt pins (its default); ``current``: ``ICM_FRONTEND_CURRENT``."""


def frontend_args(frontend: str) -> tuple[str, ...]:
    if frontend == "pinned":
        return ()
    root = os.environ.get("ICM_FRONTEND_CURRENT")
    if not root or not (Path(root) / "index.html").is_file():
        unavailable("ICM_FRONTEND_CURRENT does not point at a frontend's static folder (with index.html)")
    return ("--front-end-root", root)


class ComfyServers:
    """One server per frontend, started on first use against its own base directory, all stopped by :meth:`close`."""

    def __init__(self, scratch: Path, checkpoint_dir: Path):
        self.scratch, self.checkpoint_dir = scratch, checkpoint_dir
        self.servers: dict[str, ComfyServer] = {}

    def get(self, frontend: str = "pinned") -> ComfyServer:
        if frontend not in self.servers:
            args = frontend_args(frontend)
            comfyui_path()
            base = self.scratch / f"comfy_{frontend}"
            if base.exists():
                pytest.fail(f"the {frontend} ComfyUI failed to start earlier in this session (see {base})")
            write_base(base, small_checkpoint(self.checkpoint_dir))
            self.servers[frontend] = start_server(base, args)
        return self.servers[frontend]

    def close(self) -> None:
        for server in self.servers.values():
            server.stop()
