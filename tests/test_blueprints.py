"""The subgraph blueprints in subgraphs/: up to date, one subgraph node each, known node types, valid widget values,
links consistent on both ends (inner nodes, the subgraph's input node -10 and output node -20)."""

from __future__ import annotations

import importlib.util
import json
import sys
from pathlib import Path

import pytest
from test_workflows import CORE_NODES, _check_widget, _widget_specs, builder, schemas  # noqa: F401 (fixtures)

PACK_ROOT = Path(__file__).resolve().parents[1]
FILES = sorted((PACK_ROOT / "subgraphs").glob("*.json"))
INPUT_NODE, OUTPUT_NODE = -10, -20


@pytest.fixture(scope="module")
def blueprints(builder):  # noqa: F811 (the fixture imported above)
    spec = importlib.util.spec_from_file_location("build_blueprints", PACK_ROOT / "workflows" / "build_blueprints.py")
    module = importlib.util.module_from_spec(spec)
    sys.modules[spec.name] = module
    spec.loader.exec_module(module)
    return module


def test_committed_blueprints_are_what_the_builder_writes(blueprints):
    expected = dict(blueprints.render(build()) for build in blueprints.BLUEPRINTS)
    assert set(FILES) == set(expected)
    for path, text in expected.items():
        assert path.read_text() == text, f"{path.name} is stale: run python workflows/build_blueprints.py"


def test_the_common_jobs_have_blueprints():
    names = {path.stem for path in FILES}
    assert names == {
        "Matte like the marked reference (IconMatting)",
        "Matte a video from one marked frame (IconMatting)",
    }
    for path in FILES:  # the library lists them under Subgraph Blueprints/IconMatting with the pack's own description
        subgraph = json.loads(path.read_text())["definitions"]["subgraphs"][0]
        assert subgraph["category"] == "IconMatting" and subgraph["description"], path.name


@pytest.mark.parametrize("path", FILES, ids=lambda p: p.stem)
def test_blueprint(path, schemas):  # noqa: F811 (the fixture imported above)
    blueprint = json.loads(path.read_text())
    [root], [subgraph] = blueprint["nodes"], blueprint["definitions"]["subgraphs"]
    assert root["type"] == subgraph["id"] and blueprint["last_node_id"] == root["id"] and blueprint["links"] == []
    sockets = lambda items: [(s["name"], s["type"]) for s in items]  # noqa: E731
    assert sockets(root["inputs"]) == sockets(subgraph["inputs"]) and sockets(root["outputs"]) == sockets(
        subgraph["outputs"]
    )
    nodes = {node["id"]: node for node in subgraph["nodes"]}
    assert len(nodes) == len(subgraph["nodes"]) and subgraph["state"]["lastNodeId"] == max(nodes)
    for node in nodes.values():
        assert node["type"] in schemas.keys() | CORE_NODES.keys(), node["type"]
        values = list(node["widgets_values"])
        for name, spec in _widget_specs(node["type"], schemas):
            _check_widget(f"{path.name} #{node['id']} {name}", spec, values.pop(0))
            if name == "seed":
                assert values.pop(0) in ("fixed", "increment", "decrement", "randomize")
        assert values == [], f"{path.name} #{node['id']}: extra widget values {values}"
    links = {link["id"]: link for link in subgraph["links"]}
    assert len(links) == len(subgraph["links"]) and subgraph["state"]["lastLinkId"] == max(links)
    for link_id, link in links.items():
        if link["origin_id"] == INPUT_NODE:
            origin = subgraph["inputs"][link["origin_slot"]]
            assert link_id in origin["linkIds"] and origin["type"] == link["type"], link
        else:
            origin = nodes[link["origin_id"]]["outputs"][link["origin_slot"]]
            assert link_id in origin["links"] and origin["type"] == link["type"], link
        if link["target_id"] == OUTPUT_NODE:
            target = subgraph["outputs"][link["target_slot"]]
            assert target["linkIds"] == [link_id] and target["type"] == link["type"], link
        else:
            target = nodes[link["target_id"]]["inputs"][link["target_slot"]]
            assert target["link"] == link_id and target["type"] == link["type"], link
    listed = [i for node in nodes.values() for s in node["outputs"] for i in s["links"]]
    listed += [i for socket in subgraph["inputs"] for i in socket["linkIds"]]
    assert sorted(listed) == sorted(links)  # no dangling link id on either end
    for node in nodes.values():  # every required linked input is connected (no widget input is left dangling)
        required = schemas[node["type"]]["required"] if node["type"] in schemas else set()
        for socket in node["inputs"]:
            assert socket["link"] is not None or socket["name"] not in required, (path.name, node["id"], socket)
    for node_id, widget in root["properties"]["proxyWidgets"]:  # widgets shown on the subgraph node exist inside
        assert widget in [n for n, _ in _widget_specs(nodes[int(node_id)]["type"], schemas)], (node_id, widget)
