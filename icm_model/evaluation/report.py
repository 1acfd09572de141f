"""The evaluation's outputs: CSV and Markdown tables, the report, and a contact sheet of the worst images."""

from __future__ import annotations

import csv
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np
from PIL import Image, ImageDraw, ImageFont

from ..image_io import load_image, load_mask, thumbnail
from ..validation import InputError
from .evaluate import METRIC_NAMES, PANEL_SIZE, EvaluationPlan, EvaluationSettings, ImageResult

SHEET_GAP = 4
SHEET_LABEL_HEIGHT = 16
SHEET_COLUMNS = ("image", "ground truth", "prediction")


# --- tables -----------------------------------------------------------------------------------------------------


def format_value(value: str | int | float) -> str:
    """A table cell for people: floats with 4 significant digits, anything else as is."""
    return f"{value:.4g}" if isinstance(value, float) else str(value)


def markdown_table(headers: Sequence[str], rows: Iterable[Sequence[str | int | float]]) -> str:
    """A GitHub-flavoured Markdown table (``|`` in cells escaped, floats via :func:`format_value`)."""

    def line(cells: Iterable[str | int | float]) -> str:
        return "| " + " | ".join(format_value(cell).replace("|", "\\|") for cell in cells) + " |"

    return "\n".join([line(headers), "|" + "---|" * len(headers), *(line(row) for row in rows)])


@dataclass(frozen=True)
class Table:
    """Rows of cells under headers; CSV keeps floats at full precision, Markdown rounds them."""

    headers: tuple[str, ...]
    rows: tuple[tuple[str | int | float, ...], ...]

    def write_csv(self, path: Path) -> None:
        with path.open("w", newline="", encoding="utf-8") as file:
            writer = csv.writer(file)
            writer.writerow(self.headers)
            writer.writerows(self.rows)

    def markdown(self) -> str:
        return markdown_table(self.headers, self.rows)


def _means(results: Sequence[ImageResult]) -> tuple[float, ...]:
    return tuple(float(np.mean([getattr(r.metrics, name) for r in results])) for name in METRIC_NAMES)


def _joined(names: Iterable[str]) -> str:
    return " ".join(names)


def per_image_table(results: Sequence[ImageResult]) -> Table:
    """One row per target: image, group, references, region, width, height and the four metrics."""
    headers = ("image", "group", "references", "region", "width", "height", *METRIC_NAMES)
    rows = tuple(
        (
            r.sample.name,
            r.sample.group,
            _joined(r.references),
            r.region,
            r.width,
            r.height,
            *r.metrics.as_dict().values(),
        )
        for r in results
    )
    return Table(headers, rows)


def per_group_table(plan: EvaluationPlan, results: Sequence[ImageResult]) -> Table:
    """One row per evaluated group: image and target counts, references, and the means over its targets."""
    rows = []
    for group in plan.groups:
        members = [r for r in results if r.sample.group == group.name]
        images = len(group.references) + len(group.targets)
        rows.append((group.name, images, len(members), _joined(group.reference_names), *_means(members)))
    return Table(("group", "images", "targets", "references", *METRIC_NAMES), tuple(rows))


def overall_table(plan: EvaluationPlan, results: Sequence[ImageResult]) -> Table:
    """One row: groups evaluated and skipped, targets, and the means over every target."""
    row = (len(plan.groups), len(plan.skipped), len(results), *_means(results))
    return Table(("groups", "skipped_groups", "targets", *METRIC_NAMES), (row,))


# --- the contact sheet ------------------------------------------------------------------------------------------


def worst_results(results: Sequence[ImageResult], count: int) -> list[ImageResult]:
    """The ``count`` results of highest SAD, worst first (ties by image name)."""
    return sorted(results, key=lambda r: (-r.metrics.sad, r.sample.name))[:count]


