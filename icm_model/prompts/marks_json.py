"""The ``marks`` JSON of the prompt editor (docs/MARKS.md) and the KJNodes Points Editor JSON, in and out.

    {"version": 1, "image": {"width": 640, "height": 480, "fingerprint": "<128 hex digits>"},
     "points": [{"x": 120.5, "y": 88, "positive": true}],
     "scribbles": [{"points": [[10, 20], [14, 26]], "width": 12, "positive": false}],
     "boxes": [{"x": 40, "y": 30, "width": 200, "height": 150, "positive": true}]}

Every key is optional; ``""`` and ``"{}"`` mean no marks. Coordinates are pixels of the image the marks were drawn on
(``image``); on an image of another size with the same aspect ratio they are rescaled. The editor
(``web/js/editor/marks.js``) reads the same rules from the same ``marks_format.json``, and both are tested on the
cases of ``tests/fixtures/marks_cases.json``.
"""

from __future__ import annotations

import itertools
import json
import math
from dataclasses import dataclass, field

import numpy as np

from .fingerprint import FINGERPRINT_DIGITS, fingerprint_difference, same_picture
from .json_input import MISSING, is_number, load_json, shown
from .marks import parse_points
from .marks_format import (
    ASPECT_ROUNDING,
    DECIMALS,
    EDGE_TOLERANCE,
    EXAMPLES,
    KEYS,
    MARKS_VERSION,
    MAX_MEAN_DIFFERENCE,
    MIN_CORRELATION,
)
from .prompt import Box, Point, ReferencePrompt, Scribble

_HEX = set("0123456789abcdef")


@dataclass
class DrawnMarks:
    """The marks as written, in pixels of the image they were drawn on (``size`` ``(width, height)``, if given)."""

    size: tuple[float, float] | None = None
    fingerprint: str | None = None
    points: list[Point] = field(default_factory=list)
    scribbles: list[Scribble] = field(default_factory=list)
    boxes: list[Box] = field(default_factory=list)


def _object(item, kind: str, where: str, name: str) -> dict:
    if not isinstance(item, dict):
        raise ValueError(f"{name}: {where} must be a JSON object like {EXAMPLES[kind]}, got {shown(item)}")
    unknown = sorted(set(item) - set(KEYS[kind]))
    if unknown:
        listed = ", ".join(json.dumps(key) for key in unknown)
        raise ValueError(f"{name}: unknown keys {listed} in {where}: the keys are {', '.join(KEYS[kind])}")
    return item


def _number(item: dict, key: str, where: str, name: str) -> float:
    value = item.get(key, MISSING)
    if not is_number(value):
        raise ValueError(f"{name}: {where}.{key} must be a finite number, got {shown(value)}")
    return value


def _positive(item: dict, where: str, name: str) -> bool:
    value = item.get("positive", True)
    if not isinstance(value, bool):
        raise ValueError(f"{name}: {where}.positive must be true or false, got {shown(value)}")
    return value


def _list(data: dict, key: str, name: str) -> list:
    items = data.get(key, [])
    if not isinstance(items, list):
        raise ValueError(f"{name}: {key} must be a list, got {shown(items)}")
    return items


def _image(data: dict, name: str) -> tuple[tuple[float, float] | None, str | None]:
    image = data.get("image")
    if image is None:
        return None, None
    image = _object(image, "image", "image", name)
    size = []
    for key in ("width", "height"):
        value = _number(image, key, "image", name)
        if not (value >= 1 and value.is_integer()):
            raise ValueError(f"{name}: image.{key} must be a whole number of pixels, at least 1, got {shown(value)}")
        size.append(value)
    fingerprint = image.get("fingerprint")
    if fingerprint is not None and not (
        isinstance(fingerprint, str) and len(fingerprint) == FINGERPRINT_DIGITS and set(fingerprint) <= _HEX
    ):
        raise ValueError(
            f"{name}: image.fingerprint must be {FINGERPRINT_DIGITS} lowercase hexadecimal digits (the editor writes "
            f"it), got {shown(fingerprint)}: delete it to use the marks without it"
        )
    return (size[0], size[1]), fingerprint


