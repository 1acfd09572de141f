"""The pack inside a real ComfyUI: import, node schemas, every API-format example workflow executed, the features
equal to the diffusers path's, progress and Cancel inside U-Net passes.

Every test runs against each ComfyUI version of tests/comfy_server.py (``COMFYUI_VERSIONS``; the id names it): needs
COMFYUI_PATH (0.3.64), COMFYUI_033_PATH (0.33.0) and COMFYUI_PYTHON (their Python; default this one), skipped without
them, failed in CI. The servers and their base directories are tests/comfy_server.py's (``comfy_servers``).
"""

from __future__ import annotations

import json
import re
import time
import urllib.error
import urllib.request
from pathlib import Path

import numpy as np
import pytest
import torch
from comfy_server import ICM_CHECKPOINT, PACK_FOLDER, comfy_run, write_decoder
from PIL import Image

PACK_ROOT = Path(__file__).resolve().parents[1]
API_WORKFLOWS = PACK_ROOT / "workflows" / "api"
EXAMPLE_INPUTS = PACK_ROOT / "example_inputs"
OUR_NODES = (
    "LoadIconMattingModel",
    "EncodeReferenceContext",
    "InContextSimilarity",
    "MattingHead",
    "VideoInContextMatte",
)
NOT_NODE_NAMES = {"IconMatting"}


@pytest.fixture(scope="module")
def server(comfy_servers, comfy_version):
    return comfy_servers.get(comfy_version, "pinned")


def test_comfyui_path_equals_diffusers_single_file_path(comfy_version, comfy_checkpoint, tmp_path):
    """Real ComfyUI (CheckpointLoaderSimple's loader, the pack's patches) against diffusers on the same file."""
    from comfy_assets import feature_inputs
    from safetensors.torch import load_file

    from icm_model.backbone.diffusers_backbone import DiffusersBackbone
    from icm_model.backbone.features import EnsembleFeatureExtractor, EnsembleNoise

    comfy_run(comfy_version, "features", str(comfy_checkpoint), str(tmp_path / "comfy.safetensors"))
    comfy = load_file(tmp_path / "comfy.safetensors")
    images, diffusion = feature_inputs(torch)
    noise = EnsembleNoise(torch.zeros_like(diffusion), diffusion)  # ComfyUI's VAE gives the posterior mode
    extractor = EnsembleFeatureExtractor(DiffusersBackbone.from_pretrained(comfy_checkpoint))
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


# --- progress and Cancel inside U-Net passes (tests/comfy_assets.py ``passes``) --------------------------------------


def planned(total: int, inside: range) -> list[list]:
    """One bar moving one step at a time to ``total``: ``[value, total, reported from inside a U-Net pass]``."""
    return [[value, total, value in inside] for value in range(1, total + 1)]


ENCODE_PROGRESS = planned(1 + 19, range(2, 21))
"""Encode Reference Context, one reference, ensemble 1: the VAE encode, then 12 input + 7 output blocks."""
SIMILARITY_PROGRESS = planned(1 + 21 + 1, range(2, 23))
"""In-Context Similarity, one target, ensemble 1: the VAE encode, 21 blocks, the similarity maps."""
PROGRESS_THROTTLED = {"0.3.64": False, "0.33.0": True}
"""Whether ComfyUI's ProgressBar drops updates that come within 0.1 s of the last one (``utils.py``; newer than
0.3.64): the first and the last always pass."""
INTERRUPT_BASE = {"0.3.64": "Exception", "0.33.0": "BaseException"}
"""The base class of ComfyUI's InterruptProcessingException (``model_management.py``)."""


@pytest.fixture(scope="module")
def passes(comfy_version, comfy_checkpoint, tmp_path_factory) -> dict:
    """What tests/comfy_assets.py ``passes`` reports: the pack's nodes run in this ComfyUI with a progress hook."""
    scratch = tmp_path_factory.mktemp("passes")
    decoder = write_decoder(scratch / ICM_CHECKPOINT)
    comfy_run(comfy_version, "passes", str(comfy_checkpoint), str(decoder), str(scratch / "passes.json"))
    return json.loads((scratch / "passes.json").read_text())


