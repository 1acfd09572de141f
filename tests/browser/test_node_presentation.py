"""How the pack's nodes present themselves in both frontends, Nodes 2.0 off and on (web/js/iconmatting.js).

The run report shows under the node (also after a workflow tab is re-opened) and is never saved; seeds of new nodes
start "fixed" while loaded workflows keep theirs; new nodes fit their title; no two nodes of an example workflow
overlap, even after a run (image previews, run reports).
"""

from __future__ import annotations

import json
from pathlib import Path

EXAMPLES = sorted((Path(__file__).resolve().parents[2] / "example_workflows").glob("*.json"))
FIG10 = next(path for path in EXAMPLES if path.name.startswith("fig10_"))
REPORT = "1 reference(s), 143 query tokens (143); timestep 200; canvas 768px"
REPORT_WIDGET = "iconmatting_report"
GAP = 10  # canvas pixels that must stay free between two nodes

REPORTS = """() => Object.fromEntries(window.app.graph.nodes
    .map((n) => [n.id, n.widgets?.find((w) => w.name === "iconmatting_report")])
    .filter(([, w]) => w).map(([id, w]) => [id, w.value]))"""
OURS = """() => window.app.graph.nodes
    .filter((n) => n.constructor.nodeData?.python_module?.startsWith("custom_nodes.")
        && n.constructor.nodeData.category?.startsWith("IconMatting")).map((n) => String(n.id))"""
BOXES = """async (vue) => {
  // Node id -> [x, y, width, height] in canvas pixels, title included. Nodes 2.0 boxes are the nodes' elements,
  // each measured on screen at zoom 1 (off-screen Vue nodes are not laid out).
  const canvas = window.app.canvas, ds = canvas.ds, rect = canvas.canvas.getBoundingClientRect();
  const frame = () => new Promise((resolve) => requestAnimationFrame(() => setTimeout(resolve, 50)));
  const boxes = {};
  for (const node of window.app.graph.nodes) {
    if (!vue) { boxes[node.id] = [...node.getBounding()]; continue; }
    ds.scale = 1;
    ds.offset[0] = 100 - node.pos[0];
    ds.offset[1] = 150 - node.pos[1];
    canvas.setDirty(true, true);
    await frame();
    await frame();
    const b = document.querySelector(`[data-node-id="${node.id}"]`).getBoundingClientRect();
    boxes[node.id] = [b.left - rect.left - ds.offset[0], b.top - rect.top - ds.offset[1], b.width, b.height];
  }
  return boxes;
}"""


def _run_outputs(comfy, node_ids) -> dict[str, dict]:
    """What a run hands the frontend: a report from each given node, previews on the image and video outputs."""
    kinds = comfy.evaluate("() => Object.fromEntries(window.app.graph.nodes.map((n) => [n.id, n.type]))")
    outputs = {node: {"text": [REPORT]} for node in node_ids}
    for node, kind in kinds.items():
        if kind in ("SaveImage", "PreviewImage"):
            outputs[node] = {"images": [{"filename": "icm_target_photo.png", "subfolder": "", "type": "input"}]}
        elif kind == "SaveVideo":
            outputs[node] = {"images": [{"filename": "icm_video.mp4", "subfolder": "", "type": "input"}]}
            outputs[node]["animated"] = [True]
    return outputs


def _saved_widget_values(comfy) -> dict[str, list]:
    return {str(n["id"]): n.get("widgets_values") for n in comfy.evaluate("() => window.app.graph.serialize().nodes")}


def test_run_report_shows_is_not_saved_and_survives_a_tab_switch(comfy):
    comfy.load_workflow(FIG10)
    saved = _saved_widget_values(comfy)
    encode = next(n["id"] for n in json.loads(FIG10.read_text())["nodes"] if n["type"] == "EncodeReferenceContext")
    comfy.show_outputs({str(encode): {"text": [REPORT]}})
    assert comfy.evaluate(REPORTS) == {str(encode): REPORT}
    if not comfy.nodes2_preview:  # 1.27's Nodes 2.0 preview draws no added widgets
        report = comfy.page.get_by_text(REPORT, exact=True)
        assert report.count() == 1 and report.first.is_visible()
    assert _saved_widget_values(comfy) == saved  # the workflow, as saved, is unchanged
    prompt = comfy.evaluate("async () => (await window.app.graphToPrompt()).output")
    assert REPORT_WIDGET not in prompt[str(encode)]["inputs"]

    # A real run: the frontend keeps a workflow's outputs only for prompts it queued itself (1.27 drops others).
    for node_id in comfy.node_types():
        if "ensemble_size" in comfy.widget_values(node_id):
            comfy.set_widget(node_id, "ensemble_size", 1)  # one noise sample keeps the CPU run short
    assert comfy.queue_and_wait()["status"]["status_str"] == "success"
    reports = comfy.evaluate(REPORTS)
    assert "query tokens" in reports[str(encode)]
    name = comfy.evaluate("() => window.app.extensionManager.workflow.activeWorkflow.filename")
    comfy.run_command("Comfy.NewBlankWorkflow")
    assert comfy.evaluate(REPORTS) == {}
    comfy.page.get_by_text(name, exact=True).first.click()  # back to the first tab: its nodes are re-created
    comfy.page.wait_for_function(f"() => window.app.extensionManager.workflow.activeWorkflow.filename === {name!r}")
    comfy.page.wait_for_timeout(500)
    assert comfy.evaluate(REPORTS) == reports