def _scribble(item, where: str, name: str) -> Scribble:
    item = _object(item, "scribble", where, name)
    width = _number(item, "width", where, name)
    if width <= 0:
        raise ValueError(f"{name}: {where}.width must be above 0 pixels, got {shown(width)}")
    vertices = item.get("points", MISSING)
    if not isinstance(vertices, list) or not vertices:
        raise ValueError(f"{name}: {where}.points must be a non-empty list of [x, y] pairs, got {shown(vertices)}")
    if not _all_pairs(vertices):
        j, vertex = next((j, v) for j, v in enumerate(vertices) if not _all_pairs([v]))
        raise ValueError(f"{name}: {where}.points[{j}] must be an [x, y] pair of finite numbers, got {shown(vertex)}")
    return Scribble(tuple(map(tuple, vertices)), width, _positive(item, where, name))


def _all_pairs(vertices: list) -> bool:
    """Whether every vertex is a list of two finite numbers (checked at C speed: scribbles have 100 000s)."""
    if set(map(type, vertices)) != {list} or set(map(len, vertices)) != {2}:
        return False
    return set(map(type, itertools.chain.from_iterable(vertices))) == {float} and bool(np.isfinite(vertices).all())


def _box(item, where: str, name: str) -> Box:
    item = _object(item, "box", where, name)
    x, y, width, height = (_number(item, key, where, name) for key in ("x", "y", "width", "height"))
    if not (width > 0 and height > 0):
        raise ValueError(
            f"{name}: {where} is {shown(width)}x{shown(height)} pixels: a box needs a width and a height above 0"
        )
    return Box(x, y, width, height, _positive(item, where, name))


def read_marks(text: str, name: str = "marks") -> DrawnMarks:
    """The marks of a ``marks`` JSON string as written (checked for form, not yet against an image).

    Raises:
        ValueError: naming ``name``: deep nesting, malformed JSON, a version other than 1, unknown keys, values that
            are not finite numbers (booleans included), images, scribble widths or boxes without a size, scribbles
            without points.
    """
    if not text or not text.strip():
        return DrawnMarks()
    data = load_json(text, name, EXAMPLES["marks"])
    data = _object(data, "marks", "the marks", name)
    version = data.get("version", float(MARKS_VERSION))
    if not (is_number(version) and version == MARKS_VERSION):
        raise ValueError(f"{name}: version must be {MARKS_VERSION} (the version this pack reads), got {shown(version)}")
    size, fingerprint = _image(data, name)
    points = []
    for i, item in enumerate(_list(data, "points", name)):
        item = _object(item, "point", f"points[{i}]", name)
        x, y = _number(item, "x", f"points[{i}]", name), _number(item, "y", f"points[{i}]", name)
        points.append(Point(x, y, _positive(item, f"points[{i}]", name)))
    scribbles = [_scribble(item, f"scribbles[{i}]", name) for i, item in enumerate(_list(data, "scribbles", name))]
    boxes = [_box(item, f"boxes[{i}]", name) for i, item in enumerate(_list(data, "boxes", name))]
    return DrawnMarks(size, fingerprint, points, scribbles, boxes)


def same_aspect_ratio(drawn: tuple[float, float], size: tuple[float, float]) -> bool:
    """Whether images of ``(width, height)`` ``drawn`` and ``size`` show one picture: resizing the larger to the
    smaller's size is exact up to ``ASPECT_ROUNDING`` pixels on each side, |w0 h - h0 w| <= a (w + h) of the larger."""
    (w0, h0), (w, h) = drawn, size
    return abs(w0 * h - h0 * w) <= ASPECT_ROUNDING * max(w0 + h0, w + h)


def _check_inside(marks: DrawnMarks, width: float, height: float, name: str) -> None:
    """Every coordinate within ``EDGE_TOLERANCE`` of the ``width x height`` image the marks were drawn on."""
    low, high = -EDGE_TOLERANCE, np.array([width, height]) + EDGE_TOLERANCE
    corners = [(f"points[{i}]", [(p.x, p.y)]) for i, p in enumerate(marks.points)]
    corners += [(f"scribbles[{i}]", s.points) for i, s in enumerate(marks.scribbles)]
    corners += [(f"boxes[{i}]", [(b.x, b.y), (b.x + b.width, b.y + b.height)]) for i, b in enumerate(marks.boxes)]
    for what, pairs in corners:
        xy = np.asarray(pairs, dtype=np.float64)
        outside = ((xy < low) | (xy > high)).any(axis=1)
        if outside.any():
            x, y = pairs[int(outside.argmax())]
            raise ValueError(
                f"{name}: {what} at ({shown(x)}, {shown(y)}) lies outside the {shown(width)}x{shown(height)} image: "
                "marks must lie on the image they were drawn on"
            )