def contact_sheet(results: Sequence[ImageResult]) -> Image.Image:
    """RGB sheet: a header row, then per result a label (rank, name, group, SAD) over image | ground truth | prediction.

    Size, with ``(panel_width, panel_height) = PANEL_SIZE``: ``3 * panel_width + 4 * SHEET_GAP`` wide,
    ``2 * SHEET_GAP + SHEET_LABEL_HEIGHT + len(results) * (SHEET_LABEL_HEIGHT + panel_height + SHEET_GAP)`` high.
    """
    panel_width, panel_height = PANEL_SIZE
    row_height = SHEET_LABEL_HEIGHT + panel_height + SHEET_GAP
    width = len(SHEET_COLUMNS) * panel_width + (len(SHEET_COLUMNS) + 1) * SHEET_GAP
    height = SHEET_GAP + SHEET_LABEL_HEIGHT + SHEET_GAP + len(results) * row_height
    sheet = Image.new("RGB", (width, height), (0, 0, 0))
    draw = ImageDraw.Draw(sheet)
    font = ImageFont.load_default()
    for column, title in enumerate(SHEET_COLUMNS):
        draw.text((SHEET_GAP + column * (panel_width + SHEET_GAP), SHEET_GAP), title, fill=(200, 200, 200), font=font)
    for rank, result in enumerate(results):
        top = SHEET_GAP + SHEET_LABEL_HEIGHT + SHEET_GAP + rank * row_height
        label = f"{rank + 1}. {result.sample.name} [{result.sample.group}]  SAD {format_value(result.metrics.sad)}"
        draw.text((SHEET_GAP, top), label, fill=(255, 255, 255), font=font)
        panels = (
            thumbnail(load_image(result.sample.image, "image")[0], PANEL_SIZE),
            thumbnail(load_mask(result.sample.alpha, "alpha")[0], PANEL_SIZE),
            result.preview,
        )
        for column, panel in enumerate(panels):
            sheet.paste(panel, (SHEET_GAP + column * (panel_width + SHEET_GAP), top + SHEET_LABEL_HEIGHT))
    return sheet


# --- the output folder ------------------------------------------------------------------------------------------


def write_outputs(
    out: Path,
    plan: EvaluationPlan,
    results: Sequence[ImageResult],
    settings: EvaluationSettings,
    details: Mapping[str, str],
    worst: int,
) -> list[Path]:
    """Writes ``per_image.csv``, ``per_group.csv``, ``overall.csv``, ``report.md`` and (``worst`` > 0) ``worst.png``.

    ``details`` (dataset, checkpoint, device, ...) go into the report's settings table with ``settings``.
    Returns the paths written.
    """
    if worst < 0:
        raise InputError(f"worst must be 0 (no contact sheet) or more, got {worst}")
    out.mkdir(parents=True, exist_ok=True)
    tables = {
        "overall": overall_table(plan, results),
        "per_group": per_group_table(plan, results),
        "per_image": per_image_table(results),
    }
    written = []
    for name, table in tables.items():
        written.append(out / f"{name}.csv")
        table.write_csv(written[-1])
    worst_images = worst_results(results, worst)
    if worst_images:
        written.append(out / "worst.png")
        contact_sheet(worst_images).save(written[-1])
    written.append(out / "report.md")
    written[-1].write_text(_report(plan, results, settings, details, tables, len(worst_images)), encoding="utf-8")
    return written


def _report(
    plan: EvaluationPlan,
    results: Sequence[ImageResult],
    settings: EvaluationSettings,
    details: Mapping[str, str],
    tables: Mapping[str, Table],
    worst: int,
) -> str:
    setting_rows = [
        *details.items(),
        ("timestep", settings.timestep),
        ("ensemble", settings.ensemble),
        ("seed", settings.seed),
        ("references", f"{settings.references} per group (at most group size - 1)"),
    ]
    with_trimap = sum(r.sample.trimap is not None for r in results)
    parts = [
        "# IconMatting evaluation",
        markdown_table(("setting", "value"), setting_rows),
        "SAD, Grad and Conn are divided by 1000, MSE is not (paper section 4.2). "
        f"{with_trimap} of {len(results)} targets are measured over their trimap's unknown region, the others over "
        "the whole image (column `region`). Per-group and overall values are means over target images; the overall "
        "mean weighs every target once.",
    ]
    if plan.skipped:
        skipped = ", ".join(f"`{name}`" for name in plan.skipped)
        parts.append(
            f"**Warning**: skipped {len(plan.skipped)} single-image group(s), with no image to serve as reference: "
            f"{skipped}."
        )
    parts += [
        "## Overall",
        tables["overall"].markdown(),
        "## Per group",
        tables["per_group"].markdown(),
        "## Per image",
        tables["per_image"].markdown(),
    ]
    if worst:
        parts += [f"## The {worst} worst images by SAD", "![image | ground truth | prediction](worst.png)"]
    return "\n\n".join(parts) + "\n"
