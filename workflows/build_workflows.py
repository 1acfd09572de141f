"""Writes the example workflows, each as a UI-format graph (drag and drop into ComfyUI) and its API-format twin.

    python workflows/build_workflows.py   # rewrites example_workflows/*.json (UI) and workflows/api/*.json (API)

The UI graphs go to ``example_workflows/``, the folder ComfyUI's template browser lists for a custom node pack (each
with a ``.jpg`` thumbnail beside it: tests/browser/make_pictures.py); the API twins, for ``/prompt``, go to
``workflows/api/``, which the template browser does not list.

One description per workflow (nodes, widget values, links) produces both files, so the twins cannot drift apart;
tests/test_workflows.py checks that the committed files are what this script writes.
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from pathlib import Path

PACK_ROOT = Path(__file__).resolve().parents[1]
UI_FOLDER, API_FOLDER = PACK_ROOT / "example_workflows", PACK_ROOT / "workflows" / "api"
SD_CHECKPOINT = "v2-1_768-ema-pruned.safetensors"
ICM_CHECKPOINT = "iconmatting.safetensors"
EXAMPLE = "iconmatting_"
"""The pack copies example_inputs/<file> to ComfyUI's input/iconmatting_<file> (nodes/example_inputs.py)."""
PHOTO_SIZE = (451, 300)
"""chelsea.jpg, the reference photo the marks are drawn on."""
SEEDED = {"EncodeReferenceContext", "InContextSimilarity", "VideoInContextMatte", "IconMattingFineTune"}
"""Node types with an INT named ``seed``: the frontend stores a control_after_generate value after it."""