def _add_new_node(comfy, node_type: str) -> dict:
    """Adds a node as the node search box and the node library do (``LiteGraph.createNode`` + ``graph.add``, so the
    extensions' ``nodeCreated`` runs and no saved values follow): its type, title, title room and seed controls.

    The node gets a fresh id, as there: frontend 1.49 keeps widget values by node id, so a node added with the id of
    one removed before (after ``graph.clear()``) would take over that node's values."""
    node_id = comfy.evaluate(
        """(type) => { const node = LiteGraph.createNode(type); node.pos = [200, 200];
            window.app.graph.add(node); window.app.canvas.setDirty(true, true); return node.id; }""",
        node_type,
    )
    if comfy.vue_nodes:
        comfy.page.wait_for_selector(f'[data-node-id="{node_id}"]', timeout=10_000)
    comfy.page.wait_for_timeout(500)
    return comfy.evaluate(
        """(id) => { const node = window.app.graph.getNodeById(id);
            const font = `${LiteGraph.NODE_TEXT_SIZE}px ${LiteGraph.NODE_FONT}`;
            const ctx = document.createElement("canvas").getContext("2d");
            ctx.font = font;
            const room = node.size[0] - 2 * LiteGraph.NODE_TITLE_HEIGHT - ctx.measureText(node.title).width;
            const title = document.querySelector(`[data-node-id="${id}"] [data-testid=node-title] .truncate`)
                ?? document.querySelector(`[data-node-id="${id}"] [data-testid=node-title]`);
            return {type: node.type, title: node.title,
                    canvas_title_room: room,
                    vue_title_clipped: title ? title.scrollWidth > title.clientWidth : null,
                    controls: node.widgets.filter((w) => w.name === "control_after_generate")
                        .map((w) => w.value)}; }""",
        node_id,
    )


def test_new_nodes_start_with_fixed_seeds_and_fit_their_title(comfy):
    for node_type, display_name, controls in [
        ("EncodeReferenceContext", "Encode Reference Context (IconMatting)", ["fixed"]),
        ("InContextSimilarity", "In-Context Similarity (IconMatting)", ["fixed"]),
        ("MattingHead", "Matting Head (IconMatting)", []),
        ("VideoInContextMatte", "Video In-Context Matte (IconMatting)", ["fixed"]),
    ]:
        node = _add_new_node(comfy, node_type)
        assert node["title"] == display_name and node["controls"] == controls, node
        if comfy.vue_nodes and not comfy.nodes2_preview:  # 1.27's Nodes 2.0 preview has no title element
            assert node["vue_title_clipped"] is False, node
        else:
            assert node["canvas_title_room"] >= 0, node
    assert _add_new_node(comfy, "KSampler")["controls"] == ["randomize"]  # core nodes: untouched


def test_loaded_workflows_keep_their_saved_seed_control(comfy):
    graph = json.loads(FIG10.read_text())
    for node in graph["nodes"]:
        if node["type"] == "EncodeReferenceContext":
            node["widgets_values"][4] = "randomize"
        if node["type"] == "InContextSimilarity":
            node["widgets_values"][2] = "increment"
    comfy.load_workflow(graph)
    values = _saved_widget_values(comfy)
    for node in graph["nodes"]:
        if node["type"] in ("EncodeReferenceContext", "InContextSimilarity"):
            assert values[str(node["id"])] == node["widgets_values"]


def _overlapping(boxes: dict[str, list]) -> list[tuple[str, str]]:
    ids = sorted(boxes, key=int)
    pairs = []
    for i, a in enumerate(ids):
        ax, ay, aw, ah = boxes[a]
        for b in ids[i + 1 :]:
            bx, by, bw, bh = boxes[b]
            if ax < bx + bw + GAP and bx < ax + aw + GAP and ay < by + bh + GAP and by < ay + ah + GAP:
                pairs.append((a, b))
    return pairs


def test_example_workflow_nodes_do_not_overlap_after_a_run(comfy):
    for path in EXAMPLES:
        comfy.load_workflow(path)
        comfy.show_outputs(_run_outputs(comfy, comfy.evaluate(OURS)))  # every node of ours reports
        comfy.page.wait_for_timeout(1000)
        boxes = comfy.evaluate(BOXES, comfy.vue_nodes)
        assert len(boxes) == len(json.loads(path.read_text())["nodes"])
        assert all(w > 0 and h > 0 for _, _, w, h in boxes.values()), (path.name, boxes)
        assert not _overlapping(boxes), (path.name, _overlapping(boxes), boxes)
