"""The ``marks`` JSON of the prompt editor (MARKS.md) and the KJNodes Points Editor JSON, in and out.

    {"version": 1, "image": {"width": 640, "height": 480},
     "points": [{"x": 120.5, "y": 88, "positive": true}],
     "scribbles": [{"points": [[10, 20], [14, 26]], "width": 12, "positive": false}],
     "boxes": [{"x": 40, "y": 30, "width": 200, "height": 150, "positive": true}]}

Every key but ``version`` is optional; ``""`` and ``"{}"`` mean no marks. Coordinates are pixels of the image the
marks were drawn on (``image``); on an image of another size with the same aspect ratio they are rescaled.
"""

from __future__ import annotations

import json
import math

from .marks import parse_points
from .prompt import Box, Point, ReferencePrompt, Scribble

MARKS_VERSION = 1
MARK_KEYS = {"version", "image", "points", "scribbles", "boxes"}
EXAMPLE = '{"version": 1, "points": [{"x": 120, "y": 88, "positive": true}]}'


def _number(value, where: str, name: str) -> float:
    if isinstance(value, bool) or not isinstance(value, (int, float)) or not math.isfinite(value):
        raise ValueError(f"{name}: {where} must be a number of pixels, got {value!r}")
    return float(value)


def _positive(item: dict, where: str, name: str) -> bool:
    value = item.get("positive", True)
    if not isinstance(value, bool):
        raise ValueError(f"{name}: {where}.positive must be true or false, got {value!r}")
    return value


def _items(data: dict, key: str, name: str) -> list:
    items = data.get(key, [])
    if not isinstance(items, list):
        raise ValueError(f"{name}: {key!r} must be a list, got {type(items).__name__}")
    return items


def _fields(item, where: str, keys: tuple[str, ...], name: str) -> list[float]:
    if not isinstance(item, dict) or not set(keys) <= item.keys():
        raise ValueError(f"{name}: {where} must be an object with {', '.join(keys)}, got {json.dumps(item)[:80]}")
    return [_number(item[k], f"{where}.{k}", name) for k in keys]


def parse_marks(text: str, height: int, width: int, name: str = "marks") -> ReferencePrompt:
    """The prompt of a ``marks`` JSON string on an image of ``height x width`` pixels (no mask).

    Raises:
        ValueError: naming ``name``, for malformed JSON, unknown keys, marks outside the image, boxes of zero size,
            scribbles without points or width, or an image of another aspect ratio than the marks were drawn on.
    """
    if not text or not text.strip():
        return ReferencePrompt(height, width)
    try:
        data = json.loads(text)
    except json.JSONDecodeError as error:
        raise ValueError(
            f"{name} is not valid JSON ({error.msg} at line {error.lineno} column {error.colno}); expected e.g. "
            f"{EXAMPLE}"
        ) from error
    if not isinstance(data, dict):
        raise ValueError(f"{name} must be a JSON object like {EXAMPLE}, got {type(data).__name__}")
    unknown = set(data) - MARK_KEYS
    if unknown:
        raise ValueError(f"{name} has unknown keys {sorted(unknown)}: use {sorted(MARK_KEYS)}")
    if data.get("version", MARKS_VERSION) != MARKS_VERSION:
        raise ValueError(f"{name} has version {data['version']!r}; this pack reads version {MARKS_VERSION}")
    drawn_height, drawn_width = height, width
    if data.get("image") is not None:
        drawn_width, drawn_height = (round(v) for v in _fields(data["image"], "image", ("width", "height"), name))
    points = []
    for i, item in enumerate(_items(data, "points", name)):
        x, y = _fields(item, f"points[{i}]", ("x", "y"), name)
        points.append(Point(x, y, _positive(item, f"points[{i}]", name)))
    scribbles = []
    for i, item in enumerate(_items(data, "scribbles", name)):
        where = f"scribbles[{i}]"
        (stroke_width,) = _fields(item, where, ("width",), name)
        vertices = item.get("points")
        if not isinstance(vertices, list) or not vertices:
            raise ValueError(f"{name}: {where}.points must be a non-empty list of [x, y] pairs")
        pairs = []
        for j, vertex in enumerate(vertices):
            if not isinstance(vertex, list) or len(vertex) != 2:
                raise ValueError(f"{name}: {where}.points[{j}] must be an [x, y] pair, got {vertex!r}")
            pairs.append(tuple(_number(v, f"{where}.points[{j}]", name) for v in vertex))
        scribbles.append(Scribble(tuple(pairs), stroke_width, _positive(item, where, name)))
    boxes = []
    for i, item in enumerate(_items(data, "boxes", name)):
        x, y, box_width, box_height = _fields(item, f"boxes[{i}]", ("x", "y", "width", "height"), name)
        boxes.append(Box(x, y, box_width, box_height, _positive(item, f"boxes[{i}]", name)))
    drawn = ReferencePrompt(drawn_height, drawn_width, None, points, scribbles, boxes)
    return drawn.scaled(height, width, name)


def _rounded(value: float) -> float | int:
    return int(value) if float(value).is_integer() else round(value, 2)


def marks_json(prompt: ReferencePrompt) -> str:
    """The ``marks`` JSON of a prompt's points, scribbles and boxes (the mask is not part of it)."""
    data: dict = {"version": MARKS_VERSION, "image": {"width": prompt.width, "height": prompt.height}}
    if prompt.points:
        data["points"] = [{"x": _rounded(p.x), "y": _rounded(p.y), "positive": p.positive} for p in prompt.points]
    if prompt.scribbles:
        data["scribbles"] = [
            {"points": [[_rounded(x), _rounded(y)] for x, y in s.points], "width": _rounded(s.width),
             "positive": s.positive}
            for s in prompt.scribbles
        ]  # fmt: skip
    if prompt.boxes:
        data["boxes"] = [
            {"x": _rounded(b.x), "y": _rounded(b.y), "width": _rounded(b.width), "height": _rounded(b.height),
             "positive": b.positive}
            for b in prompt.boxes
        ]  # fmt: skip
    return json.dumps(data)


def points_from_kjnodes(text: str, positive: bool, name: str) -> list[Point]:
    """Points from KJNodes Points Editor JSON (``[{"x": 10, "y": 20}, ...]``), all of one sign."""
    return [Point(x, y, positive) for x, y in parse_points(text, name)]


def kjnodes_points(prompt: ReferencePrompt, positive: bool) -> str:
    """KJNodes Points Editor JSON of the prompt's positive or negative points (integer pixels, as it writes)."""
    return json.dumps([{"x": round(p.x), "y": round(p.y)} for p in prompt.points if p.positive == positive])
