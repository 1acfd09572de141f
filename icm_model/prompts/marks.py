"""Reference prompts other than masks: points (KJNodes Points Editor JSON) and boxes, drawn as RoI masks."""

from __future__ import annotations

import json

import torch


def parse_points(text: str, name: str) -> list[tuple[float, float]]:
    """Pixel coordinates from ``[{"x": 10, "y": 20}, ...]`` (KJNodes Points Editor, as SAM-style point prompts) or
    ``[[10, 20], ...]``; an empty string means no points."""
    if not text or not text.strip():
        return []
    try:
        data = json.loads(text)
    except json.JSONDecodeError as error:
        raise ValueError(f'{name} is not valid JSON ({error.msg}); expected [{{"x": 10, "y": 20}}, ...]') from error
    if isinstance(data, dict):
        data = [data]
    points = []
    for item in data if isinstance(data, list) else [None]:
        if isinstance(item, dict) and {"x", "y"} <= item.keys():
            points.append((float(item["x"]), float(item["y"])))
        elif isinstance(item, (list, tuple)) and len(item) == 2:
            points.append((float(item[0]), float(item[1])))
        else:
            raise ValueError(f'{name} must be a list of points like [{{"x": 10, "y": 20}}, ...], got {text[:80]!r}')
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
