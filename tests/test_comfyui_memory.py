"""Memory manners inside a real ComfyUI (COMFYUI_PATH; skipped without it, failed in CI), on the small random
checkpoint of tests/comfy_server.py.

The server gets, beside the pack, the test-only nodes of tests/comfy_probe (copied into its own custom_nodes; the pack
ships no debug node) to look inside the ComfyUI process, and two small random LoRAs for the SD2 U-Net keys. Every run
is one small image or a 4-frame 192x128 video with one noise sample: the 2-core CI machine runs them on the CPU.
"""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import psutil
import pytest
import torch
from comfy_server import SD_CHECKPOINT, start_server, write_base

API_WORKFLOWS = Path(__file__).resolve().parents[1] / "workflows" / "api"
PROBE = Path(__file__).resolve().with_name("comfy_probe")
RSS_GROWTH_BOUND = 96 << 20
"""Largest growth of the ComfyUI process's resident memory after the 2nd of five identical queued runs. Seen: 0.1, 14
and 28 MiB on 0.3.64, 0.0 on 0.33.0. Anything kept per run shows three times by the 5th run: a MODEL (435 MiB of fp32
weights), the VAE, the IconMatting decoder (80 MiB) or anything above 32 MiB a run fails it."""
EARLY_LAYERS = [f"input_blocks_{i}_1_transformer_blocks_0_attn1_to_{p}" for i in (1, 2) for p in ("q", "k", "v")]
"""Self-attention of level 0's transformers, which every capture pass runs."""
LATE_LAYERS = [f"output_blocks_{i}_1_transformer_blocks_0_attn1_to_{p}" for i in (10, 11) for p in ("q", "k", "v")]
"""Self-attention of the last output blocks, after every pass has stopped (output block 8)."""


def _write_lora(path: Path, checkpoint: Path, layers: list[str], seed: int) -> None:
    """A rank-4 LoRA (kohya key names) on ``layers`` of the checkpoint's U-Net, random and large enough to matter."""
    from safetensors import safe_open
    from safetensors.torch import save_file

    generator = torch.Generator().manual_seed(seed)
    tensors = {}
    with safe_open(checkpoint, "pt") as weights:
        for layer in layers:
            key = "model.diffusion_model." + layer.replace("_1_transformer_blocks_0_", ".1.transformer_blocks.0.")
            key = key.replace("blocks_", "blocks.", 1).replace("_to_", ".to_") + ".weight"
            out_features, in_features = weights.get_slice(key).get_shape()
            name = f"lora_unet_{layer}"
            tensors[f"{name}.lora_down.weight"] = torch.randn(4, in_features, generator=generator)
            tensors[f"{name}.lora_up.weight"] = torch.randn(out_features, 4, generator=generator) * 0.5
            tensors[f"{name}.alpha"] = torch.tensor(4.0)
    save_file(tensors, path)


@pytest.fixture(scope="module")
def server(tmp_path_factory, comfy_checkpoint, comfy_version):
    """A ComfyUI (--cpu) with the pack, the probe nodes and the LoRAs, for this module alone."""
    checkpoint = comfy_checkpoint
    base = tmp_path_factory.mktemp("comfy_memory") / "base"
    write_base(base, checkpoint, comfy_version)
    shutil.copytree(PROBE, base / "custom_nodes" / "icm_test_probe")
    (base / "models" / "loras").mkdir(parents=True)
    _write_lora(base / "models" / "loras" / "early.safetensors", checkpoint, EARLY_LAYERS, 1)
    _write_lora(base / "models" / "loras" / "late.safetensors", checkpoint, LATE_LAYERS, 2)
    server = start_server(base, comfy_version)
    yield server
    server.stop()


def _ok(server, prompt: dict) -> dict:
    prompt_id = server.queue(prompt)
    for _ in range(3):  # a CPU-bound ComfyUI on a loaded 2-core machine may not answer one poll within its timeout
        try:
            result = server.wait(prompt_id)
            break
        except TimeoutError:
            continue
    else:
        pytest.fail(f"ComfyUI stopped answering while running prompt {prompt_id}")
    assert result["status"]["status_str"] == "success", json.dumps(result["status"])[:3000] + server.log_tail()
    return result


def _report(result: dict, node: str) -> dict:
    return json.loads(result["outputs"][node]["text"][0])


_labels = iter(range(1_000_000))


def _live_models(server) -> dict:
    """What ICMTestLiveModels sees now."""
    return _report(_ok(server, {"probe": {"class_type": "ICMTestLiveModels", "inputs": {"label": str(next(_labels))}}}),
                   "probe")  # fmt: skip