@pytest.mark.parametrize(("node", "expected"), [("encode", ENCODE_PROGRESS), ("similarity", SIMILARITY_PROGRESS)])
def test_progress_moves_within_passes_and_is_full_only_at_the_end(passes, comfy_version, node, expected):
    # A hook that waits out the throttle sees every block's update.
    assert passes[node]["waiting"] == expected
    fast = passes[node]["fast"]  # a hook that returns at once, as ComfyUI's own
    if not PROGRESS_THROTTLED[comfy_version.name]:
        assert fast == expected
    else:  # some updates dropped, never reordered or invented; the first and the full bar always arrive
        assert fast[0] == expected[0] and fast[-1] == expected[-1]
        assert [update for update in expected if update in fast] == fast


def test_cancel_inside_a_pass_leaves_the_model_untouched(passes, comfy_version):
    cancel = passes["cancel"]
    assert cancel["raised"] and passes["interrupt_base"] == INTERRUPT_BASE[comfy_version.name]
    assert cancel["updates"] == SIMILARITY_PROGRESS[:6]  # Cancel pressed after input block 4 ...
    assert "input_blocks.4" in cancel["blocks"] and "input_blocks.5" not in cancel["blocks"]  # ... stops before 5
    assert cancel["cleared"]
    assert passes["untouched"] == {"weights": True, "model_options": True, "patches": True, "similarity": True}


# --- the server ------------------------------------------------------------------------------------------------------


def test_pack_imports_cleanly(server):
    log = server.log.read_text()
    failures = [line for line in log.splitlines() if PACK_FOLDER in line and "IMPORT FAILED" in line]
    assert not failures and f"{PACK_FOLDER} module for custom nodes" not in log, server.log_tail()
    info = server.get("/object_info")
    for node in OUR_NODES:
        assert node in info, node
    assert info["EncodeReferenceContext"]["input"]["required"]["timestep"][1]["default"] == 200
    for node in OUR_NODES:  # ComfyUI 0.3.64 does not send search_aliases yet; newer versions send SEARCH_ALIASES
        if "search_aliases" in info[node]:
            assert "matting" in info[node]["search_aliases"], node
    # Node ids named in our descriptions and tooltips (CamelCase words) exist in this ComfyUI.
    ours = {name: node for name, node in info.items() if node["python_module"].endswith(PACK_FOLDER)}
    texts = [node["description"] for node in ours.values()]
    texts += [tip for node in ours.values() for tip in node.get("output_tooltips", [])]
    texts += [
        spec[1].get("tooltip", "")
        for node in ours.values()
        for group in ("required", "optional")  # not "hidden": its values are plain type names
        for spec in node["input"].get(group, {}).values()
        if len(spec) > 1
    ]
    named = {word for text in texts for word in re.findall(r"\b[A-Z][a-z]+(?:[A-Z][a-z]+)+(?:_\w+)?\b", text)}
    assert named and named - NOT_NODE_NAMES <= set(info), named - NOT_NODE_NAMES - set(info)
    assert any(PACK_FOLDER in path for path in server.get("/extensions"))


def test_templates_are_listed_once_with_their_thumbnails(server):
    """The template browser's list, and the files it fetches: <name>.json and the thumbnail <name>.jpg."""
    names = server.get("/workflow_templates")[PACK_FOLDER]
    assert sorted(names) == sorted(p.stem for p in (PACK_ROOT / "example_workflows").glob("*.json"))
    for name in names:
        assert server.get(f"/api/workflow_templates/{PACK_FOLDER}/{name}.json")["nodes"], name
        with urllib.request.urlopen(f"{server.url}/api/workflow_templates/{PACK_FOLDER}/{name}.jpg") as response:
            assert response.headers["Content-Type"] == "image/jpeg" and response.read(3) == b"\xff\xd8\xff", name


@pytest.mark.parametrize("name", sorted(p.name for p in API_WORKFLOWS.glob("*.json")))
def test_workflow_runs(server, name):
    prompt = json.loads((API_WORKFLOWS / name).read_text())
    for node in prompt.values():  # keep CPU runs short: one noise sample instead of four, one fine-tuning step
        if "ensemble_size" in node["inputs"]:
            node["inputs"]["ensemble_size"] = 1
        if node["class_type"] == "IconMattingFineTune":
            node["inputs"]["steps"] = 1
    result = server.run(prompt)
    assert result["status"]["status_str"] == "success", json.dumps(result["status"])[:3000]
    files = [
        item for output in result["outputs"].values() for key in ("images", "video") for item in output.get(key, [])
    ]
    assert files, result["outputs"]
    for item in files:
        assert server.output_file(item).is_file(), item
    if name.startswith("fig1_"):  # three RGBA cut-outs, each at its own target's full size
        images = [Image.open(server.output_file(item)) for item in files]
        targets = ("chelsea_mirrored.jpg", "coffee.jpg", "astronaut.jpg")
        assert {image.size for image in images} == {Image.open(EXAMPLE_INPUTS / target).size for target in targets}
        assert all(image.mode == "RGBA" for image in images)
    if name.startswith("composite_"):  # two transparent cut-outs and two opaque composites at the renders' size
        images = [Image.open(server.output_file(item)) for item in files]
        assert sorted(image.mode for image in images) == ["RGB", "RGB", "RGBA", "RGBA"]
        assert {image.size for image in images} == {Image.open(EXAMPLE_INPUTS / "chelsea.jpg").size}
    if name.startswith("video_matte_image_sequences"):  # the whole 4-frame test video in one batch: 4 + 4 PNGs
        assert [Image.open(server.output_file(item)).size for item in files] == [(192, 128)] * 8