# Output sockets of every node type the workflows use: (name, type).
OUTPUTS = {
    "CheckpointLoaderSimple": [("MODEL", "MODEL"), ("CLIP", "CLIP"), ("VAE", "VAE")],
    "LoadImage": [("IMAGE", "IMAGE"), ("MASK", "MASK")],
    "LoadImageMask": [("MASK", "MASK")],
    "LoadVideo": [("VIDEO", "VIDEO")],
    "GetVideoComponents": [("images", "IMAGE"), ("audio", "AUDIO"), ("fps", "FLOAT")],
    "CreateVideo": [("VIDEO", "VIDEO")],
    "MaskToImage": [("IMAGE", "IMAGE")],
    "ImageBatch": [("IMAGE", "IMAGE")],
    "SaveImage": [],
    "PreviewImage": [],
    "SaveVideo": [],
    "LoadIconMattingModel": [("iconmatting_model", "ICON_MATTING_MODEL")],
    "EncodeReferenceContext": [("reference", "ICON_MATTING_REFERENCE")],
    "InContextSimilarity": [
        ("guidance", "ICON_MATTING_GUIDANCE"),
        ("inter_similarity", "IMAGE"),
        ("intra_similarity", "IMAGE"),
    ],
    "MattingHead": [("alpha", "MASK"), ("foreground", "IMAGE"), ("rgba", "IMAGE")],
    "VideoInContextMatte": [("alpha", "MASK")],
    "IconMattingVideoBatchManager": [
        ("batch", "ICON_MATTING_VIDEO_BATCH"),
        ("frames", "IMAGE"),
        ("start_frame", "INT"),
        ("frame_count", "INT"),
    ],
    "InvertMask": [("MASK", "MASK")],
    "EmptyImage": [("IMAGE", "IMAGE")],
    "ImageCompositeMasked": [("IMAGE", "IMAGE")],
    "IconMattingBoxToMask": [("reference_mask", "MASK")],
    "IconMattingPointsToMask": [("reference_mask", "MASK")],
    "IconMattingApplyAlpha": [("foreground", "IMAGE"), ("rgba", "IMAGE")],
    "IconMattingComposite": [("image", "IMAGE")],
    "IconMattingReferencePrompt": [
        ("reference_prompt", "ICON_MATTING_PROMPT"),
        ("positive_points", "STRING"),
        ("negative_points", "STRING"),
        ("reference_mask", "MASK"),
    ],
    "IconMattingCorrection": [("reference", "ICON_MATTING_REFERENCE")],
    "IconMattingFineTune": [("iconmatting_model", "ICON_MATTING_MODEL"), ("reference", "ICON_MATTING_REFERENCE")],
}
# Linked (non-widget) inputs of every node type, in slot order: (name, type).
INPUTS = {
    "SaveImage": [("images", "IMAGE")],
    "PreviewImage": [("images", "IMAGE")],
    "MaskToImage": [("mask", "MASK")],
    "ImageBatch": [("image1", "IMAGE"), ("image2", "IMAGE")],
    "GetVideoComponents": [("video", "VIDEO")],
    "CreateVideo": [("images", "IMAGE"), ("audio", "AUDIO")],
    "SaveVideo": [("video", "VIDEO")],
    "EncodeReferenceContext": [
        ("iconmatting_model", "ICON_MATTING_MODEL"),
        ("model", "MODEL"),
        ("vae", "VAE"),
        ("reference_image", "IMAGE"),
        ("reference_mask", "MASK"),
        ("clip", "CLIP"),
        ("empty_conditioning", "CONDITIONING"),
        ("reference_prompt", "ICON_MATTING_PROMPT"),
    ],
    "InContextSimilarity": [("reference", "ICON_MATTING_REFERENCE"), ("target_image", "IMAGE")],
    "MattingHead": [
        ("iconmatting_model", "ICON_MATTING_MODEL"),
        ("guidance", "ICON_MATTING_GUIDANCE"),
        ("target_image", "IMAGE"),
    ],
    "VideoInContextMatte": [
        ("iconmatting_model", "ICON_MATTING_MODEL"),
        ("model", "MODEL"),
        ("vae", "VAE"),
        ("frames", "IMAGE"),
        ("reference_mask", "MASK"),
        ("clip", "CLIP"),
        ("empty_conditioning", "CONDITIONING"),
        ("reference_image", "IMAGE"),
        ("batch", "ICON_MATTING_VIDEO_BATCH"),
    ],
    "IconMattingVideoBatchManager": [("frames", "IMAGE")],
    "InvertMask": [("mask", "MASK")],
    "ImageCompositeMasked": [("destination", "IMAGE"), ("source", "IMAGE"), ("mask", "MASK")],
    "IconMattingBoxToMask": [("reference_image", "IMAGE")],
    "IconMattingPointsToMask": [("reference_image", "IMAGE")],
    "IconMattingApplyAlpha": [("image", "IMAGE"), ("alpha", "MASK")],
    "IconMattingComposite": [("foreground", "IMAGE"), ("alpha", "MASK"), ("background", "IMAGE")],
    "IconMattingReferencePrompt": [
        ("reference_image", "IMAGE"),
        ("mask", "MASK"),
        ("positive_points", "STRING"),
        ("negative_points", "STRING"),
    ],
    "IconMattingCorrection": [
        ("reference", "ICON_MATTING_REFERENCE"),
        ("target_image", "IMAGE"),
        ("previous_alpha", "MASK"),
    ],
    "IconMattingFineTune": [
        ("reference", "ICON_MATTING_REFERENCE"),
        ("target_image", "IMAGE"),
        ("target_alpha", "MASK"),
    ],
}
# Widget names of every node type, in widgets_values order (API format names them).
WIDGETS = {
    "CheckpointLoaderSimple": ["ckpt_name"],
    "LoadImage": ["image"],
    "LoadImageMask": ["image", "channel"],
    "LoadVideo": ["file"],
    "CreateVideo": ["fps"],
    "SaveImage": ["filename_prefix"],
    "SaveVideo": ["filename_prefix", "format", "codec"],
    "LoadIconMattingModel": ["model_name"],
    "EncodeReferenceContext": ["prompt_type", "timestep", "ensemble_size", "seed"],
    "InContextSimilarity": ["ensemble_size", "seed"],
    "MattingHead": ["foreground_method", "upsampling"],
    "IconMattingApplyAlpha": ["foreground_method"],
    "IconMattingComposite": ["foreground_alpha", "background_fit", "background_color"],
    "VideoInContextMatte": [
        "reference_frame",
        "prompt_type",
        "chunk_size",
        "timestep",
        "ensemble_size",
        "seed",
        "temporal_stability",
    ],
    "IconMattingVideoBatchManager": ["frames_per_batch", "total_frames"],
    "EmptyImage": ["width", "height", "batch_size", "color"],
    "ImageCompositeMasked": ["x", "y", "resize_source"],
    "IconMattingBoxToMask": ["x", "y", "width", "height"],
    "IconMattingPointsToMask": ["positive_points", "radius", "negative_points"],
    "IconMattingReferencePrompt": ["marks", "extension_top_m"],
    "IconMattingCorrection": ["target_index", "marks"],
    "IconMattingFineTune": ["steps", "learning_rate", "recipe", "seed", "save_name"],
}
HEAD_WIDGETS = {"foreground_method": "multilevel", "upsampling": "guided"}
UPLOAD_WIDGETS = {"LoadImage", "LoadImageMask", "LoadVideo"}
NODE_WIDTH, TITLE_HEIGHT, GAP = 430, 30, 50
"""Layout, in canvas pixels: every node is as wide as the Nodes 2.0 renderer of frontend 1.27 draws any node."""
BODY_HEIGHTS = {
    "CheckpointLoaderSimple": 200,
    "LoadIconMattingModel": 140,
    "LoadImage": 620,
    "LoadImageMask": 630,
    "LoadVideo": 590,
    "EncodeReferenceContext": 490,
    "InContextSimilarity": 270,
    "MattingHead": 150,
    "VideoInContextMatte": 570,
    "IconMattingBoxToMask": 250,
    "IconMattingPointsToMask": 290,
    "IconMattingApplyAlpha": 130,
    "GetVideoComponents": 150,
    "MaskToImage": 100,
    "CreateVideo": 170,
    "SaveImage": 530,
    "PreviewImage": 490,
    "SaveVideo": 610,
}
"""Node type -> height below the title: the most the node takes in either frontend, with Nodes 2.0 on or off, after a
run (image previews, run reports). Measured in the browser; tests/browser/test_layout.py checks that no nodes
overlap."""
DEFAULT_BODY_HEIGHT = 300
"""Node types whose upload button stores a trailing "image" entry in widgets_values."""


