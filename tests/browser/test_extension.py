"""The pack's frontend extension in both frontends and both render modes; the example workflows load."""

from __future__ import annotations

import json
from pathlib import Path

from comfy_server import PACK_FOLDER

EXAMPLES = sorted((Path(__file__).resolve().parents[2] / "example_workflows").glob("*.json"))


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
