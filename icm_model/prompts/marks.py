"""Reference prompts other than masks: points (KJNodes Points Editor JSON) and boxes, drawn as RoI masks."""

from __future__ import annotations

import torch

from .json_input import MISSING, is_number, load_json, shown
from .marks_format import EXAMPLES


def parse_points(text: str, name: str, height: int, width: int) -> list[tuple[float, float]]:
    """Pixel coordinates from ``[{"x": 10, "y": 20}, ...]`` (KJNodes Points Editor, as SAM-style point prompts) or
    ``[[10, 20], ...]`` on an image of ``height x width`` pixels; an empty string means no points.

    Raises:
        ValueError: naming ``name``, for malformed JSON or points that are not pairs of finite numbers, and for points
            all within 0..1 on an image larger than 2 x 2 pixels: normalised coordinates, which every node of this
            pack refuses rather than reading them as pixels at the top-left corner.
    """
    if not text or not text.strip():
        return []
    example = EXAMPLES["kjnodes_points"]
    data = load_json(text, name, example)
    if isinstance(data, dict):
        data = [data]
    points = []
    for i, item in enumerate(data if isinstance(data, list) else [None]):
        x, y = (item.get("x", MISSING), item.get("y", MISSING)) if isinstance(item, dict) else (None, None)
        if isinstance(item, list) and len(item) == 2:
            x, y = item
        if not (is_number(x) and is_number(y)):
            raise ValueError(f'{name}[{i}] must be a point like {{"x": 10, "y": 20}} (pixels), got {shown(item)}')
        points.append((x, y))
    if points and max(width, height) > 2 and all(0 <= x <= 1 and 0 <= y <= 1 for x, y in points):
        raise ValueError(
            f"{name} are all within 0..1: they look like normalized coordinates, but they must be pixels of the "
            f"{width}x{height} image (multiply x by {width} and y by {height})"
        )
    return points


def points_mask(
    height: int, width: int, positive: list[tuple[float, float]], negative: list[tuple[float, float]], radius: float
) -> torch.Tensor:
    """``[H, W]`` mask: discs of ``radius`` pixels around the positive points, minus those around the negative."""
    ys = torch.arange(height, dtype=torch.float32).view(-1, 1)
    xs = torch.arange(width, dtype=torch.float32).view(1, -1)

    def discs(points: list[tuple[float, float]]) -> torch.Tensor:
        mask = torch.zeros(height, width, dtype=torch.bool)
        for x, y in points:
            mask |= (xs - x) ** 2 + (ys - y) ** 2 <= radius**2
        return mask

    return (discs(positive) & ~discs(negative)).float()


def box_mask(height: int, width: int, x: int, y: int, box_width: int, box_height: int) -> torch.Tensor:
    """``[H, W]`` mask of the box with top-left ``(x, y)``, clipped to the image."""
    mask = torch.zeros(height, width)
    mask[max(0, y) : max(0, y + box_height), max(0, x) : max(0, x + box_width)] = 1.0
    return mask