@dataclass
class Node:
    id: int
    type: str
    widgets: dict = field(default_factory=dict)
    column: int = 0
    row: int = 0
    title: str | None = None


@dataclass
class Workflow:
    name: str
    title: str
    nodes: list[Node]
    links: list[tuple[int, str, int, str]]
    """(source node, output name, target node, input name)."""


def _widgets_values(node: Node) -> list:
    values = []
    for name in WIDGETS.get(node.type, []):
        values.append(node.widgets[name])
        if name == "seed" and node.type in SEEDED:
            values.append("fixed")
    if node.type in UPLOAD_WIDGETS:
        values.append("image")
    return values


def _body_height(node: Node) -> int:
    return BODY_HEIGHTS.get(node.type, DEFAULT_BODY_HEIGHT)


def _row_tops(nodes: list[Node]) -> dict[int, int]:
    """Row -> y of its nodes: each row starts below the tallest node of the row above."""
    tops, y = {}, 40
    for row in range(max(node.row for node in nodes) + 1):
        tops[row] = y
        y += max((_body_height(n) for n in nodes if n.row == row), default=0) + TITLE_HEIGHT + GAP
    return tops


def ui_format(workflow: Workflow) -> dict:
    """The LiteGraph graph the ComfyUI frontend saves and loads."""
    by_id = {node.id: node for node in workflow.nodes}
    link_rows, inputs, outputs = [], {}, {}
    for link_id, (source, output, target, name) in enumerate(workflow.links, start=1):
        out_slot = [n for n, _ in OUTPUTS[by_id[source].type]].index(output)
        in_slot = [n for n, _ in INPUTS[by_id[target].type]].index(name)
        kind = OUTPUTS[by_id[source].type][out_slot][1]
        link_rows.append([link_id, source, out_slot, target, in_slot, kind])
        inputs[(target, name)] = link_id
        outputs.setdefault((source, output), []).append(link_id)
    nodes = []
    tops = _row_tops(workflow.nodes)
    for order, node in enumerate(sorted(workflow.nodes, key=lambda n: (n.column, n.row))):
        entry = {
            "id": node.id,
            "type": node.type,
            "pos": [40 + (NODE_WIDTH + GAP) * node.column, tops[node.row]],
            "size": [NODE_WIDTH, _body_height(node)],
            "flags": {},
            "order": order,
            "mode": 0,
            "inputs": [{"name": n, "type": t, "link": inputs.get((node.id, n))} for n, t in INPUTS.get(node.type, [])],
            "outputs": [
                {"name": n, "type": t, "links": outputs.get((node.id, n), []), "slot_index": i}
                for i, (n, t) in enumerate(OUTPUTS[node.type])
            ],
            "properties": {"Node name for S&R": node.type},
            "widgets_values": _widgets_values(node),
        }
        if node.title:
            entry["title"] = node.title
        nodes.append(entry)
    return {
        "last_node_id": max(by_id),
        "last_link_id": len(link_rows),
        "nodes": sorted(nodes, key=lambda n: n["id"]),
        "links": link_rows,
        "groups": [],
        "config": {},
        "extra": {"ds": {"scale": 0.8, "offset": [0, 0]}, "iconmatting_example": workflow.title},
        "version": 0.4,
    }