def _free(server) -> None:
    """ComfyUI's "free memory" (unload models, drop cached outputs): POST /free, applied after the next prompt."""
    server.post("/free", {"unload_models": True, "free_memory": True})
    _live_models(server)


def _video_prompt(frames_per_batch: int) -> dict:
    prompt = json.loads((API_WORKFLOWS / "video_matte_image_sequences.json").read_text())
    for node in prompt.values():
        if node["class_type"] == "IconMattingVideoBatchManager":
            node["inputs"]["frames_per_batch"] = frames_per_batch
        if "ensemble_size" in node["inputs"]:
            node["inputs"]["ensemble_size"] = 1
    return prompt


def _still_prompt(ensemble: int = 1, model: tuple = ("ckpt", 0), extra: dict | None = None) -> dict:
    """Reference image + mask -> one target's inter-similarity picture and alpha, into ICMTestTensorStats."""
    loaders = {
        "ckpt": ("CheckpointLoaderSimple", {"ckpt_name": SD_CHECKPOINT}),
        "icm": ("LoadIconMattingModel", {"model_name": "iconmatting.safetensors"}),
        "ref": ("LoadImage", {"image": "icm_reference.png"}),
        "mask": ("LoadImageMask", {"image": "icm_reference_mask.png", "channel": "red"}),
        "target": ("LoadImage", {"image": "icm_target_photo.png"}),
    }
    common = {"ensemble_size": ensemble, "seed": 0}
    nodes = {
        "encode": ("EncodeReferenceContext", {"iconmatting_model": ["icm", 0], "model": list(model), "vae": ["ckpt", 2],
                   "clip": ["ckpt", 1], "reference_image": ["ref", 0], "reference_mask": ["mask", 0],
                   "prompt_type": "mask", "timestep": 200, **common}),
        "similarity": ("InContextSimilarity", {"reference": ["encode", 0], "target_image": ["target", 0], **common}),
        "head": ("MattingHead", {"iconmatting_model": ["icm", 0], "guidance": ["similarity", 0],
                 "target_image": ["target", 0], "foreground_method": "multilevel", "upsampling": "guided"}),
        "stats": ("ICMTestTensorStats", {"image": ["similarity", 1], "mask": ["head", 0]}),
    }  # fmt: skip
    prompt = {key: {"class_type": cls, "inputs": inputs} for key, (cls, inputs) in {**loaders, **nodes}.items()}
    prompt.update(extra or {})
    return prompt


def _stats(server, prompt: dict) -> dict:
    return _report(_ok(server, prompt), "stats")


def _values(stats: dict, name: str) -> torch.Tensor:
    return torch.tensor(stats[name]["values"])


def test_no_model_alive_after_free_memory(server):
    """After a video run over two batches (the pack's per-clip state filled) and ComfyUI's "free memory", nothing
    keeps the U-Net, the VAE, the IconMatting decoder or any ModelPatcher alive; no object of the pack refers to a
    U-Net."""
    prompt = _video_prompt(frames_per_batch=2)
    matte = next(key for key, node in prompt.items() if node["class_type"] == "VideoInContextMatte")
    prompt["probe"] = {"class_type": "ICMTestLiveModels", "inputs": {"label": "during", "after": [matte, 0]}}
    runs = [_ok(server, prompt) for _ in range(2)]
    assert "kept from frame 1" in json.dumps(runs[1]["outputs"])  # the second batch used the kept reference
    during = _report(runs[1], "probe")["counts"]  # the probe does see the models while the prompt holds them
    assert during["UNetModel"] >= 1 and during["InContextDecoder"] >= 1, during
    _free(server)
    seen = _live_models(server)
    assert seen["pack_referrers"] == [] and seen["counts"] == dict.fromkeys(seen["counts"], 0), seen


def test_five_queued_runs_do_not_grow_memory(server):
    """Five identical queued runs of the video workflow (the whole 4-frame video in one batch; the batch manager makes
    every run execute, encoding the reference again), each ending with a gc.collect() in the ComfyUI process: after
    the 3rd, 4th and 5th run the process's resident memory is at most RSS_GROWTH_BOUND above its size after the 2nd."""
    process = psutil.Process(server.process.pid)
    prompt = _video_prompt(frames_per_batch=4)
    matte = next(key for key, node in prompt.items() if node["class_type"] == "VideoInContextMatte")
    prompt["probe"] = {"class_type": "ICMTestLiveModels", "inputs": {"label": "gc", "after": [matte, 0]}}
    rss = []
    for _ in range(5):
        _ok(server, prompt)
        rss.append(process.memory_info().rss)
    print("RSS after each run (MiB):", [round(r / (1 << 20), 1) for r in rss])
    assert max(rss[2:]) - rss[1] <= RSS_GROWTH_BOUND, [round(r / (1 << 20), 1) for r in rss]


