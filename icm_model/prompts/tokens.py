"""From a reference prompt to the RoI tokens of the correspondence grid, and the reference-prompt extension (§3.6).

Geometry is exact and in pixels of the marked image: the cell of token ``(i, j)`` is mapped back through the
letterbox (:class:`icm_model.geometry.Letterbox`) to a rectangle of the image, so any size and aspect ratio works.

- mask: cells entirely inside the mask (> 0.5), as in the official code (min-pooling of the letterboxed mask);
- positive boxes: cells entirely inside the box (the official rule for dense prompts);
- points: a disc of radius half a cell (:func:`point_radius`); a point selects every cell the disc overlaps
  (1 cell at a cell's centre, up to 4 near a corner);
- scribbles: a stroke ``width`` pixels wide along the polyline; it selects every cell it overlaps;
- negative marks remove every cell they overlap (negative boxes too: anything partly inside goes).
"""

from __future__ import annotations

from dataclasses import dataclass

import torch

from ..decoder.similarity import roi_token_mask
from ..geometry import Letterbox
from .prompt import ReferencePrompt


@dataclass
class PromptTokens:
    """Tokens ``[h, w]`` bool of the correspondence grid that a prompt marks.

    Attributes:
        positive: every token the positive marks select (mask, boxes, points, scribbles).
        sparse: the positive tokens of points and scribbles (what the reference-prompt extension grows).
        negative: every token a negative mark touches.
        negative_sparse: the negative tokens of points and scribbles (their extension is removed too).
        content: tokens whose cell overlaps the image (not only the letterbox padding).
    """

    positive: torch.Tensor
    sparse: torch.Tensor
    negative: torch.Tensor
    negative_sparse: torch.Tensor
    content: torch.Tensor


@dataclass
class TokenSelection:
    """The query tokens ``[h, w]`` bool of one reference: ``prompt`` (marked) and ``extension`` (added by §3.6)."""

    prompt: torch.Tensor
    extension: torch.Tensor

    @property
    def query(self) -> torch.Tensor:
        return self.prompt | self.extension


def cell_rectangles(box: Letterbox, grid: int) -> torch.Tensor:
    """``[grid, grid, 4]`` float64 ``(x0, y0, x1, y1)``: each token's cell in pixels of the original image."""
    step = box.size / grid
    edges = torch.arange(grid + 1, dtype=torch.float64) * step
    xs = (edges - box.left) * (box.width / box.content_width)
    ys = (edges - box.top) * (box.height / box.content_height)
    x0, x1 = xs[:-1].view(1, -1).expand(grid, grid), xs[1:].view(1, -1).expand(grid, grid)
    y0, y1 = ys[:-1].view(-1, 1).expand(grid, grid), ys[1:].view(-1, 1).expand(grid, grid)
    return torch.stack([x0, y0, x1, y1], dim=-1)


def point_radius(box: Letterbox, grid: int) -> float:
    """Radius of a clicked point in image pixels: half a token cell (the narrower side, when the letterbox's
    rounding makes cells a little anisotropic)."""
    return 0.5 * (box.size / grid) * min(box.width / box.content_width, box.height / box.content_height)


def _point_to_rect(px: float, py: float, rects: torch.Tensor) -> torch.Tensor:
    dx = torch.clamp(torch.maximum(rects[..., 0] - px, px - rects[..., 2]), min=0)
    dy = torch.clamp(torch.maximum(rects[..., 1] - py, py - rects[..., 3]), min=0)
    return torch.hypot(dx, dy)


def _corner_to_segment(cx: torch.Tensor, cy: torch.Tensor, a: tuple[float, float], b: tuple[float, float]):
    (ax, ay), (bx, by) = a, b
    vx, vy = bx - ax, by - ay
    length = vx * vx + vy * vy
    t = ((cx - ax) * vx + (cy - ay) * vy) / length if length > 0 else torch.zeros_like(cx)
    t = t.clamp(0, 1)
    return torch.hypot(cx - (ax + t * vx), cy - (ay + t * vy))


