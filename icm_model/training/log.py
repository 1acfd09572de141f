"""The run's logs: CSV tables (loss per step, validation metrics) and the loss-curve PNG, drawn with PIL."""

from __future__ import annotations

import csv
import math
from collections.abc import Sequence
from pathlib import Path

from PIL import Image, ImageDraw

CURVE_SIZE = (800, 400)
_MARGIN = 50


class CsvLog:
    """A CSV file with a fixed header, one row per step; rows of steps after ``keep_until`` are dropped on open (a
    resumed run rewrites the steps it repeats)."""

    def __init__(self, path: Path, columns: Sequence[str], keep_until: int = 0) -> None:
        self.path, self.columns = path, list(columns)
        rows = []
        if keep_until > 0 and path.is_file():
            with path.open(newline="") as file:
                reader = csv.DictReader(file)
                if reader.fieldnames == self.columns:
                    rows = [row for row in reader if int(row["step"]) <= keep_until]
        with path.open("w", newline="") as file:
            writer = csv.DictWriter(file, self.columns)
            writer.writeheader()
            writer.writerows(rows)

    def append(self, row: dict[str, float | int | str]) -> None:
        with self.path.open("a", newline="") as file:
            csv.DictWriter(file, self.columns).writerow({key: _format(row.get(key, "")) for key in self.columns})

    def column(self, name: str) -> tuple[list[int], list[float]]:
        """(steps, values) of one column, empty cells left out."""
        with self.path.open(newline="") as file:
            pairs = [(int(row["step"]), float(row[name])) for row in csv.DictReader(file) if row[name] != ""]
        return [s for s, _ in pairs], [v for _, v in pairs]


def _format(value: float | int | str) -> str:
    return repr(value) if isinstance(value, float) else str(value)


def draw_curve(path: Path, steps: Sequence[int], values: Sequence[float], title: str) -> None:
    """A line plot of ``values`` over ``steps`` (log scale when every value is positive and they span > 10x)."""
    image = Image.new("RGB", CURVE_SIZE, "white")
    draw = ImageDraw.Draw(image)
    width, height = CURVE_SIZE
    left, top, right, bottom = _MARGIN + 20, _MARGIN // 2, width - _MARGIN // 2, height - _MARGIN
    draw.rectangle((left, top, right, bottom), outline="black")
    draw.text((left, 4), title, fill="black")
    finite = [(s, v) for s, v in zip(steps, values, strict=True) if math.isfinite(v)]
    if finite:
        low, high = min(v for _, v in finite), max(v for _, v in finite)
        logarithmic = low > 0 and high / low > 10
        scale = math.log10 if logarithmic else float

        def y_of(value: float) -> float:
            span = scale(high) - scale(low) or 1.0
            return bottom - (scale(value) - scale(low)) / span * (bottom - top)

        first, last = finite[0][0], finite[-1][0]
        points = [(left + (s - first) / ((last - first) or 1) * (right - left), y_of(v)) for s, v in finite]
        if len(points) > 1:
            draw.line(points, fill=(200, 30, 30), width=2)
        else:
            draw.ellipse((points[0][0] - 2, points[0][1] - 2, points[0][0] + 2, points[0][1] + 2), fill=(200, 30, 30))
        draw.text((4, top), f"{high:.4g}", fill="black")
        draw.text((4, bottom - 10), f"{low:.4g}", fill="black")
        draw.text((left, bottom + 6), f"step {first}", fill="black")
        draw.text((right - 80, bottom + 6), f"step {last}", fill="black")
        if logarithmic:
            draw.text((right - 80, 4), "log scale", fill="black")
    image.save(path)
