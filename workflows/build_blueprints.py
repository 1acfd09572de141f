"""Writes the pack's subgraph blueprints: ``subgraphs/*.json``, one node each in ComfyUI's node library.

    python workflows/build_blueprints.py   # rewrites subgraphs/*.json

ComfyUI 0.33 lists ``custom_nodes/<pack>/subgraphs/*.json`` at ``/global_subgraphs`` (app/subgraph_manager.py); its
frontend registers each as the node type ``SubgraphBlueprint.<file name>`` in the library's category
``Subgraph Blueprints/<category>``. ComfyUI 0.3.64 has no such route and never reads the folder.

A blueprint file is a workflow whose root graph holds a single node; that node's type is the id of the one subgraph in
``definitions.subgraphs``, which holds the inner nodes, the links between them and from its input node (id -10) and to
its output node (id -20). The inner nodes are described with build_workflows.py's socket and widget tables, so their
slots and widget values are those of the example workflows; tests/test_blueprints.py checks the result.
"""

from __future__ import annotations

import json
import uuid
from dataclasses import dataclass
from pathlib import Path

from build_workflows import (
    HEAD_WIDGETS,
    ICM_CHECKPOINT,
    INPUTS,
    OUTPUTS,
    PACK_ROOT,
    Node,
    _widgets_values,
)

FOLDER = PACK_ROOT / "subgraphs"
CATEGORY = "IconMatting"
INPUT_NODE, OUTPUT_NODE = -10, -20
"""The ids a subgraph's input and output nodes have in its links."""
NAMESPACE = uuid.UUID("6f1c7d0e-7c4b-4f0a-9a55-1c0a1c0a1c0a")
"""Subgraph and slot ids are UUIDs derived from names, so the files are the same on every run."""
SD_SOCKETS = [("model", "MODEL"), ("clip", "CLIP"), ("vae", "VAE")]
"""The SD2.1 768-v checkpoint's MODEL, CLIP and VAE (CheckpointLoaderSimple) every blueprint takes."""


@dataclass
class Blueprint:
    name: str
    """The file name without .json: the node's name in the library."""
    description: str
    inputs: list[tuple[str, str, list[tuple[int, str]]]]
    """(name, type, [(inner node, input name), ...]) per socket of the subgraph node."""
    outputs: list[tuple[str, str, int, str]]
    """(name, type, inner node, output name) per socket of the subgraph node."""
    nodes: list[Node]
    links: list[tuple[int, str, int, str]]
    """Links between inner nodes: (source node, output name, target node, input name)."""
    proxied: list[tuple[int, str]]
    """(inner node, widget name): the widgets shown on the subgraph node itself."""
    aliases: list[str]


def _slot(types: dict, node: Node, name: str) -> int:
    return [n for n, _ in types[node.type]].index(name)


def _kind(types: dict, node: Node, name: str) -> str:
    return dict(types[node.type])[name]


def _uuid(*parts: str) -> str:
    return str(uuid.uuid5(NAMESPACE, "/".join(parts)))