def api_format(workflow: Workflow) -> dict:
    """The prompt ComfyUI's /prompt endpoint runs: widget values and links by input name."""
    by_id = {node.id: node for node in workflow.nodes}
    prompt = {}
    for node in sorted(workflow.nodes, key=lambda n: n.id):
        inputs = {name: node.widgets[name] for name in WIDGETS.get(node.type, [])}
        for source, output, target, name in workflow.links:
            if target == node.id:
                inputs[name] = [str(source), [n for n, _ in OUTPUTS[by_id[source].type]].index(output)]
        prompt[str(node.id)] = {"class_type": node.type, "inputs": inputs, "_meta": {"title": node.title or node.type}}
    return prompt


def _sd_and_model(column: int = 0) -> list[Node]:
    return [
        Node(1, "CheckpointLoaderSimple", {"ckpt_name": SD_CHECKPOINT}, column, 0, "SD2.1 768-v"),
        Node(2, "LoadIconMattingModel", {"model_name": ICM_CHECKPOINT}, column, 1),
    ]


def _encode(node_id: int, prompt_type: str = "mask", column: int = 2) -> Node:
    return Node(
        node_id,
        "EncodeReferenceContext",
        {"prompt_type": prompt_type, "timestep": 200, "ensemble_size": 4, "seed": 0},
        column,
        0,
    )


def _sd_links(encode: int) -> list[tuple[int, str, int, str]]:
    return [
        (2, "iconmatting_model", encode, "iconmatting_model"),
        (1, "MODEL", encode, "model"),
        (1, "VAE", encode, "vae"),
        (1, "CLIP", encode, "clip"),
    ]


def _matte_links(reference: int, target: int, similarity: int, head: int) -> list[tuple[int, str, int, str]]:
    """In-Context Similarity on ``target``'s image against ``reference``, then Matting Head on its guidance (the model
    from node 2, the Load IconMatting Model of every workflow)."""
    return [
        (reference, "reference", similarity, "reference"),
        (target, "IMAGE", similarity, "target_image"),
        (2, "iconmatting_model", head, "iconmatting_model"),
        (similarity, "guidance", head, "guidance"),
        (target, "IMAGE", head, "target_image"),
    ]


def _matte_branch(first_id: int, target_image: str, row: int, prefix: str, encode: int) -> tuple[list, list]:
    """LoadImage -> In-Context Similarity -> Matting Head -> SaveImage (RGBA), on one row below the reference."""
    load, similarity, head, save = first_id, first_id + 1, first_id + 2, first_id + 3
    nodes = [
        Node(load, "LoadImage", {"image": EXAMPLE + target_image}, 2, row + 1, f"Target {target_image}"),
        Node(similarity, "InContextSimilarity", {"ensemble_size": 4, "seed": 0}, 3, row + 1),
        Node(head, "MattingHead", HEAD_WIDGETS, 4, row + 1),
        Node(save, "SaveImage", {"filename_prefix": prefix}, 5, row + 1),
    ]
    links = [
        *_matte_links(encode, load, similarity, head),
        (head, "rgba", save, "images"),
    ]
    return nodes, links


def _masked_reference() -> list[Node]:
    """Nodes 3-5: the reference image, its mask file (white = object) and the reference context encoded from them."""
    return [
        Node(3, "LoadImage", {"image": EXAMPLE + "chelsea.jpg"}, 1, 0, "Reference image"),
        Node(
            4,
            "LoadImageMask",
            {"image": EXAMPLE + "chelsea_mask.png", "channel": "red"},
            1,
            1,
            "Reference mask (white = object)",
        ),
        _encode(5),
    ]


def fig1_one_reference_many_domains() -> Workflow:
    nodes = [
        *_sd_and_model(),
        *_masked_reference(),
    ]
    links = [*_sd_links(5), (3, "IMAGE", 5, "reference_image"), (4, "MASK", 5, "reference_mask")]
    for i, target in enumerate(["chelsea_mirrored.jpg", "coffee.jpg", "astronaut.jpg"]):
        branch_nodes, branch_links = _matte_branch(10 + 4 * i, target, i, f"iconmatting/fig1_{i}", 5)
        nodes += branch_nodes
        links += branch_links
    return Workflow("fig1_one_reference_many_domains", "Fig. 1: one reference, targets across domains", nodes, links)


