"""The pack inside a real ComfyUI: import, node schemas, and every API-format example workflow executed.

Runs only when COMFYUI_PATH points at a ComfyUI checkout (skipped otherwise, as in CI). ComfyUI runs as a separate
server process with COMFYUI_PYTHON (default: this Python), on 127.0.0.1, against a temporary base directory that
holds a symlink to this pack, a small random SD2.x-v checkpoint written by ComfyUI itself
(tests/comfy_assets.py), a small random IconMatting checkpoint and generated input images and video. Set
ICM_INTEGRATION_CACHE to a folder to keep the 1 GB checkpoint between runs.
"""

from __future__ import annotations

import json
import os
import re
import socket
import subprocess
import sys
import time
import urllib.error
import urllib.request
from pathlib import Path

import numpy as np
import pytest
import torch
from helpers import SHARED
from PIL import Image

from icm_model.decoder.checkpoint import save_decoder
from icm_model.decoder.config import DecoderConfig
from icm_model.random_models import random_decoder

COMFYUI_PATH = os.environ.get("COMFYUI_PATH")
pytestmark = pytest.mark.skipif(not COMFYUI_PATH, reason="set COMFYUI_PATH to a ComfyUI checkout to run these")

PACK_ROOT = Path(__file__).resolve().parents[1]
WORKFLOWS = PACK_ROOT / "workflows"
# Matches the small checkpoint (320 channels at every level) on a 256x256 canvas: 8x8 and 16x16 token grids.
SMALL_DECODER = DecoderConfig(
    feature_channels=(320, 320),
    correspondence_channels=320,
    attention_tokens=(64, 256),
    guidance_channels=16,
    feature_out_channels=(32, 32),
    fusion_channels=(16, 16, 16, 16),
)
OUR_NODES = (
    "LoadIconMattingModel",
    "EncodeReferenceContext",
    "InContextSimilarity",
    "MattingHead",
    "VideoInContextMatte",
)

NOT_NODE_NAMES = {"IconMatting"}


def _python() -> str:
    return os.environ.get("COMFYUI_PYTHON", sys.executable)


def _comfy_run(*args: str) -> None:
    env = {**os.environ, "COMFYUI_PATH": COMFYUI_PATH, "PYTHONDONTWRITEBYTECODE": "1"}
    subprocess.run(
        [_python(), str(Path(__file__).with_name("comfy_assets.py")), *args],
        check=True,
        env=env,
        capture_output=True,
        timeout=900,
    )


def _image(path: Path, width: int, height: int, seed: int) -> None:
    rng = np.random.default_rng(seed)
    Image.fromarray(rng.integers(0, 255, (height, width, 3), dtype=np.uint8)).save(path)


def _mask(path: Path, width: int, height: int, box: tuple[int, int, int, int]) -> None:
    mask = np.zeros((height, width), np.uint8)
    x, y, w, h = box
    mask[y : y + h, x : x + w] = 255
    Image.fromarray(mask).convert("RGB").save(path)


def _assets(base: Path, small: Path) -> None:
    (base / "custom_nodes").mkdir(parents=True)
    (base / "custom_nodes" / "comfyui-iconmatting").symlink_to(PACK_ROOT, target_is_directory=True)
    checkpoints = base / "models" / "checkpoints"
    checkpoints.mkdir(parents=True)
    (checkpoints / "v2-1_768-ema-pruned.safetensors").symlink_to(small)
    (base / "models" / "icon_matting").mkdir(parents=True)
    save_decoder(random_decoder(SMALL_DECODER), base / "models" / "icon_matting" / "iconmatting.safetensors")
    inputs = base / "input"
    inputs.mkdir()
    _image(inputs / "icm_reference.png", 512, 384, 1)
    _mask(inputs / "icm_reference_mask.png", 512, 384, (160, 96, 240, 200))
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
    ):
        _image(inputs / f"{name}.png", 512 - 40 * seed, 384 + 16 * seed, seed)
    _comfy_run("video", str(inputs / "icm_video.mp4"))
    _mask(inputs / "icm_video_mask.png", 192, 128, (48, 32, 96, 64))


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _get(url: str):
    with urllib.request.urlopen(url, timeout=30) as response:
        return json.loads(response.read())


@pytest.fixture(scope="module")
def server(tmp_path_factory, small_checkpoint):
    base = tmp_path_factory.mktemp("comfy")
    _assets(base, small_checkpoint)
    (base / "user").mkdir(exist_ok=True)
    port = _free_port()
    log = open(base / "comfyui.log", "w")  # noqa: SIM115
    process = subprocess.Popen(
        [_python(), "main.py", "--cpu", "--listen", "127.0.0.1", "--port", str(port), "--base-directory", str(base),
         "--database-url", f"sqlite:///{base}/user/comfyui.db", "--disable-auto-launch"],
        cwd=COMFYUI_PATH, stdout=log, stderr=subprocess.STDOUT, env={**os.environ, "PYTHONDONTWRITEBYTECODE": "1"},
    )  # fmt: skip
    url = f"http://127.0.0.1:{port}"
    try:
        for _ in range(240):
            if process.poll() is not None:
                pytest.fail(f"ComfyUI exited: {(base / 'comfyui.log').read_text()[-3000:]}")
            try:
                _get(f"{url}/system_stats")
                break
            except (urllib.error.URLError, ConnectionError):
                time.sleep(0.5)
        else:
            pytest.fail("ComfyUI did not start within 120 s")
        yield url, base
    finally:
        process.terminate()
        process.wait(timeout=30)
        log.close()