def subgraph_file(blueprint: Blueprint) -> dict:
    """The blueprint as the frontend's "Publish subgraph" saves it."""
    by_id = {node.id: node for node in blueprint.nodes}
    rows = []  # (link id, origin, origin slot, target, target slot, type)
    for source, output, target, name in blueprint.links:
        kind = _kind(OUTPUTS, by_id[source], output)
        rows.append((source, _slot(OUTPUTS, by_id[source], output), target, _slot(INPUTS, by_id[target], name), kind))
    input_links = []
    for slot, (_, kind, targets) in enumerate(blueprint.inputs):
        input_links.append([])
        for target, name in targets:
            input_links[-1].append(len(rows) + 1)
            rows.append((INPUT_NODE, slot, target, _slot(INPUTS, by_id[target], name), kind))
    output_links = []
    for slot, (_, kind, source, output) in enumerate(blueprint.outputs):
        output_links.append(len(rows) + 1)
        rows.append((source, _slot(OUTPUTS, by_id[source], output), OUTPUT_NODE, slot, kind))
    links = [
        {"id": i, "origin_id": o, "origin_slot": os, "target_id": t, "target_slot": ts, "type": k}
        for i, (o, os, t, ts, k) in enumerate(rows, start=1)
    ]
    into = {(row["target_id"], row["target_slot"]): row["id"] for row in links}
    out_of: dict[tuple[int, int], list[int]] = {}
    for row in links:
        out_of.setdefault((row["origin_id"], row["origin_slot"]), []).append(row["id"])
    nodes = []
    for order, node in enumerate(blueprint.nodes):
        nodes.append({
            "id": node.id,
            "type": node.type,
            "pos": [300 + 460 * node.column, 100 + 320 * node.row],
            "size": [420, 260],
            "flags": {},
            "order": order,
            "mode": 0,
            "inputs": [
                {"localized_name": n, "name": n, "type": t, "link": into.get((node.id, i))}
                for i, (n, t) in enumerate(INPUTS.get(node.type, []))
            ],
            "outputs": [
                {"localized_name": n, "name": n, "type": t, "links": out_of.get((node.id, i), [])}
                for i, (n, t) in enumerate(OUTPUTS[node.type])
            ],
            "properties": {"Node name for S&R": node.type},
            "widgets_values": _widgets_values(node),
        })  # fmt: skip
    graph_id, root_id = _uuid(blueprint.name), max(by_id) + 1
    right = 300 + 460 * (max(node.column for node in blueprint.nodes) + 1)
    subgraph = {
        "id": graph_id,
        "version": 1,
        "state": {"lastGroupId": 0, "lastNodeId": max(by_id), "lastLinkId": len(links), "lastRerouteId": 0},
        "revision": 0,
        "config": {},
        "name": blueprint.name,
        "inputNode": {"id": INPUT_NODE, "bounding": [60, 100, 160, 40 + 20 * len(blueprint.inputs)]},
        "outputNode": {"id": OUTPUT_NODE, "bounding": [right, 100, 160, 40 + 20 * len(blueprint.outputs)]},
        "inputs": [
            {"id": _uuid(blueprint.name, "in", name), "name": name, "type": kind, "linkIds": ids,
             "localized_name": name, "pos": [200, 120 + 20 * slot]}
            for slot, ((name, kind, _), ids) in enumerate(zip(blueprint.inputs, input_links, strict=True))
        ],  # fmt: skip
        "outputs": [
            {"id": _uuid(blueprint.name, "out", name), "name": name, "type": kind, "linkIds": [link_id],
             "localized_name": name, "pos": [right + 20, 120 + 20 * slot]}
            for slot, ((name, kind, _, _), link_id) in enumerate(zip(blueprint.outputs, output_links, strict=True))
        ],  # fmt: skip
        "widgets": [],
        "nodes": nodes,
        "groups": [],
        "links": links,
        "extra": {},
        "category": CATEGORY,
        "description": blueprint.description,
    }
    root = {
        "id": root_id,
        "type": graph_id,
        "pos": [0, 0],
        "size": [320, 60 + 22 * max(len(blueprint.inputs), len(blueprint.outputs))],
        "flags": {},
        "order": 0,
        "mode": 0,
        "inputs": [
            {"localized_name": n, "name": n, "type": t, "link": None} for n, t, _ in blueprint.inputs
        ],  # fmt: skip
        "outputs": [{"localized_name": n, "name": n, "type": t, "links": []} for n, t, _, _ in blueprint.outputs],
        "title": blueprint.name,
        "properties": {"proxyWidgets": [[str(node), widget] for node, widget in blueprint.proxied]},
        "widgets_values": [],
    }
    return {
        "revision": 0,
        "last_node_id": root_id,
        "last_link_id": 0,
        "nodes": [root],
        "links": [],
        "version": 0.4,
        "definitions": {"subgraphs": [subgraph]},
        "extra": {"BlueprintSearchAliases": blueprint.aliases},
    }


