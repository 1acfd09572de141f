"""The example workflows: up to date, parseable, only known node types, valid widget values, consistent links."""

from __future__ import annotations

import importlib.util
import json
import sys
from pathlib import Path

import pytest
from PIL import Image

PACK_ROOT = Path(__file__).resolve().parents[1]
UI_WORKFLOWS, API_WORKFLOWS = PACK_ROOT / "example_workflows", PACK_ROOT / "workflows" / "api"
WIDGET_TYPES = ("INT", "FLOAT", "STRING", "BOOLEAN")

# Core ComfyUI 0.3.64 nodes the workflows use: linked inputs, widgets (name -> allowed values, a (min, max) range,
# or a type), and outputs, as /object_info lists them.
CORE_NODES = {
    "CheckpointLoaderSimple": {"inputs": {}, "widgets": {"ckpt_name": str}, "outputs": ["MODEL", "CLIP", "VAE"]},
    "LoadImage": {"inputs": {}, "widgets": {"image": str}, "outputs": ["IMAGE", "MASK"]},
    "LoadImageMask": {
        "inputs": {},
        "widgets": {"image": str, "channel": ["alpha", "red", "green", "blue"]},
        "outputs": ["MASK"],
    },
    "LoadVideo": {"inputs": {}, "widgets": {"file": str}, "outputs": ["VIDEO"]},
    "GetVideoComponents": {"inputs": {"video": "VIDEO"}, "widgets": {}, "outputs": ["IMAGE", "AUDIO", "FLOAT"]},
    "CreateVideo": {
        "inputs": {"images": "IMAGE", "audio": "AUDIO"},
        "widgets": {"fps": (1.0, 120.0)},
        "outputs": ["VIDEO"],
    },
    "SaveVideo": {
        "inputs": {"video": "VIDEO"},
        "widgets": {"filename_prefix": str, "format": ["auto", "mp4"], "codec": ["auto", "h264"]},
        "outputs": [],
    },
    "SaveImage": {"inputs": {"images": "IMAGE"}, "widgets": {"filename_prefix": str}, "outputs": []},
    "PreviewImage": {"inputs": {"images": "IMAGE"}, "widgets": {}, "outputs": []},
    "MaskToImage": {"inputs": {"mask": "MASK"}, "widgets": {}, "outputs": ["IMAGE"]},
    "InvertMask": {"inputs": {"mask": "MASK"}, "widgets": {}, "outputs": ["MASK"]},
    "EmptyImage": {
        "inputs": {},
        "widgets": {"width": (1, 16384), "height": (1, 16384), "batch_size": (1, 4096), "color": (0, 0xFFFFFF)},
        "outputs": ["IMAGE"],
    },
    "ImageCompositeMasked": {
        "inputs": {"destination": "IMAGE", "source": "IMAGE", "mask": "MASK"},
        "widgets": {"x": (0, 16384), "y": (0, 16384), "resize_source": [True, False]},
        "outputs": ["IMAGE"],
    },
}
UPLOAD_NODES = {"LoadImage", "LoadImageMask", "LoadVideo"}
MODEL_FILE_WIDGETS = {("LoadIconMattingModel", "model_name")}


@pytest.fixture(scope="module")
def builder():
    spec = importlib.util.spec_from_file_location("build_workflows", PACK_ROOT / "workflows" / "build_workflows.py")
    module = importlib.util.module_from_spec(spec)
    sys.modules[spec.name] = module  # dataclasses look their module up there
    spec.loader.exec_module(module)
    return module


@pytest.fixture(scope="module")
def schemas(pack, builder):
    """Node type -> {"inputs": linked inputs, "widgets": [(name, spec)], "outputs": types} for ours and core."""
    ours = {}
    for node_id, cls in pack.NODE_CLASS_MAPPINGS.items():
        specs = {**cls.INPUT_TYPES()["required"], **cls.INPUT_TYPES().get("optional", {})}
        is_widget = {
            n: (isinstance(s[0], list) or s[0] in WIDGET_TYPES) and not s[1].get("forceInput") for n, s in specs.items()
        }
        widgets = [(n, s) for n, s in specs.items() if is_widget[n]]
        linked = {n: s[0] for n, s in specs.items() if not is_widget[n]}
        ours[node_id] = {
            "inputs": linked,
            "widgets": widgets,
            "outputs": list(cls.RETURN_TYPES),
            "required": set(cls.INPUT_TYPES()["required"]),
        }
    return ours


def test_committed_workflows_are_what_the_builder_writes(builder):
    expected = {path: text for build in builder.WORKFLOWS for path, text in builder.render(build()).items()}
    assert {*UI_WORKFLOWS.glob("*.json"), *API_WORKFLOWS.glob("*.json")} == set(expected)
    for path, text in expected.items():
        assert path.read_text() == text, f"{path.name} is stale: run python workflows/build_workflows.py"