def segment_touches(rects: torch.Tensor, a: tuple[float, float], b: tuple[float, float], radius: float) -> torch.Tensor:
    """Whether the stroke of ``radius`` around segment ``a``-``b`` overlaps each rectangle ``[..., 4]``.

    Exact: the segment and a rectangle intersect unless an axis (x, y or the segment's normal) separates them;
    otherwise their distance is attained at a vertex of one and the other shape.
    """
    (ax, ay), (bx, by) = a, b
    x0, y0, x1, y1 = rects.unbind(-1)
    separated = (max(ax, bx) < x0) | (min(ax, bx) > x1) | (max(ay, by) < y0) | (min(ay, by) > y1)
    nx, ny = ay - by, bx - ax
    sides = torch.stack([nx * (cx - ax) + ny * (cy - ay) for cx in (x0, x1) for cy in (y0, y1)])
    separated |= (sides > 0).all(0) | (sides < 0).all(0)
    distance = torch.minimum(_point_to_rect(ax, ay, rects), _point_to_rect(bx, by, rects))
    for cx in (x0, x1):
        for cy in (y0, y1):
            distance = torch.minimum(distance, _corner_to_segment(cx, cy, a, b))
    return ~separated | (distance < radius * (1 - 1e-9))  # a point at a cell's centre misses its neighbours


def _segments(points: tuple[tuple[float, float], ...]):
    if len(points) == 1:
        yield points[0], points[0]
    yield from zip(points[:-1], points[1:], strict=True)


def prompt_tokens(prompt: ReferencePrompt, box: Letterbox, grid: int) -> PromptTokens:
    """The tokens of the ``grid x grid`` correspondence grid that ``prompt`` (on the letterboxed image) marks."""
    rects = cell_rectangles(box, grid)
    empty = torch.zeros(grid, grid, dtype=torch.bool)
    marked = {(kind, sign): empty.clone() for kind in ("dense", "sparse") for sign in (True, False)}
    if prompt.mask is not None and (prompt.mask > 0.5).any():
        marked["dense", True] |= roi_token_mask(box.mask(prompt.mask[None].float()), (grid, grid), "inside")[0]
    x0, y0, x1, y1 = rects.unbind(-1)
    for b in prompt.boxes:
        bx1, by1 = b.x + b.width, b.y + b.height
        if b.positive:
            eps = 1e-6  # pixels: a box drawn on cell borders holds those cells despite rounding
            marked["dense", True] |= (x0 >= b.x - eps) & (x1 <= bx1 + eps) & (y0 >= b.y - eps) & (y1 <= by1 + eps)
        else:
            marked["dense", False] |= (x0 < bx1) & (x1 > b.x) & (y0 < by1) & (y1 > b.y)
    radius = point_radius(box, grid)
    for point in prompt.points:
        marked["sparse", point.positive] |= segment_touches(rects, (point.x, point.y), (point.x, point.y), radius)
    for scribble in prompt.scribbles:
        for a, b in _segments(scribble.points):
            marked["sparse", scribble.positive] |= segment_touches(rects, a, b, scribble.width / 2)
    content = (x0 < box.width) & (x1 > 0) & (y0 < box.height) & (y1 > 0)
    return PromptTokens(
        positive=marked["dense", True] | marked["sparse", True],
        sparse=marked["sparse", True],
        negative=marked["dense", False] | marked["sparse", False],
        negative_sparse=marked["sparse", False],
        content=content,
    )


def extension_tokens(tokens: torch.Tensor, attention: torch.Tensor, top_m: int, candidates: torch.Tensor):
    """The reference-prompt extension: for each marked token, the ``top_m`` other tokens it attends to most.

    Args:
        tokens: ``[h, w]`` bool, the marked tokens to extend.
        attention: the reference's self-attention on the grid ``[h*w, h*w]``; row ``p`` is what token ``p`` attends
            to (rows sum to 1).
        top_m: tokens added per marked token (0 = none).
        candidates: ``[h, w]`` bool, the tokens that may be added (those on the image, not on the padding).

    Returns:
        ``[h, w]`` bool: the union over marked tokens of their ``top_m`` tokens (a token is never its own pick; the
        picks may include other marked tokens).
    """
    extension = torch.zeros(tokens.numel(), dtype=torch.bool)
    marked = tokens.flatten().nonzero().flatten()
    if top_m <= 0 or marked.numel() == 0:
        return extension.view_as(tokens)
    scores = attention.float().cpu()[marked].clone()
    scores[:, ~candidates.flatten()] = float("-inf")
    scores[torch.arange(marked.numel()), marked] = float("-inf")
    available = int(candidates.sum()) - 1
    if available > 0:
        picks = scores.topk(min(top_m, available), dim=-1)
        extension[picks.indices[torch.isfinite(picks.values)]] = True
    return extension.view_as(tokens)