def _model(node_id: int) -> Node:
    return Node(node_id, "LoadIconMattingModel", {"model_name": ICM_CHECKPOINT}, 0, 1)


def matte_like_the_reference() -> Blueprint:
    encode = {"prompt_type": "mask", "timestep": 200, "ensemble_size": 4, "seed": 0}
    nodes = [
        _model(1),
        Node(2, "EncodeReferenceContext", encode, 1, 0),
        Node(3, "InContextSimilarity", {"ensemble_size": 4, "seed": 0}, 2, 0),
        Node(4, "MattingHead", HEAD_WIDGETS, 3, 0),
    ]  # fmt: skip
    return Blueprint(
        "Matte like the marked reference (IconMatting)",
        "Soft alpha mattes of the object marked on one reference image, in every target image: SD2.1 768-v's MODEL, "
        "CLIP and VAE, the reference image and its mask (white = the object; a Reference Prompt's reference_mask for "
        "points, scribbles or boxes) and a batch of targets in; alpha and RGBA cut-outs out.",
        inputs=[
            *[(name, kind, [(2, name)]) for name, kind in SD_SOCKETS],
            ("reference_image", "IMAGE", [(2, "reference_image")]),
            ("reference_mask", "MASK", [(2, "reference_mask")]),
            ("target_image", "IMAGE", [(3, "target_image"), (4, "target_image")]),
        ],
        outputs=[("alpha", "MASK", 4, "alpha"), ("rgba", "IMAGE", 4, "rgba")],
        nodes=nodes,
        links=[
            (1, "iconmatting_model", 2, "iconmatting_model"),
            (2, "reference", 3, "reference"),
            (1, "iconmatting_model", 4, "iconmatting_model"),
            (3, "guidance", 4, "guidance"),
        ],
        proxied=[(1, "model_name")],
        aliases=["matting", "alpha matte", "cut out", "remove background", "in-context matting"],
    )


def matte_a_video() -> Blueprint:
    widgets = {"reference_frame": 0, "prompt_type": "mask", "chunk_size": 4, "timestep": 200, "ensemble_size": 4}
    nodes = [
        _model(1),
        Node(2, "VideoInContextMatte", {**widgets, "seed": 0, "temporal_stability": 0.5}, 1, 0),
        Node(3, "IconMattingApplyAlpha", {"foreground_method": "multilevel"}, 2, 0),
    ]
    return Blueprint(
        "Matte a video from one marked frame (IconMatting)",
        "Soft alpha mattes of the object marked on one frame, in every frame of a video: SD2.1 768-v's MODEL, CLIP "
        "and VAE, the frames (an IMAGE batch, e.g. Get Video Components' images) and the mask of the reference frame "
        "in; alpha, the estimated foreground and RGBA frames out.",
        inputs=[
            *[(name, kind, [(2, name)]) for name, kind in SD_SOCKETS],
            ("frames", "IMAGE", [(2, "frames"), (3, "image")]),
            ("reference_mask", "MASK", [(2, "reference_mask")]),
        ],
        outputs=[("alpha", "MASK", 2, "alpha"), ("foreground", "IMAGE", 3, "foreground"), ("rgba", "IMAGE", 3, "rgba")],
        nodes=nodes,
        links=[(1, "iconmatting_model", 2, "iconmatting_model"), (2, "alpha", 3, "alpha")],
        proxied=[(1, "model_name"), (2, "reference_frame")],
        aliases=["video matting", "rotoscope", "alpha matte", "remove background"],
    )


BLUEPRINTS = [matte_like_the_reference, matte_a_video]


def render(blueprint: Blueprint) -> tuple[Path, str]:
    return FOLDER / f"{blueprint.name}.json", json.dumps(subgraph_file(blueprint), indent=1) + "\n"


def main() -> None:
    FOLDER.mkdir(exist_ok=True)
    for build in BLUEPRINTS:
        path, text = render(build())
        path.write_text(text)
        print(path.relative_to(PACK_ROOT))


if __name__ == "__main__":
    main()
