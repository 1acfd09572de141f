"""A real ComfyUI server for tests: the base directory it runs on, its start and stop, and running prompts on it.

Used by tests/test_comfyui_integration.py (API-format workflows) and tests/browser/ (the frontends). Every real-ComfyUI
test runs against each of :data:`COMFYUI_VERSIONS` (test ids name the version): 0.3.64 from ``COMFYUI_PATH`` and 0.33.0
from ``COMFYUI_033_PATH``. ComfyUI runs as a separate process with ``COMFYUI_PYTHON`` (default: this Python; one
environment serves both versions, see :class:`ComfyVersion` ``site_env``) from that checkout (read-only: everything it
writes goes to a temporary ``--base-directory``), on 127.0.0.1. The base directory holds:

- ``custom_nodes/comfyui-iconmatting``: this pack, as a user installs it (a git clone of this repository) when ``CI``
  is set, otherwise a symlink to this working tree (so local runs test uncommitted changes);
- ``models/checkpoints/v2-1_768-ema-pruned.safetensors``: a small random SD2.x-v checkpoint that ComfyUI itself
  writes (tests/comfy_assets.py; ``ICM_INTEGRATION_CACHE`` keeps the 1 GB file between runs);
- ``models/icon_matting/iconmatting.safetensors``: a random IconMatting decoder matching that checkpoint;
- ``input/``: a few images the browser tests name; the example workflows' inputs are the pack's own, copied into
  ``input/iconmatting_<file>`` when the pack is imported (nodes/example_inputs.py).

Without a version's checkout the tests that need it are skipped, unless ``CI`` is set: then they fail.
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


@dataclass(frozen=True)
class ComfyVersion:
    """A ComfyUI release the real-ComfyUI tests run against.

    ``path_env`` names the environment variable with its checkout (``comfyui_version.py`` must say ``name``).
    ``site_env`` optionally names a folder of packages (``pip install --no-deps --target``) that this version's Python
    imports first (``PYTHONPATH``): the pins of this version that differ from the shared ComfyUI environment (CI
    installs 0.33.0's requirements and puts 0.3.64's frontend, workflow templates and embedded docs there).
    """

    name: str
    path_env: str
    site_env: str

    def __str__(self) -> str:
        return self.name


COMFYUI_VERSIONS = (
    ComfyVersion("0.3.64", "COMFYUI_PATH", "COMFYUI_SITE"),
    ComfyVersion("0.33.0", "COMFYUI_033_PATH", "COMFYUI_033_SITE"),
)
"""Every version the real-ComfyUI tests run against, oldest first (pytest ids: ``str(version)``)."""


def comfyui_path(version: ComfyVersion = COMFYUI_VERSIONS[0]) -> Path:
    """The checkout of ``version`` (skip, or fail in CI, without it; fail if it is another version)."""
    path = os.environ.get(version.path_env)
    if not path or not (Path(path) / "main.py").is_file():
        unavailable(f"{version.path_env} does not point at a ComfyUI {version} checkout")
    found = (Path(path) / "comfyui_version.py").read_text().split('"')[1]
    if found != version.name:
        pytest.fail(f"{version.path_env}={path} is ComfyUI {found}, not {version}")
    return Path(path)


def comfy_python() -> str:
    return os.environ.get("COMFYUI_PYTHON", sys.executable)


def comfy_env(version: ComfyVersion) -> dict[str, str]:
    """The environment of ComfyUI's processes for ``version``: its ``site_env`` folder first on ``PYTHONPATH``."""
    env = {**os.environ, "COMFYUI_PATH": str(comfyui_path(version)), "PYTHONDONTWRITEBYTECODE": "1"}
    site = os.environ.get(version.site_env)
    if site:
        if not Path(site).is_dir():
            pytest.fail(f"{version.site_env}={site} is not a folder")
        env["PYTHONPATH"] = os.pathsep.join(filter(None, [site, os.environ.get("PYTHONPATH")]))
    return env


def comfy_run(version: ComfyVersion, *args: str) -> str:
    """Runs tests/comfy_assets.py with ComfyUI's Python on ``version``; its standard output."""
    result = subprocess.run(
        [comfy_python(), str(Path(__file__).with_name("comfy_assets.py")), *args],
        env=comfy_env(version),
        capture_output=True,
        text=True,
        timeout=900,
    )
    assert result.returncode == 0, f"comfy_assets.py {args[0]} on ComfyUI {version} failed:\n{result.stderr[-3000:]}"
    return result.stdout


def small_checkpoint(scratch: Path, version: ComfyVersion = COMFYUI_VERSIONS[0]) -> Path:
    """The small random SD2.x-v checkpoint, written once (by ``version``) into ``ICM_INTEGRATION_CACHE`` (else into
    ``scratch``)."""
    cache = Path(os.environ.get("ICM_INTEGRATION_CACHE") or scratch)
    cache.mkdir(parents=True, exist_ok=True)
    small = cache / "sd2_small_vpred.safetensors"
    if not small.exists():  # written aside, then renamed: a concurrent session never reads a partial file
        partial = small.with_name(f"{small.name}.{os.getpid()}.partial")
        comfy_run(version, "checkpoint", str(partial), str(SHARED / "comfy" / "make_sd21_random_ckpt.py"))
        partial.replace(small)
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