def fig8_same_instance_other_views() -> Workflow:
    nodes = [
        *_sd_and_model(),
        Node(3, "LoadImage", {"image": EXAMPLE + "chelsea.jpg"}, 1, 0, "Reference view"),
        Node(
            4, "IconMattingBoxToMask", {"x": 20, "y": 0, "width": 330, "height": 300}, 1, 1, "Box around the instance"
        ),
        _encode(5, "box"),
    ]
    links = [
        *_sd_links(5),
        (3, "IMAGE", 4, "reference_image"),
        (3, "IMAGE", 5, "reference_image"),
        (4, "reference_mask", 5, "reference_mask"),
    ]
    for i, target in enumerate(["chelsea_mirrored.jpg", "chelsea_closeup.jpg"]):
        branch_nodes, branch_links = _matte_branch(10 + 4 * i, target, i, f"iconmatting/fig8_{i}", 5)
        nodes += branch_nodes
        links += branch_links
    return Workflow(
        "fig8_same_instance_other_views", "Fig. 8: the same instance in other views (box prompt)", nodes, links
    )


def _marks(width: int, height: int, **marks) -> str:
    """The ``marks`` widget value (docs/MARKS.md): marks in pixels of a ``width x height`` image."""
    return json.dumps({"version": 1, "image": {"width": width, "height": height}, **marks})


def _prompted_reference(marks: str, title: str, prompt_type: str, top_m: int = 8) -> list[Node]:
    """Nodes 1-5: the models, the reference image, a Reference Prompt holding ``marks`` and the reference context."""
    return [
        *_sd_and_model(),
        Node(3, "LoadImage", {"image": EXAMPLE + "chelsea.jpg"}, 1, 0, "Reference image"),
        Node(4, "IconMattingReferencePrompt", {"marks": marks, "extension_top_m": top_m}, 1, 1, title),
        _encode(5, prompt_type),
    ]


PROMPTED_REFERENCE_LINKS = [
    *_sd_links(5),
    (3, "IMAGE", 4, "reference_image"),
    (3, "IMAGE", 5, "reference_image"),
    (4, "reference_prompt", 5, "reference_prompt"),
]
"""The links of :func:`_prompted_reference`'s nodes."""


def fig10_similarity_maps() -> Workflow:
    marks = _marks(*PHOTO_SIZE, points=[{"x": 170, "y": 110, "positive": True}, {"x": 260, "y": 240, "positive": True}])
    nodes = [
        *_prompted_reference(marks, "Clicked points (Reference Prompt)", "points"),
        Node(6, "LoadImage", {"image": EXAMPLE + "chelsea_mirrored.jpg"}, 2, 1, "Target"),
        Node(7, "InContextSimilarity", {"ensemble_size": 4, "seed": 0}, 3, 1),
        Node(8, "PreviewImage", {}, 4, 0, "Inter-similarity"),
        Node(9, "PreviewImage", {}, 5, 0, "Intra-similarity"),
        Node(10, "MattingHead", HEAD_WIDGETS, 4, 1),
        Node(11, "MaskToImage", {}, 5, 1),
        Node(12, "PreviewImage", {}, 6, 1, "Alpha"),
    ]
    links = [
        *PROMPTED_REFERENCE_LINKS,
        (5, "reference", 7, "reference"),
        (6, "IMAGE", 7, "target_image"),
        (7, "inter_similarity", 8, "images"),
        (7, "intra_similarity", 9, "images"),
        (2, "iconmatting_model", 10, "iconmatting_model"),
        (7, "guidance", 10, "guidance"),
        (6, "IMAGE", 10, "target_image"),
        (10, "alpha", 11, "mask"),
        (11, "IMAGE", 12, "images"),
    ]
    return Workflow("fig10_similarity_maps", "Fig. 10: inter- and intra-similarity maps (point prompt)", nodes, links)


def scribble_reference() -> Workflow:
    marks = _marks(
        *PHOTO_SIZE,
        scribbles=[
            {"points": [[120, 120], [200, 170], [280, 200]], "width": 16, "positive": True},
            {"points": [[420, 60], [430, 260]], "width": 24, "positive": False},
        ],
    )  # fmt: skip
    nodes = [
        *_prompted_reference(marks, "Scribbles: object and not the object", "scribble"),
        Node(6, "MaskToImage", {}, 2, 1),
        Node(7, "PreviewImage", {}, 3, 1, "Rasterised marks"),
    ]
    links = [
        *PROMPTED_REFERENCE_LINKS,
        (4, "reference_mask", 6, "mask"),
        (6, "IMAGE", 7, "images"),
    ]
    branch_nodes, branch_links = _matte_branch(10, "chelsea_mirrored.jpg", 1, "iconmatting/scribble", 5)
    return Workflow(
        "scribble_reference", "Scribbles on the reference (reference-prompt extension)", nodes + branch_nodes,
        links + branch_links,
    )  # fmt: skip


