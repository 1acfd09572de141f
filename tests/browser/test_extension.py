"""The pack's frontend extension in each ComfyUI version's frontends and both render modes; the example workflows
load."""

from __future__ import annotations

import json
import re
from pathlib import Path

import pytest
from comfy_server import PACK_FOLDER, comfyui_path

EXAMPLES = sorted((Path(__file__).resolve().parents[2] / "example_workflows").glob("*.json"))


def pinned_frontend(comfy) -> str:
    """The frontend version the ComfyUI version's requirements.txt pins."""
    requirements = (comfyui_path(comfy.server.version) / "requirements.txt").read_text()
    return re.search(r"^comfyui-frontend-package==(\S+)$", requirements, re.MULTILINE)[1]


@pytest.mark.parametrize("vue_nodes", [False])
def test_the_frontend_is_the_one_asked_for(comfy):
    """``pinned`` serves what the ComfyUI version pins (1.27.10, 1.49.6), ``current`` a newer one (1.58.1)."""
    pinned = pinned_frontend(comfy)
    if comfy.frontend == "pinned":
        assert comfy.frontend_version == pinned
    else:
        numbers = [tuple(map(int, v.split("."))) for v in (comfy.frontend_version, pinned)]
        assert numbers[0] > numbers[1], (comfy.frontend_version, pinned)


def test_extension_loads(comfy):
    listed = [path for path in comfy.server.get("/extensions") if f"/{PACK_FOLDER}/" in path]
    assert listed, "the server lists none of this pack's scripts"
    fetched = {url.split(comfy.server.url, 1)[-1]: status for url, status in comfy.scripts.items()}
    assert {path: fetched.get(path) for path in listed} == dict.fromkeys(listed, 200)
    names = comfy.evaluate("() => window.app.extensions.map((e) => e.name)")
    assert any(name.startswith("IconMatting.") for name in names), names
    assert comfy.evaluate("() => window.app.ui.settings.getSettingValue('Comfy.VueNodes.Enabled')") == comfy.vue_nodes


def test_example_workflows_load_without_missing_nodes(comfy):
    assert EXAMPLES
    for path in EXAMPLES:
        comfy.load_workflow(path)
        expected = {node["id"]: node["type"] for node in json.loads(path.read_text())["nodes"]}
        loaded = comfy.node_types()
        assert {i: n["type"] for i, n in loaded.items()} == expected, path.name
        missing = sorted({n["type"] for n in loaded.values() if not n["registered"]})
        assert not missing, f"{path.name}: missing node types {missing}"
        vue_nodes = comfy.evaluate("() => document.querySelectorAll('[data-node-id]').length")
        assert vue_nodes == (len(expected) if comfy.vue_nodes else 0), path.name


@pytest.mark.parametrize("vue_nodes", [False])
def test_example_workflow_queued_from_the_frontend_runs(comfy):
    """The frontend's own serialisation of a UI workflow (widgets, control_after_generate) is a valid prompt."""
    path = next(p for p in EXAMPLES if p.name == "fig10_similarity_maps.json")
    comfy.load_workflow(path)
    seeded = [n["id"] for n in json.loads(path.read_text())["nodes"] if n["type"] in ("EncodeReferenceContext",
              "InContextSimilarity")]  # fmt: skip
    for node_id in seeded:  # keep CPU runs short
        comfy.set_widget(node_id, "ensemble_size", 1)
        assert comfy.widget_values(node_id)["ensemble_size"] == 1
    result = comfy.queue_and_wait()
    assert result["status"]["status_str"] == "success", json.dumps(result["status"])[:3000]
    prompt = result["prompt"][2]
    assert all(prompt[str(node_id)]["inputs"]["ensemble_size"] == 1 for node_id in seeded)
    previews = [item for output in result["outputs"].values() for item in output.get("images", [])]
    assert len(previews) == 3 and all(comfy.server.output_file(item).is_file() for item in previews)
