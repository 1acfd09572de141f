"""Subgraph blueprints in ComfyUI 0.33.0's frontend: one placed from the node library (the search box, as a user adds
it) and run; the run report of a pack node inside the subgraph. 0.3.64 has no blueprints (its test is in
tests/test_comfyui_integration.py: the folder is ignored without a log line)."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from comfy_server import COMFYUI_VERSIONS

BLUEPRINT = "Matte like the marked reference (IconMatting)"
INNER_TYPES = sorted(
    node["type"]
    for node in json.loads((Path(__file__).resolve().parents[2] / "subgraphs" / f"{BLUEPRINT}.json").read_text())[
        "definitions"
    ]["subgraphs"][0]["nodes"]
)
NEWER = [v for v in COMFYUI_VERSIONS if v.name != "0.3.64"]

# The models and photos around the placed blueprint, its ensembles cut to 1 sample (CPU), and SaveImage on its RGBA.
WIRE = """([title]) => {
  const graph = window.app.graph;
  const placed = graph.nodes.find((n) => n.subgraph && n.title === title);
  if (!placed) throw new Error("the blueprint was not placed");
  const add = (type, values = {}) => {
    const node = LiteGraph.createNode(type);
    graph.add(node);
    for (const [name, value] of Object.entries(values)) node.widgets.find((w) => w.name === name).value = value;
    return node;
  };
  const sd = add("CheckpointLoaderSimple", {ckpt_name: "v2-1_768-ema-pruned.safetensors"});
  const reference = add("LoadImage", {image: "iconmatting_chelsea.jpg"});
  const mask = add("LoadImageMask", {image: "iconmatting_chelsea_mask.png", channel: "red"});
  const target = add("LoadImage", {image: "iconmatting_chelsea_mirrored.jpg"});
  const save = add("SaveImage", {filename_prefix: "iconmatting/blueprint"});
  const input = (name) => placed.inputs.findIndex((i) => i.name === name);
  sd.connect(0, placed, input("model"));
  sd.connect(1, placed, input("clip"));
  sd.connect(2, placed, input("vae"));
  reference.connect(0, placed, input("reference_image"));
  mask.connect(0, placed, input("reference_mask"));
  target.connect(0, placed, input("target_image"));
  placed.connect(placed.outputs.findIndex((o) => o.name === "rgba"), save, 0);
  for (const inner of placed.subgraph.nodes) {
    const ensemble = inner.widgets?.find((w) => w.name === "ensemble_size");
    if (ensemble) ensemble.value = 1;
  }
  return placed.id;
}"""


def place_from_search_box(comfy, name: str) -> None:
    """Double-click the empty canvas, type the blueprint's name, take the first match (Enter): the search box lists
    the node library's definitions (blueprints under "Subgraph Blueprints / IconMatting") and adds the node as the
    library does (a subgraph node with the blueprint's inner nodes, under a fresh subgraph id)."""
    page = comfy.page
    page.locator("#graph-canvas").dblclick(position={"x": 700, "y": 500})
    page.wait_for_function("() => document.activeElement?.getAttribute('role') === 'combobox'", timeout=20_000)
    page.keyboard.type(name.split(" (")[0])  # the words; the search does not match on the "(IconMatting)" suffix
    page.wait_for_function(
        """(name) => [...document.querySelectorAll("li, [role=option]")].some((e) =>
            e.textContent.includes(name) && e.textContent.includes("Subgraph Blueprints"))""",
        arg=name,
        timeout=20_000,
    )
    page.keyboard.press("Enter")
    page.wait_for_function(
        "(name) => window.app.graph.nodes.some((n) => n.subgraph && n.title === name)", arg=name, timeout=20_000
    )


@pytest.mark.parametrize("comfy_version", NEWER, ids=str)
@pytest.mark.parametrize("vue_nodes", [False])
@pytest.mark.parametrize("frontend", ["pinned"])
def test_blueprint_from_the_node_library_runs_and_reports_inside(comfy):
    comfy.load_workflow({"nodes": [], "links": [], "version": 0.4, "last_node_id": 0, "last_link_id": 0})
    place_from_search_box(comfy, BLUEPRINT)
    placed = comfy.evaluate(WIRE, [BLUEPRINT])
    result = comfy.queue_and_wait()
    assert result["status"]["status_str"] == "success", json.dumps(result["status"])[:3000]
    prompt = result["prompt"][2]
    inner = {key: node["class_type"] for key, node in prompt.items() if key.startswith(f"{placed}:")}
    assert sorted(inner.values()) == INNER_TYPES
    saved = [item for output in result["outputs"].values() for item in output.get("images", [])]
    assert saved and all(comfy.server.output_file(item).is_file() for item in saved)
    # The run report of Encode Reference Context, a node inside the subgraph ("<placed>:<inner>" in ComfyUI's messages)
    encode = next(key for key, kind in inner.items() if kind == "EncodeReferenceContext")
    expected = result["outputs"][encode]["text"][0]
    report = comfy.evaluate(
        """([placed, inner]) => window.app.graph.getNodeById(placed).subgraph.getNodeById(inner)
            .widgets?.find((w) => w.name === "iconmatting_report")?.value ?? null""",
        [placed, int(encode.split(":")[1])],
    )
    assert report == expected and "query tokens" in report, (report, expected)