@pytest.fixture(scope="module")
def small_checkpoint(tmp_path_factory) -> Path:
    cache = Path(os.environ.get("ICM_INTEGRATION_CACHE") or tmp_path_factory.mktemp("ckpt"))
    small = cache / "sd2_small_vpred.safetensors"
    if not small.exists():
        _comfy_run("checkpoint", str(small), str(SHARED / "comfy" / "make_sd21_random_ckpt.py"))
    return small


def test_comfyui_path_equals_diffusers_single_file_path(small_checkpoint, tmp_path):
    """Real ComfyUI (CheckpointLoaderSimple's loader, the pack's patches) against diffusers on the same file."""
    from comfy_assets import feature_inputs
    from safetensors.torch import load_file

    from icm_model.backbone.diffusers_backbone import DiffusersBackbone
    from icm_model.backbone.features import EnsembleFeatureExtractor, EnsembleNoise

    _comfy_run("features", str(small_checkpoint), str(tmp_path / "comfy.safetensors"))
    comfy = load_file(tmp_path / "comfy.safetensors")
    images, diffusion = feature_inputs(torch)
    noise = EnsembleNoise(torch.zeros_like(diffusion), diffusion)  # ComfyUI's VAE gives the posterior mode
    extractor = EnsembleFeatureExtractor(DiffusersBackbone.from_pretrained(small_checkpoint))
    with torch.no_grad():
        target = extractor.targets(images, noise)
        ours = {
            "correspondence": target.correspondence,
            "low": target.features[0],
            "attention_low": target.attention[0],
            "attention_high": target.attention[1],
            "reference": extractor.correspondence(images, noise),
        }
    for name, value in ours.items():
        scale = float(value.abs().max())
        assert float((value - comfy[name]).abs().max()) < 1e-4 * scale, name  # seen: about 2e-6


def test_pack_imports_cleanly(server):
    url, base = server
    log = (base / "comfyui.log").read_text()
    failures = [line for line in log.splitlines() if "comfyui-iconmatting" in line and "IMPORT FAILED" in line]
    assert not failures and "comfyui-iconmatting module for custom nodes" not in log, log[-3000:]
    info = _get(f"{url}/object_info")
    for node in OUR_NODES:
        assert node in info, node
    assert info["EncodeReferenceContext"]["input"]["required"]["timestep"][1]["default"] == 200
    for node in OUR_NODES:  # ComfyUI 0.3.64 does not send search_aliases yet; newer versions send SEARCH_ALIASES
        if "search_aliases" in info[node]:
            assert "matting" in info[node]["search_aliases"], node
    # Node ids named in our descriptions and tooltips (CamelCase words) exist in this ComfyUI.
    ours = {name: node for name, node in info.items() if node["python_module"].endswith("comfyui-iconmatting")}
    texts = [node["description"] for node in ours.values()]
    texts += [tip for node in ours.values() for tip in node.get("output_tooltips", [])]
    texts += [
        spec[1].get("tooltip", "")
        for node in ours.values()
        for group in node["input"].values()
        for spec in group.values()
        if len(spec) > 1
    ]
    named = {word for text in texts for word in re.findall(r"\b[A-Z][a-z]+(?:[A-Z][a-z]+)+(?:_\w+)?\b", text)}
    assert named and named - NOT_NODE_NAMES <= set(info), named - NOT_NODE_NAMES - set(info)
    extensions = _get(f"{url}/extensions")
    assert any("comfyui-iconmatting" in path for path in extensions)


def _run(url: str, prompt: dict, timeout: float = 600.0) -> dict:
    request = urllib.request.Request(
        f"{url}/prompt",
        data=json.dumps({"prompt": prompt, "client_id": "icm-test"}).encode(),
        headers={"Content-Type": "application/json"},
    )
    try:
        with urllib.request.urlopen(request, timeout=30) as response:
            prompt_id = json.loads(response.read())["prompt_id"]
    except urllib.error.HTTPError as error:
        pytest.fail(f"prompt refused: {error.read().decode()[:3000]}")
    deadline = time.time() + timeout
    while time.time() < deadline:
        history = _get(f"{url}/history/{prompt_id}")
        if prompt_id in history and history[prompt_id].get("status", {}).get("completed") is not None:
            return history[prompt_id]
        time.sleep(1.0)
    pytest.fail(f"prompt {prompt_id} did not finish in {timeout} s")


@pytest.mark.parametrize("name", sorted(p.name for p in WORKFLOWS.glob("*.api.json")))
def test_workflow_runs(server, name):
    url, base = server
    prompt = json.loads((WORKFLOWS / name).read_text())
    for node in prompt.values():  # keep CPU runs short: one noise sample instead of four
        if "ensemble_size" in node["inputs"]:
            node["inputs"]["ensemble_size"] = 1
    result = _run(url, prompt)
    assert result["status"]["status_str"] == "success", json.dumps(result["status"])[:3000]
    files = [
        item for output in result["outputs"].values() for key in ("images", "video") for item in output.get(key, [])
    ]
    assert files, result["outputs"]
    for item in files:
        folder = base / ("output" if item["type"] == "output" else "temp")
        assert (folder / item["subfolder"] / item["filename"]).is_file(), item
    if name.startswith("fig1_"):  # three RGBA cut-outs, each at its own target's full size
        sizes = {Image.open(base / "output" / f["subfolder"] / f["filename"]).size for f in files}
        assert sizes == {(512 - 40 * seed, 384 + 16 * seed) for seed in (2, 3, 4)}
        assert all(Image.open(base / "output" / f["subfolder"] / f["filename"]).mode == "RGBA" for f in files)