def correction_rounds() -> Workflow:
    reference_marks = _marks(*PHOTO_SIZE, boxes=[{"x": 40, "y": 20, "width": 280, "height": 260, "positive": True}])
    correction_marks = _marks(
        *PHOTO_SIZE,
        points=[{"x": 240, "y": 150, "positive": True}],
        scribbles=[{"points": [[20, 60], [20, 250]], "width": 16, "positive": False}],
    )  # fmt: skip
    nodes = [
        *_prompted_reference(reference_marks, "Box around the object", "box", top_m=0),
        Node(6, "LoadImage", {"image": EXAMPLE + "chelsea_mirrored.jpg"}, 2, 1, "Target"),
        Node(7, "InContextSimilarity", {"ensemble_size": 4, "seed": 0}, 3, 1, "First run"),
        Node(8, "MattingHead", HEAD_WIDGETS, 4, 1),
        Node(9, "MaskToImage", {}, 5, 1),
        Node(10, "PreviewImage", {}, 6, 1, "Alpha of the first run"),
        Node(
            11,
            "IconMattingCorrection",
            {"target_index": 0, "marks": correction_marks},
            3,
            2,
            "Correction: click what was missed, scribble where it leaked",
        ),  # fmt: skip
        Node(12, "InContextSimilarity", {"ensemble_size": 4, "seed": 0}, 5, 2, "Rerun with the correction"),
        Node(13, "MattingHead", HEAD_WIDGETS, 6, 2),
        Node(14, "SaveImage", {"filename_prefix": "iconmatting/corrected"}, 7, 2, "Corrected cut-out"),
    ]
    links = [
        *PROMPTED_REFERENCE_LINKS,
        *_matte_links(5, 6, 7, 8),
        (8, "alpha", 9, "mask"),
        (9, "IMAGE", 10, "images"),
        (5, "reference", 11, "reference"),
        (6, "IMAGE", 11, "target_image"),
        (8, "alpha", 11, "previous_alpha"),
        *_matte_links(11, 6, 12, 13),
        (13, "rgba", 14, "images"),
    ]
    return Workflow("correction_rounds", "Correcting a target: first run, one correction, the rerun", nodes, links)


