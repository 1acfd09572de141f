"""The example photos: copied into ComfyUI's input/ (as iconmatting_<file>) at pack import, never over a user's file;
every file the templates name is one of them, and the marks lie on the cat."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
from comfy_env import pack_module
from PIL import Image

PACK_ROOT = Path(__file__).resolve().parents[1]
EXAMPLES = PACK_ROOT / "example_inputs"
SHIPPED = sorted(p.name for p in EXAMPLES.iterdir() if p.suffix in {".jpg", ".png", ".mp4"})
FILE_WIDGETS = {"LoadImage": "image", "LoadImageMask": "image", "LoadVideo": "file"}


def test_pack_import_copied_every_example_into_its_input_subfolder(pack):
    import folder_paths

    assert pack.NODE_CLASS_MAPPINGS  # ComfyUI reads the mappings: that imports nodes/, which copies the examples
    copied = Path(folder_paths.get_input_directory())
    assert sorted(p.name for p in copied.iterdir()) == [f"iconmatting_{name}" for name in SHIPPED]
    for name in SHIPPED:
        assert (copied / f"iconmatting_{name}").read_bytes() == (EXAMPLES / name).read_bytes(), name


def test_a_file_already_there_is_never_replaced(pack, tmp_path):
    copy = pack_module("nodes.example_inputs").copy_example_inputs
    (tmp_path / "iconmatting_chelsea.jpg").write_bytes(b"the user's own file")
    copied = copy(str(tmp_path))
    assert sorted(p.name for p in copied) == [f"iconmatting_{name}" for name in SHIPPED if name != "chelsea.jpg"]
    assert (tmp_path / "iconmatting_chelsea.jpg").read_bytes() == b"the user's own file"
    assert copy(str(tmp_path)) == []  # the second import copies nothing


@pytest.mark.parametrize("folder", ["example_workflows", "workflows/api"])
def test_templates_name_only_shipped_inputs(folder):
    for path in sorted((PACK_ROOT / folder).glob("*.json")):
        graph = json.loads(path.read_text())
        nodes = graph["nodes"] if "nodes" in graph else [{"type": n["class_type"], **n} for n in graph.values()]
        for node in nodes:
            if node["type"] in FILE_WIDGETS:
                ui = "widgets_values" in node
                value = node["widgets_values"][0] if ui else node["inputs"][FILE_WIDGETS[node["type"]]]
                assert value.startswith("iconmatting_") and value.split("_", 1)[1] in SHIPPED, (path.name, value)


def test_every_example_is_small_and_licensed():
    licences = (EXAMPLES / "LICENSES.md").read_text()
    for name in SHIPPED:
        assert (EXAMPLES / name).stat().st_size < 200_000, name
        assert f"| {name}" in licences or name in licences, name


def test_template_marks_lie_on_the_cat():
    """Every positive mark of every template that names chelsea.jpg falls inside the cat mask, every negative one
    outside it, in the photo's own pixel grid."""
    mask = np.asarray(Image.open(EXAMPLES / "chelsea_mask.png")) > 127  # [300, 451]
    checked = 0
    for path in sorted((PACK_ROOT / "workflows" / "api").glob("*.json")):
        prompt = json.loads(path.read_text())
        for node in prompt.values():
            marks = node["inputs"].get("marks")
            if node["class_type"] != "IconMattingReferencePrompt" or not marks:
                continue
            marks = json.loads(marks)
            assert (marks["image"]["width"], marks["image"]["height"]) == (451, 300), path.name
            pixels = [(p["x"], p["y"], p["positive"]) for p in marks.get("points", [])]
            pixels += [(x, y, s["positive"]) for s in marks.get("scribbles", []) for x, y in s["points"]]
            pixels += [
                (b["x"] + dx * b["width"], b["y"] + dy * b["height"], b["positive"])
                for b in marks.get("boxes", []) for dx, dy in ((0.25, 0.25), (0.5, 0.5), (0.75, 0.75))
            ]  # fmt: skip
            for x, y, positive in pixels:
                assert mask[int(y), int(x)] == positive, (path.name, x, y, positive)
                checked += 1
    assert checked >= 8