def _check_picture(marks: DrawnMarks, fingerprint: str | None, name: str) -> None:
    if marks.fingerprint is None or fingerprint is None or same_picture(marks.fingerprint, fingerprint):
        return
    mean_difference, correlation = fingerprint_difference(marks.fingerprint, fingerprint)
    raise ValueError(
        f"{name}: drawn on another picture (its 8x8 grey thumbnail differs from this image's by {mean_difference:.0f} "
        f"grey levels on average, above {shown(MAX_MEAN_DIFFERENCE)}, and correlates {correlation:.2f}, below "
        f"{shown(MIN_CORRELATION)}): clear the marks and mark this image, or delete image.fingerprint from the marks "
        "to use them on it anyway"
    )


def on_image(marks: DrawnMarks, height: int, width: int, name: str = "marks", fingerprint: str | None = None):
    """The marks on an image of ``height x width`` pixels whose fingerprint is ``fingerprint`` (None: unknown).

    Marks are rescaled from the image they were drawn on (``x * width / w0``, scribble widths by the geometric mean
    of the two scales) and snapped onto the image when float rounding put them up to ``EDGE_TOLERANCE`` off it.

    Raises:
        ValueError: naming ``name``: marks outside the image they were drawn on, an image of another aspect ratio or
            (by the fingerprints) another picture.
    """
    w0, h0 = marks.size or (width, height)
    _check_inside(marks, w0, h0, name)
    if (w0, h0) != (width, height) and not same_aspect_ratio((w0, h0), (width, height)):
        raise ValueError(
            f"{name}: drawn on a {shown(w0)}x{shown(h0)} image but the image is {width}x{height}, another aspect "
            "ratio: redraw the marks on this image"
        )
    _check_picture(marks, fingerprint, name)
    stroke = math.sqrt((width / w0) * (height / h0))

    def on_it(pairs) -> np.ndarray:
        """``[N, 2]`` pixel pairs rescaled (``x * width / w0``: exact at the far edge) and clamped onto the image."""
        xy = np.asarray(pairs, dtype=np.float64).reshape(-1, 2) * np.array([width, height]) / np.array([w0, h0])
        return np.minimum(np.maximum(xy, 0.0), np.array([width, height]))

    def box(b: Box) -> Box:
        (x, y), (bw, bh) = on_it([(b.x, b.y)])[0], np.array([b.width, b.height]) * (width, height) / np.array([w0, h0])
        return Box(float(x), float(y), float(min(bw, width - x)), float(min(bh, height - y)), b.positive)

    points = [Point(*map(float, on_it([(p.x, p.y)])[0]), p.positive) for p in marks.points]
    scribbles = [
        Scribble(tuple(map(tuple, on_it(s.points).tolist())), s.width * stroke, s.positive) for s in marks.scribbles
    ]
    return ReferencePrompt(height, width, None, points, scribbles, [box(b) for b in marks.boxes])


def parse_marks(
    text: str, height: int, width: int, name: str = "marks", fingerprint: str | None = None
) -> ReferencePrompt:
    """The prompt of a ``marks`` JSON string on an image of ``height x width`` pixels (no mask): :func:`read_marks`
    then :func:`on_image`. ``fingerprint``: the image's (:func:`~.fingerprint.picture_fingerprint`), to refuse marks
    drawn on another picture."""
    return on_image(read_marks(text, name), height, width, name, fingerprint)


def _rounded(value: float) -> float | int:
    return int(value) if float(value).is_integer() else round(value, DECIMALS)


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


def points_from_kjnodes(text: str, positive: bool, name: str, height: int, width: int) -> list[Point]:
    """Points from KJNodes Points Editor JSON (``[{"x": 10, "y": 20}, ...]``) on a ``height x width`` image, all of
    one sign."""
    return [Point(x, y, positive) for x, y in parse_points(text, name, height, width)]


def kjnodes_points(prompt: ReferencePrompt, positive: bool) -> str:
    """KJNodes Points Editor JSON of the prompt's positive or negative points (integer pixels, as it writes)."""
    return json.dumps([{"x": round(p.x), "y": round(p.y)} for p in prompt.points if p.positive == positive])