def test_only_ui_workflows_are_listed_as_templates():
    """ComfyUI's template browser lists <pack>/{example_workflows,workflows,...}/*.json: the UI graphs, once each."""
    listed = [p for folder in ("example_workflows", "example", "examples", "workflow", "workflows")
              for p in (PACK_ROOT / folder).glob("*.json")]  # fmt: skip
    assert sorted(listed) == sorted(UI_WORKFLOWS.glob("*.json")) and listed


@pytest.mark.parametrize("path", sorted(UI_WORKFLOWS.glob("*.json")), ids=lambda p: p.name)
def test_template_has_a_thumbnail(path):
    """The template browser shows <name>.jpg beside each template (frontends 1.27 and 1.58 request that name)."""
    thumbnail = path.with_suffix(".jpg")
    assert thumbnail.is_file(), f"{thumbnail.name} is missing: run python tests/browser/make_pictures.py"
    with Image.open(thumbnail) as image:
        assert image.format == "JPEG" and min(image.size) >= 128, (image.format, image.size)


def test_builder_tables_match_the_node_schemas(builder, schemas):
    for node_id in builder.WIDGETS.keys() & schemas.keys():
        assert builder.WIDGETS[node_id] == [n for n, _ in schemas[node_id]["widgets"]], node_id
        assert builder.INPUTS.get(node_id, []) == list(schemas[node_id]["inputs"].items()), node_id
        assert [t for _, t in builder.OUTPUTS[node_id]] == schemas[node_id]["outputs"], node_id


def _check_widget(where: str, spec, value) -> None:
    if spec is str:
        assert isinstance(value, str) and value, where
    elif isinstance(spec, list):
        assert value in spec, where
    elif isinstance(spec, tuple) and all(isinstance(bound, (int, float)) for bound in spec):
        assert spec[0] <= value <= spec[1], where
    else:  # one of our INPUT_TYPES specs
        kind, options = spec[0], (spec[1] if len(spec) > 1 else {})
        if isinstance(kind, list):
            assert value in kind, where
        elif kind in ("INT", "FLOAT"):
            assert isinstance(value, (int, float)) and options["min"] <= value <= options["max"], where
        elif kind == "STRING":
            assert isinstance(value, str), where


def _widget_specs(node_type: str, schemas: dict) -> list[tuple[str, object]]:
    if node_type in schemas:
        return [(n, str if (node_type, n) in MODEL_FILE_WIDGETS else s) for n, s in schemas[node_type]["widgets"]]
    return list(CORE_NODES[node_type]["widgets"].items())


@pytest.mark.parametrize("path", sorted(UI_WORKFLOWS.glob("*.json")), ids=lambda p: p.name)
def test_ui_workflow(path, schemas):
    graph = json.loads(path.read_text())
    nodes = {node["id"]: node for node in graph["nodes"]}
    known = schemas.keys() | CORE_NODES.keys()
    for node in nodes.values():
        assert node["type"] in known, node["type"]
        values = list(node["widgets_values"])
        if node["type"] in UPLOAD_NODES:
            assert values.pop() == "image"
        specs = _widget_specs(node["type"], schemas)
        for name, spec in specs:
            _check_widget(f"{path.name} #{node['id']} {name}", spec, values.pop(0))
            if name == "seed":
                assert values.pop(0) in ("fixed", "increment", "decrement", "randomize")
        assert values == [], f"{path.name} #{node['id']}: extra widget values {values}"
    for link_id, source, out_slot, target, in_slot, kind in graph["links"]:
        out = nodes[source]["outputs"][out_slot]
        into = nodes[target]["inputs"][in_slot]
        assert out["type"] == into["type"] == kind and link_id in out["links"] and into["link"] == link_id
    for node in nodes.values():
        required = schemas[node["type"]]["required"] if node["type"] in schemas else set()
        for socket in node["inputs"]:
            assert socket["link"] is not None or socket["name"] not in required, (path.name, node["id"], socket)
    assert graph["last_node_id"] == max(nodes) and graph["last_link_id"] == len(graph["links"])


@pytest.mark.parametrize("path", sorted(API_WORKFLOWS.glob("*.json")), ids=lambda p: p.name)
def test_api_workflow(path, schemas):
    prompt = json.loads(path.read_text())
    ui = json.loads((UI_WORKFLOWS / path.name).read_text())
    assert {str(node["id"]) for node in ui["nodes"]} == set(prompt)
    for node_id, node in prompt.items():
        node_type = node["class_type"]
        schema = schemas.get(node_type) or CORE_NODES[node_type]
        linked = schema["inputs"]
        widgets = dict(_widget_specs(node_type, schemas))
        for name, value in node["inputs"].items():
            if isinstance(value, list):
                source, slot = value
                assert name in linked and prompt[source]["class_type"], (path.name, node_id, name)
                source_type = prompt[source]["class_type"]
                outputs = (schemas.get(source_type) or CORE_NODES[source_type])["outputs"]
                assert outputs[slot] == linked[name], (path.name, node_id, name)
            else:
                _check_widget(f"{path.name} #{node_id} {name}", widgets[name], value)
        assert schema.get("required", set()) <= node["inputs"].keys(), (path.name, node_id)