def select_tokens(tokens: PromptTokens, attention: torch.Tensor | None, top_m: int) -> TokenSelection:
    """The query tokens of one reference: the positive marks and their extension, minus the negative marks and
    their extension (negatives never enter the query). ``attention`` may be None when ``top_m`` is 0 or no point or
    scribble is marked."""
    removed = tokens.negative.clone()
    extension = torch.zeros_like(tokens.positive)
    if top_m > 0 and (tokens.sparse.any() or tokens.negative_sparse.any()):
        if attention is None:
            raise ValueError("the reference-prompt extension needs the reference's self-attention")
        extension = extension_tokens(tokens.sparse & ~tokens.negative, attention, top_m, tokens.content)
        removed |= extension_tokens(tokens.negative_sparse, attention, top_m, tokens.content)
    prompt = tokens.positive & ~removed
    return TokenSelection(prompt, extension & ~prompt & ~removed)


def rasterise(prompt: ReferencePrompt, point_radius_px: float) -> torch.Tensor:
    """``[height, width]`` float mask of the marks at pixel centres: the mask (> 0.5), positive boxes, points (discs
    of ``point_radius_px``) and scribbles, minus the negative marks. For previews and other nodes."""
    height, width = prompt.height, prompt.width
    marked = {sign: torch.zeros(height, width, dtype=torch.bool) for sign in (True, False)}
    if prompt.mask is not None:
        marked[True] |= prompt.mask.cpu() > 0.5
    for b in prompt.boxes:
        x0, y0 = max(0, round(b.x)), max(0, round(b.y))
        marked[b.positive][y0 : round(b.y + b.height), x0 : round(b.x + b.width)] = True
    strokes = [((p.x, p.y),) for p in prompt.points]
    strokes = [(points, point_radius_px, p.positive) for points, p in zip(strokes, prompt.points, strict=True)]
    strokes += [(s.points, s.width / 2, s.positive) for s in prompt.scribbles]
    for points, radius, positive in strokes:
        for a, b in _segments(points):
            left, right = max(0, int(min(a[0], b[0]) - radius)), min(width, int(max(a[0], b[0]) + radius) + 1)
            top, bottom = max(0, int(min(a[1], b[1]) - radius)), min(height, int(max(a[1], b[1]) + radius) + 1)
            if left >= right or top >= bottom:
                continue
            xs = torch.arange(left, right, dtype=torch.float64) + 0.5
            ys = torch.arange(top, bottom, dtype=torch.float64) + 0.5
            cx, cy = xs.view(1, -1).expand(len(ys), -1), ys.view(-1, 1).expand(-1, len(xs))
            centres = torch.stack([cx, cy, cx, cy], dim=-1)
            marked[positive][top:bottom, left:right] |= segment_touches(centres, a, b, radius)
    return (marked[True] & ~marked[False]).float()


def selection_cells(selection: TokenSelection, box: Letterbox, grid: int) -> list[list]:
    """``[[x0, y0, x1, y1, "prompt" | "extension"], ...]``: each query token's cell in pixels of the image, clipped
    to it (for the editor's overlay)."""
    rects = cell_rectangles(box, grid)
    limits = torch.tensor([box.width, box.height, box.width, box.height], dtype=torch.float64)
    rects = torch.minimum(rects.clamp(min=0), limits)
    cells = []
    for kind, tokens in (("prompt", selection.prompt), ("extension", selection.extension)):
        for i, j in tokens.nonzero().tolist():
            cells.append([*(round(float(v), 2) for v in rects[i, j]), kind])
    return cells