def test_video_batches_across_runs(server):
    """The Video Batch Manager hands out the next frames on every run; the matte node keeps its reference."""
    prompt = json.loads((API_WORKFLOWS / "video_matte_image_sequences.json").read_text())
    manager = next(key for key, node in prompt.items() if node["class_type"] == "IconMattingVideoBatchManager")
    matte = next(key for key, node in prompt.items() if node["class_type"] == "VideoInContextMatte")
    prompt[manager]["inputs"]["frames_per_batch"] = 3
    prompt[matte]["inputs"]["ensemble_size"] = 1
    runs = [server.run(prompt) for _ in range(2)]
    assert [r["status"]["status_str"] for r in runs] == ["success"] * 2
    texts = [run["outputs"][manager]["text"][0] for run in runs]
    assert texts == [
        "batch 1 of 2: frames 0-2 of 4; queue 1 more run(s)",
        "batch 2 of 2: frames 3-3 of 4; the last batch",
    ]
    assert [len(run["outputs"][matte]["text"]) for run in runs] == [1, 1]
    assert "kept from frame 2" in runs[1]["outputs"][matte]["text"][0]
    saved = [sum(len(output.get("images", [])) for output in run["outputs"].values()) for run in runs]
    assert saved == [6, 2]  # alpha and composite of 3 frames, then of the last one


def test_templates_inputs_are_the_packs_own_photos(server):
    """The pack copied its example inputs into input/ (iconmatting_<file>) at import; the test harness wrote none of
    them, so test_workflow_runs runs the templates on what a fresh ComfyUI has after installing the pack."""
    copied = sorted(p.name for p in (server.base / "input").glob("iconmatting_*"))
    shipped = [p.name for p in EXAMPLE_INPUTS.iterdir() if p.suffix in {".jpg", ".png", ".mp4"}]
    assert copied == sorted(f"iconmatting_{name}" for name in shipped)


def test_subgraph_blueprints_are_listed_or_ignored_cleanly(server):
    """0.33.0 lists subgraphs/*.json as global subgraphs (the node library's blueprints); 0.3.64 has no such route
    and neither reads the folder nor logs anything about it."""
    blueprints = sorted(p.stem for p in (PACK_ROOT / "subgraphs").glob("*.json"))
    if str(server.version) == "0.3.64":
        assert not [line for line in server.log.read_text().splitlines() if "subgraph" in line.lower()]
        with pytest.raises(urllib.error.HTTPError):
            server.get("/global_subgraphs")
        return
    listed = {key: entry for key, entry in server.get("/global_subgraphs").items() if entry["source"] == "custom_node"}
    assert sorted(entry["name"] for entry in listed.values()) == blueprints
    assert {entry["info"]["node_pack"] for entry in listed.values()} == {f"custom_nodes.{PACK_FOLDER}"}
    for key, entry in listed.items():
        data = json.loads(server.get(f"/global_subgraphs/{key}")["data"])
        assert data == json.loads((PACK_ROOT / "subgraphs" / f"{entry['name']}.json").read_text())


def _messages(result: dict, event: str) -> list[dict]:
    return [data for name, data in result["status"]["messages"] if name == event]


def _saved(server, result: dict, node: str) -> list[np.ndarray]:
    return [np.asarray(Image.open(server.output_file(item))) for item in result["outputs"][node]["images"]]