def test_batches_shrink_instead_of_failing(server):
    """A small device budget (get_free_memory reports 1 MB) makes every U-Net call one latent; a U-Net that runs out of
    memory above one latent makes the pass fall back to one latent a call; both give the plain run's alpha."""
    budget = {"budget": {"class_type": "ICMTestDeviceBudget",
                         "inputs": {"model": ["ckpt", 0], "oom_above": 0, "free_memory_mb": 0}},
              "report": {"class_type": "ICMTestReport", "inputs": {"after": ["head", 0]}}}  # fmt: skip
    results = {}
    for name, oom_above, free_memory_mb in [("plain", 0, 0), ("small", 0, 1), ("oom", 1, 0)]:
        budget["budget"]["inputs"].update(oom_above=oom_above, free_memory_mb=free_memory_mb)
        result = _ok(server, _still_prompt(2, ("budget", 0), json.loads(json.dumps(budget))))
        results[name] = (_report(result, "stats"), _report(result, "report")["calls"])
    assert results["plain"][1] == [2, 2]  # reference, then target: both ensemble members in one call
    assert results["small"][1] == [1, 1, 1, 1]
    assert results["oom"][1] == [2, 1, 1, 1, 1]  # the failed call of 2, then one latent a call from there on
    for name in ("small", "oom"):
        # the same alpha up to the float rounding of other batch sizes in the CPU kernels (seen: 2.4e-4)
        torch.testing.assert_close(_values(results[name][0], "mask"), _values(results["plain"][0], "mask"),
                                   rtol=0, atol=1e-3)  # fmt: skip


def _lora(name: str, strength: float = 1.0, model: str = "ckpt") -> dict:
    return {"lora": {"class_type": "LoraLoaderModelOnly",
                     "inputs": {"model": [model, 0], "lora_name": name, "strength_model": strength}}}  # fmt: skip


@pytest.fixture(scope="module")
def full_load(server):
    """ICMTestTensorStats of the plain MODEL and of the MODEL with the early-layers LoRA, loaded whole (run once)."""
    return {
        "plain": _stats(server, _still_prompt()),
        "early": _stats(server, _still_prompt(1, ("lora", 0), _lora("early.safetensors"))),
    }


def test_lora_reaches_the_weights_the_pass_runs(server, full_load):
    """LoraLoaderModelOnly on the MODEL: a LoRA on layers the capture pass runs changes the features and the alpha; one
    on layers after the pass stops, or strength 0, gives exactly the plain result."""
    plain, early = full_load["plain"], full_load["early"]
    late = _stats(server, _still_prompt(1, ("lora", 0), _lora("late.safetensors")))
    off = _stats(server, _still_prompt(1, ("lora", 0), _lora("early.safetensors", 0.0)))
    for output in ("image", "mask"):
        assert late[output]["sha"] == plain[output]["sha"] == off[output]["sha"], output
    difference = (_values(early, "image") - _values(plain, "image")).abs().max()
    assert difference > 0.05 and early["mask"]["sha"] != plain["mask"]["sha"], float(difference)


@pytest.mark.parametrize("mode", ["lowvram", "novram"])
def test_lowvram_and_novram_loading(server, full_load, mode):
    """ComfyUI's --lowvram / --novram loading (weights left on the offload device, LoRA patches applied as each layer
    runs), forced on the CPU device: the U-Net really is loaded that way, and the features and alpha equal those
    of a full load, with and without a LoRA."""
    for lora, full in ((None, full_load["plain"]), ("early.safetensors", full_load["early"])):
        extra = {"vram": {"class_type": "ICMTestVramMode", "inputs": {"model": ["ckpt", 0], "mode": mode}},
                 "report": {"class_type": "ICMTestReport", "inputs": {"after": ["head", 0]}},
                 **(_lora(lora, model="vram") if lora else {})}  # fmt: skip
        _free(server)  # the U-Net is loaded afresh, the forced way
        result = _ok(server, _still_prompt(1, ("lora", 0) if lora else ("vram", 0), extra))
        loads = [load for load in _report(result, "report")["loads"] if load["model"] == "BaseModel"]  # the U-Net
        assert loads and all(load["lowvram"] and load["loaded"] < load["size"] for load in loads), loads
        if mode == "novram":
            assert all(load["loaded"] == 0 for load in loads), loads
        for output in ("image", "mask"):
            torch.testing.assert_close(_values(_report(result, "stats"), output), _values(full, output), rtol=1e-4,
                                       atol=1e-4)  # fmt: skip