def fine_tune_on_corrections() -> Workflow:
    """First run on a batch of two targets, a correction of each, the corrected mattes as training data for the head,
    then the batch rerun with the fine-tuned head and the original reference."""
    size = PHOTO_SIZE  # the batch takes the first target's size (ImageBatch resizes the second to it)
    corrections = [
        _marks(*size, points=[{"x": 240, "y": 150, "positive": True}]),
        _marks(
            *size,
            points=[{"x": 225, "y": 170, "positive": True}],
            scribbles=[{"points": [[20, 24], [140, 24]], "width": 16, "positive": False}],
        ),
    ]
    nodes = [
        *_sd_and_model(),
        *_masked_reference(),
        Node(6, "LoadImage", {"image": EXAMPLE + "chelsea_mirrored.jpg"}, 0, 2, "Target 1"),
        Node(7, "LoadImage", {"image": EXAMPLE + "chelsea_closeup.jpg"}, 1, 2, "Target 2"),
        Node(8, "ImageBatch", {}, 2, 1, "Batch of targets"),
        Node(9, "InContextSimilarity", {"ensemble_size": 4, "seed": 0}, 3, 0, "First run"),
        Node(10, "MattingHead", HEAD_WIDGETS, 4, 0),
        Node(11, "IconMattingCorrection", {"target_index": 0, "marks": corrections[0]}, 3, 1, "Correct target 1"),
        Node(12, "IconMattingCorrection", {"target_index": 1, "marks": corrections[1]}, 3, 2, "Correct target 2"),
        Node(13, "InContextSimilarity", {"ensemble_size": 4, "seed": 0}, 4, 1, "Rerun with the corrections"),
        Node(14, "MattingHead", HEAD_WIDGETS, 5, 1, "Corrected mattes"),
        Node(
            15,
            "IconMattingFineTune",
            {"steps": 50, "learning_rate": 1e-4, "recipe": "corrected", "seed": 0, "save_name": ""},
            5,
            0,
            "Fine-tune the head on the corrected mattes",
        ),  # fmt: skip
        Node(16, "InContextSimilarity", {"ensemble_size": 4, "seed": 0}, 6, 0, "Rerun with the fine-tuned head"),
        Node(17, "MattingHead", HEAD_WIDGETS, 7, 0),
        Node(18, "SaveImage", {"filename_prefix": "iconmatting/fine_tuned"}, 7, 1, "Cut-outs of the fine-tuned head"),
    ]
    links = [
        *_sd_links(5),
        (3, "IMAGE", 5, "reference_image"),
        (4, "MASK", 5, "reference_mask"),
        (6, "IMAGE", 8, "image1"),
        (7, "IMAGE", 8, "image2"),
        *_matte_links(5, 8, 9, 10),
        (5, "reference", 11, "reference"),
        (8, "IMAGE", 11, "target_image"),
        (10, "alpha", 11, "previous_alpha"),
        (11, "reference", 12, "reference"),
        (8, "IMAGE", 12, "target_image"),
        (10, "alpha", 12, "previous_alpha"),
        *_matte_links(12, 8, 13, 14),
        (5, "reference", 15, "reference"),
        (8, "IMAGE", 15, "target_image"),
        (14, "alpha", 15, "target_alpha"),
        (15, "reference", 16, "reference"),
        (8, "IMAGE", 16, "target_image"),
        (15, "iconmatting_model", 17, "iconmatting_model"),
        (16, "guidance", 17, "guidance"),
        (8, "IMAGE", 17, "target_image"),
        (17, "rgba", 18, "images"),
    ]
    return Workflow(
        "fine_tune_on_corrections", "Fine-tuning the head on corrected mattes: first run, two corrections, fine-tune, "
        "rerun", nodes, links,
    )  # fmt: skip


def _video_matte(node_id: int, column: int, row: int) -> Node:
    widgets = {"reference_frame": 0, "prompt_type": "mask", "chunk_size": 4, "timestep": 200, "ensemble_size": 4}
    return Node(node_id, "VideoInContextMatte", {**widgets, "seed": 0, "temporal_stability": 0.5}, column, row)


def _video_inputs(matte: int) -> tuple[list[Node], list[tuple[int, str, int, str]]]:
    """The models, the video (LoadVideo, GetVideoComponents) and the mask of frame 0, the models and mask wired into
    the Video In-Context Matte node ``matte``."""
    nodes = [
        *_sd_and_model(),
        Node(3, "LoadVideo", {"file": EXAMPLE + "chelsea_pan.mp4"}, 1, 0, "Video"),
        Node(4, "GetVideoComponents", {}, 2, 0),
        Node(
            5,
            "LoadImageMask",
            {"image": EXAMPLE + "chelsea_pan_mask.png", "channel": "red"},
            1,
            1,
            "Mask of frame 0 (white = object)",
        ),
    ]
    return nodes, [*_sd_links(matte), (3, "VIDEO", 4, "video"), (5, "MASK", matte, "reference_mask")]


def fig6_video_from_one_frame() -> Workflow:
    nodes, links = _video_inputs(6)
    nodes += [
        _video_matte(6, 3, 0),
        Node(7, "IconMattingApplyAlpha", {"foreground_method": "multilevel"}, 4, 0),
        Node(8, "CreateVideo", {"fps": 24.0}, 5, 0, "Foreground video"),
        Node(
            9, "SaveVideo", {"filename_prefix": "video/iconmatting_foreground", "format": "auto", "codec": "auto"}, 6, 0
        ),
        Node(10, "MaskToImage", {}, 4, 1),
        Node(11, "CreateVideo", {"fps": 24.0}, 5, 1, "Matte video"),
        Node(12, "SaveVideo", {"filename_prefix": "video/iconmatting_matte", "format": "auto", "codec": "auto"}, 6, 1),
    ]
    links += [
        (4, "images", 6, "frames"),
        (4, "images", 7, "image"),
        (6, "alpha", 7, "alpha"),
        (7, "foreground", 8, "images"),
        (8, "VIDEO", 9, "video"),
        (6, "alpha", 10, "mask"),
        (10, "IMAGE", 11, "images"),
        (11, "VIDEO", 12, "video"),
    ]
    return Workflow("fig6_video_from_one_frame", "Fig. 6: every frame of a video from one marked frame", nodes, links)