def write_decoder(path: Path) -> Path:
    """A random IconMatting decoder matching the small checkpoint (:func:`small_decoder_config`) at ``path``."""
    from icm_model.decoder.checkpoint import save_decoder
    from icm_model.random_models import random_decoder

    save_decoder(random_decoder(small_decoder_config()), path)
    return path


def write_base(base: Path, checkpoint: Path, version: ComfyVersion = COMFYUI_VERSIONS[0]) -> None:
    """A ComfyUI base directory with the pack, both checkpoints and the example workflows' inputs."""
    install_pack(base / "custom_nodes")
    checkpoints = base / "models" / "checkpoints"
    checkpoints.mkdir(parents=True)
    (checkpoints / SD_CHECKPOINT).symlink_to(checkpoint)
    (base / "models" / "icon_matting").mkdir(parents=True)
    write_decoder(base / "models" / "icon_matting" / ICM_CHECKPOINT)
    inputs = base / "input"  # the templates' own inputs: the pack copies them to input/iconmatting_* at import
    inputs.mkdir()
    _image(inputs / "icm_reference.png", 512, 384, 1)  # these four serve the browser tests
    _mask(inputs / "icm_reference_mask.png", 512, 384, (160, 96, 240, 200))
    _image(inputs / "icm_target_photo.png", 472, 416, 2)
    comfy_run(version, "video", str(inputs / "icm_video.mp4"))
    (base / "user").mkdir()


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@dataclass
class ComfyServer:
    """A running ComfyUI ``version``: ``url`` (no trailing slash), its ``base`` directory and ``log`` file."""

    url: str
    version: ComfyVersion
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
            try:
                history = self.get(f"/history/{prompt_id}")
            except (urllib.error.URLError, TimeoutError, ConnectionError):
                history = {}  # a busy server (a run in progress, a loaded machine) answers the next poll
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


def start_server(
    base: Path, version: ComfyVersion = COMFYUI_VERSIONS[0], extra_args: tuple[str, ...] = (), timeout: float = 600.0
) -> ComfyServer:
    """Starts ComfyUI ``version`` on ``base`` (made by :func:`write_base`) and waits until it answers."""
    port = _free_port()
    log = base / "comfyui.log"
    with open(log, "w") as out:
        process = subprocess.Popen(
            [comfy_python(), "main.py", "--cpu", "--listen", "127.0.0.1", "--port", str(port),
             "--base-directory", str(base), "--database-url", f"sqlite:///{base}/user/comfyui.db",
             "--disable-auto-launch", *extra_args],
            cwd=comfyui_path(version), stdout=out, stderr=subprocess.STDOUT, env=comfy_env(version),
        )  # fmt: skip
    server = ComfyServer(f"http://127.0.0.1:{port}", version, base, log, process)
    deadline = time.time() + timeout
    while time.time() < deadline:
        server.check_alive()
        try:
            running = server.get("/system_stats")["system"]["comfyui_version"]
        except (urllib.error.URLError, TimeoutError, ConnectionError):
            time.sleep(0.5)
            continue
        if running != version.name:
            server.stop()
            pytest.fail(f"ComfyUI {running} answered where {version} was started")
        return server
    server.stop()
    pytest.fail(f"ComfyUI {version} did not start within {timeout} s: {server.log_tail()}")


FRONTENDS = ("pinned", "current")
"""``pinned``: the frontend the ComfyUI version's requirements.txt pins (its default: 1.27.10 for 0.3.64, 1.49.6 for
0.33.0); ``current``: ``--front-end-root $ICM_FRONTEND_CURRENT`` (1.58.1)."""


def frontend_args(frontend: str) -> tuple[str, ...]:
    if frontend == "pinned":
        return ()
    root = os.environ.get("ICM_FRONTEND_CURRENT")
    if not root or not (Path(root) / "index.html").is_file():
        unavailable("ICM_FRONTEND_CURRENT does not point at a frontend's static folder (with index.html)")
    return ("--front-end-root", root)


class ComfyServers:
    """One server per ComfyUI version and frontend, started on first use against its own base directory; asking for
    another version stops the running ones (one version's servers at a time keeps memory low); :meth:`close` stops
    all."""

    def __init__(self, scratch: Path, checkpoint_dir: Path):
        self.scratch, self.checkpoint_dir = scratch, checkpoint_dir
        self.servers: dict[tuple[str, str], ComfyServer] = {}
        self.failed: set[tuple[str, str]] = set()

    def get(self, version: ComfyVersion, frontend: str = "pinned") -> ComfyServer:
        key = (version.name, frontend)
        if key not in self.servers:
            args = frontend_args(frontend)
            comfyui_path(version)
            if key in self.failed:
                pytest.fail(f"ComfyUI {version} with the {frontend} frontend failed to start earlier in this session")
            for other in [k for k in self.servers if k[0] != version.name]:
                self.servers.pop(other).stop()
            base = self.scratch / f"comfy_{version}_{frontend}"
            if not base.exists():
                write_base(base, small_checkpoint(self.checkpoint_dir, version), version)
            self.failed.add(key)
            self.servers[key] = start_server(base, version, args)
            self.failed.discard(key)
        return self.servers[key]

    def close(self) -> None:
        for server in self.servers.values():
            server.stop()