def test_model_untouched_after_a_cancelled_run(server):
    """Cancel (POST /interrupt) in the middle of the pack's U-Net pass leaves the user's MODEL as it was.

    The observable: the very MODEL object ComfyUI keeps cached from Load Checkpoint gives, after the cancelled run,
    exactly what it gave before it, both to the pack (alpha of Encode Reference Context -> In-Context Similarity ->
    Matting Head) and to a core KSampler (one step from an empty latent, decoded). Run A (fresh) and run C use the same
    settings; run B between them, the pack's nodes alone with another seed and a 16-sample ensemble so that it is still
    in a U-Net pass when the interrupt arrives, is cancelled inside the pack's node. Run C reaches the reference image
    and the KSampler's latent through a Repeat Image/Latent Batch of 1 (the same tensors under other cache keys: 0.33's
    default output cache still holds run A's outputs), so it executes the pack's nodes and the KSampler again
    (checked: they are not in its ``execution_cached`` list) on the cached checkpoint (checked: the loader is). A
    changed weight or object patch, or a patch left in the MODEL's model_options that acts on a pass (the pack's
    attention capture fails outside its own run), changes one of these outputs or fails the run; a leaked patch that
    does nothing outside the pack's capture (its per-block progress tick) would not show here: the test doubles'
    test_nodes.py checks model_options exactly.
    """
    prompt = {
        key: node
        for key, node in json.loads((API_WORKFLOWS / "fig1_one_reference_many_domains.json").read_text()).items()
        if int(key) <= 13
    }
    prompt |= {
        "30": {"class_type": "CLIPTextEncode", "inputs": {"text": "", "clip": ["1", 1]}},
        "31": {"class_type": "EmptyLatentImage", "inputs": {"width": 64, "height": 64, "batch_size": 1}},
        "32": {"class_type": "KSampler", "inputs": {
            "seed": 0, "steps": 1, "cfg": 1.0, "sampler_name": "euler", "scheduler": "normal", "denoise": 1.0,
            "model": ["1", 0], "positive": ["30", 0], "negative": ["30", 0], "latent_image": ["31", 0]}},
        "33": {"class_type": "VAEDecode", "inputs": {"samples": ["32", 0], "vae": ["1", 2]}},
        "34": {"class_type": "SaveImage",
               "inputs": {"filename_prefix": "iconmatting/cancel_sample", "images": ["33", 0]}},
    }  # fmt: skip

    def variant(seed: int, ensemble: int, sample: bool, repeat: bool = False) -> dict:
        """The prompt with the pack's seed and ensemble size; with the KSampler chain or without (then the pack's
        nodes are all there is to run, and the interrupt lands in them); ``repeat``: the reference image and the
        latent through a batch repeat of 1."""
        changed = {key: node for key, node in json.loads(json.dumps(prompt)).items() if sample or int(key) < 30}
        for node in ("5", "11"):
            changed[node]["inputs"] |= {"seed": seed, "ensemble_size": ensemble}
        if repeat:
            changed["40"] = {"class_type": "RepeatImageBatch", "inputs": {"image": ["3", 0], "amount": 1}}
            changed["41"] = {"class_type": "RepeatLatentBatch", "inputs": {"samples": ["31", 0], "amount": 1}}
            changed["5"]["inputs"]["reference_image"] = ["40", 0]
            changed["32"]["inputs"]["latent_image"] = ["41", 0]
        return changed

    server.clear_cache()
    before = server.run(variant(0, 1, sample=True))
    assert before["status"]["status_str"] == "success", json.dumps(before["status"])[:3000]

    cancelled = server.queue(variant(1, 16, sample=False))
    deadline = time.time() + 300
    while not any(item[1] == cancelled for item in server.get("/queue")["queue_running"]):
        assert time.time() < deadline, "the run to cancel never started"
        time.sleep(0.1)
    time.sleep(1.0)  # into Encode Reference Context's 16-sample U-Net passes
    server.post("/interrupt", {"prompt_id": cancelled})
    interrupted = server.wait(cancelled)
    (where,) = _messages(interrupted, "execution_interrupted")
    assert where["node_type"] in ("EncodeReferenceContext", "InContextSimilarity"), where

    after = server.run(variant(0, 1, sample=True, repeat=True))
    assert after["status"]["status_str"] == "success", json.dumps(after["status"])[:3000]
    (cached,) = _messages(after, "execution_cached")
    assert "1" in cached["nodes"] and not {"5", "11", "12", "32"} & set(cached["nodes"]), cached
    for node in ("13", "34"):  # the cut-out (alpha in its 4th channel) and the sampled image
        first, second = _saved(server, before, node), _saved(server, after, node)
        assert len(first) == len(second) == 1 and np.array_equal(first[0], second[0]), node