def composite_renders_over_background() -> Workflow:
    nodes = [
        *_sd_and_model(),
        *_masked_reference(),
        Node(6, "LoadImage", {"image": EXAMPLE + "chelsea.jpg"}, 0, 2, "Render 1"),
        Node(7, "LoadImage", {"image": EXAMPLE + "chelsea_mirrored.jpg"}, 1, 2, "Render 2 (same size)"),
        Node(8, "ImageBatch", {}, 2, 2, "Batch of renders"),
        Node(9, "InContextSimilarity", {"ensemble_size": 4, "seed": 0}, 3, 1),
        Node(10, "MattingHead", HEAD_WIDGETS, 4, 1),
        Node(11, "LoadImage", {"image": EXAMPLE + "coffee.jpg"}, 4, 2, "New background (any size)"),
        Node(
            12,
            "IconMattingComposite",
            {"foreground_alpha": "straight", "background_fit": "cover", "background_color": "#00ff00"},
            5,
            1,
        ),
        Node(13, "SaveImage", {"filename_prefix": "iconmatting/composite"}, 6, 1, "Composites"),
        Node(14, "SaveImage", {"filename_prefix": "iconmatting/cutout"}, 5, 0, "Transparent cut-outs"),
    ]
    links = [
        *_sd_links(5),
        (3, "IMAGE", 5, "reference_image"),
        (4, "MASK", 5, "reference_mask"),
        (6, "IMAGE", 8, "image1"),
        (7, "IMAGE", 8, "image2"),
        *_matte_links(5, 8, 9, 10),
        (10, "rgba", 12, "foreground"),
        (11, "IMAGE", 12, "background"),
        (12, "image", 13, "images"),
        (10, "rgba", 14, "images"),
    ]
    title = "Matte a batch of renders, composite them over a new background"
    return Workflow("composite_renders_over_background", title, nodes, links)


def video_matte_image_sequences() -> Workflow:
    """A video streamed in batches (one per queued run); alpha and a composite over green saved as PNG sequences."""
    nodes, links = _video_inputs(7)
    nodes += [
        Node(6, "IconMattingVideoBatchManager", {"frames_per_batch": 16, "total_frames": 0}, 3, 0,
             "Batch manager: queue once per batch"),
        _video_matte(7, 4, 0),
        Node(8, "MaskToImage", {}, 5, 0),
        Node(9, "SaveImage", {"filename_prefix": "iconmatting/video_alpha"}, 6, 0, "Alpha sequence"),
        Node(10, "InvertMask", {}, 5, 1),
        Node(11, "EmptyImage", {"width": 64, "height": 64, "batch_size": 1, "color": 0x00FF00}, 3, 1, "Background"),
        Node(12, "ImageCompositeMasked", {"x": 0, "y": 0, "resize_source": True}, 6, 1, "Composite over green"),
        Node(13, "SaveImage", {"filename_prefix": "iconmatting/video_composite"}, 7, 1, "Composite sequence"),
    ]  # fmt: skip
    links += [
        (4, "images", 6, "frames"),
        (6, "frames", 7, "frames"),
        (6, "batch", 7, "batch"),
        (7, "alpha", 8, "mask"),
        (8, "IMAGE", 9, "images"),
        (7, "alpha", 10, "mask"),
        (6, "frames", 12, "destination"),
        (11, "IMAGE", 12, "source"),
        (10, "MASK", 12, "mask"),
        (12, "IMAGE", 13, "images"),
    ]
    return Workflow(
        "video_matte_image_sequences", "A video in batches: alpha and composite as image sequences", nodes, links
    )


WORKFLOWS = [
    fig1_one_reference_many_domains,
    fig8_same_instance_other_views,
    fig10_similarity_maps,
    fig6_video_from_one_frame,
    composite_renders_over_background,
    scribble_reference,
    correction_rounds,
    video_matte_image_sequences,
    fine_tune_on_corrections,
]


def render(workflow: Workflow) -> dict[Path, str]:
    """Path -> JSON text of both formats."""
    dump = lambda data: json.dumps(data, indent=1) + "\n"  # noqa: E731
    name = f"{workflow.name}.json"
    return {UI_FOLDER / name: dump(ui_format(workflow)), API_FOLDER / name: dump(api_format(workflow))}


def main() -> None:
    for build in WORKFLOWS:
        for path, text in render(build()).items():
            path.parent.mkdir(parents=True, exist_ok=True)
            path.write_text(text)
            print(path.relative_to(PACK_ROOT))


if __name__ == "__main__":
    main()
