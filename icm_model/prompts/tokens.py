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


def cell_edges(box: Letterbox, grid: int) -> tuple[torch.Tensor, torch.Tensor]:
    """``[grid + 1]`` float64 x and y of the token cells' edges, in pixels of the original image (ascending)."""
    edges = torch.arange(grid + 1, dtype=torch.float64) * (box.size / grid)
    return (edges - box.left) * (box.width / box.content_width), (edges - box.top) * (box.height / box.content_height)


def cell_rectangles(box: Letterbox, grid: int) -> torch.Tensor:
    """``[grid, grid, 4]`` float64 ``(x0, y0, x1, y1)``: each token's cell in pixels of the original image."""
    xs, ys = cell_edges(box, grid)
    x0, x1 = xs[:-1].view(1, -1).expand(grid, grid), xs[1:].view(1, -1).expand(grid, grid)
    y0, y1 = ys[:-1].view(-1, 1).expand(grid, grid), ys[1:].view(-1, 1).expand(grid, grid)
    return torch.stack([x0, y0, x1, y1], dim=-1)


def point_radius(box: Letterbox, grid: int) -> float:
    """Radius of a clicked point in image pixels: half a token cell (the narrower side, when the letterbox's
    rounding makes cells a little anisotropic)."""
    return 0.5 * (box.size / grid) * min(box.width / box.content_width, box.height / box.content_height)


def _point_to_rect(px: torch.Tensor, py: torch.Tensor, rects: torch.Tensor) -> torch.Tensor:
    dx = torch.clamp(torch.maximum(rects[..., 0] - px, px - rects[..., 2]), min=0)
    dy = torch.clamp(torch.maximum(rects[..., 1] - py, py - rects[..., 3]), min=0)
    return torch.hypot(dx, dy)


def _corner_to_segment(cx: torch.Tensor, cy: torch.Tensor, a: torch.Tensor, b: torch.Tensor) -> torch.Tensor:
    (ax, ay), (bx, by) = a.unbind(-1), b.unbind(-1)
    vx, vy = bx - ax, by - ay
    length = vx * vx + vy * vy
    t = (((cx - ax) * vx + (cy - ay) * vy) / torch.where(length > 0, length, 1)).clamp(0, 1)
    return torch.hypot(cx - (ax + t * vx), cy - (ay + t * vy))


def segment_touches(rects: torch.Tensor, a, b, radius) -> torch.Tensor:
    """Whether the stroke of ``radius`` around segment ``a``-``b`` overlaps each rectangle ``[..., 4]``.

    ``a``, ``b``: ``(x, y)`` pairs or float64 ``[..., 2]`` tensors, ``radius`` a number or ``[...]``, broadcast with
    the rectangles' leading dimensions (one segment per rectangle, or one for all).
    Exact: the segment and a rectangle intersect unless an axis (x, y or the segment's normal) separates them;
    otherwise their distance is attained at a vertex of one and the other shape.
    """
    a, b = (torch.as_tensor(p, dtype=torch.float64) for p in (a, b))
    (ax, ay), (bx, by) = a.unbind(-1), b.unbind(-1)
    x0, y0, x1, y1 = rects.unbind(-1)
    separated = (torch.maximum(ax, bx) < x0) | (torch.minimum(ax, bx) > x1)
    separated |= (torch.maximum(ay, by) < y0) | (torch.minimum(ay, by) > y1)
    nx, ny = ay - by, bx - ax
    sides = torch.stack([nx * (cx - ax) + ny * (cy - ay) for cx in (x0, x1) for cy in (y0, y1)])
    separated |= (sides > 0).all(0) | (sides < 0).all(0)
    distance = torch.minimum(_point_to_rect(ax, ay, rects), _point_to_rect(bx, by, rects))
    for cx in (x0, x1):
        for cy in (y0, y1):
            distance = torch.minimum(distance, _corner_to_segment(cx, cy, a, b))
    return ~separated | (distance < radius * (1 - 1e-9))  # a point at a cell's centre misses its neighbours


@dataclass
class Strokes:
    """Points and scribbles as segments: ``a``, ``b`` ``[S, 2]`` float64 ends (a point is a segment of length 0),
    ``radius`` ``[S]``, ``positive`` ``[S]`` bool and ``last`` ``[S]`` bool (the last segment of its mark)."""

    a: torch.Tensor
    b: torch.Tensor
    radius: torch.Tensor
    positive: torch.Tensor
    last: torch.Tensor

    @classmethod
    def of(cls, prompt: ReferencePrompt, point_radius_px: float) -> Strokes:
        marks = [(((p.x, p.y),), point_radius_px, p.positive) for p in prompt.points]
        marks += [(s.points, s.width / 2, s.positive) for s in prompt.scribbles]
        ends = [torch.zeros(0, 4, dtype=torch.float64)]
        for vertices, _, _ in marks:
            vertices = torch.tensor(vertices, dtype=torch.float64).view(-1, 2)
            vertices = vertices.repeat(2, 1) if len(vertices) == 1 else vertices
            ends.append(torch.cat([vertices[:-1], vertices[1:]], dim=1))
        count = torch.tensor([len(e) for e in ends[1:]], dtype=torch.long)
        radius = torch.tensor([r for _, r, _ in marks], dtype=torch.float64).repeat_interleave(count)
        positive = torch.tensor([p for _, _, p in marks], dtype=torch.bool).repeat_interleave(count)
        segments = torch.cat(ends)
        last = torch.zeros(len(segments), dtype=torch.bool)
        last[count.cumsum(0) - 1] = True
        return cls(segments[:, :2], segments[:, 2:], radius, positive, last)

    def bounds(self) -> torch.Tensor:
        """``[S, 4]`` ``(x0, y0, x1, y1)``: each stroke's bounding box, its radius included."""
        r = self.radius[:, None]
        return torch.cat([torch.minimum(self.a, self.b) - r, torch.maximum(self.a, self.b) + r], dim=1)


PAIRS_PER_CHUNK = 1 << 20
"""(segment, cell) or (segment, row) pairs tested at once: bounds the memory of very long strokes."""


def pairs(counts: torch.Tensor):
    """Yields ``(segment, k)`` ``[P]`` index pairs, ``k`` in ``0..counts[segment]``, in chunks of about
    ``PAIRS_PER_CHUNK`` pairs (whole segments per chunk)."""
    counts = counts.clamp(min=0)
    ends = counts.cumsum(0)
    start = 0
    while start < len(counts):
        stop = max(start + 1, int(torch.searchsorted(ends, ends[start] - counts[start] + PAIRS_PER_CHUNK)))
        stop = min(stop, len(counts))
        chunk = counts[start:stop]
        segment = torch.repeat_interleave(torch.arange(start, stop), chunk)
        first = torch.repeat_interleave(chunk.cumsum(0) - chunk, chunk)
        yield segment, torch.arange(len(segment)) - first
        start = stop


def _stroke_cells(strokes: Strokes, rects: torch.Tensor, edges_x: torch.Tensor, edges_y: torch.Tensor):
    """``[grid, grid]`` bool of the cells the positive and the negative strokes touch: only the cells around each
    segment's bounding box are tested (:func:`segment_touches`, exact)."""
    grid = rects.shape[0]
    touched = {sign: torch.zeros(grid * grid, dtype=torch.bool) for sign in (True, False)}
    bounds = strokes.bounds()
    # Columns j whose cell may reach the box: x1 of the cell >= box x0 and x0 of the cell <= box x1 (rows alike).
    x0, y0, x1, y1 = bounds.T.contiguous()
    j0 = torch.searchsorted(edges_x[1:].contiguous(), x0, side="left")
    j1 = torch.searchsorted(edges_x[:-1].contiguous(), x1, side="right") - 1
    i0 = torch.searchsorted(edges_y[1:].contiguous(), y0, side="left")
    i1 = torch.searchsorted(edges_y[:-1].contiguous(), y1, side="right") - 1
    columns = (j1 - j0 + 1).clamp(min=0)
    for segment, k in pairs((i1 - i0 + 1).clamp(min=0) * columns):
        i, j = i0[segment] + k // columns[segment], j0[segment] + k % columns[segment]
        hit = segment_touches(rects[i, j], strokes.a[segment], strokes.b[segment], strokes.radius[segment])
        cells = (i * grid + j)[hit]
        sign = strokes.positive[segment][hit]
        touched[True][cells[sign]] = True
        touched[False][cells[~sign]] = True
    return {sign: cells.view(grid, grid) for sign, cells in touched.items()}


def prompt_tokens(prompt: ReferencePrompt, box: Letterbox, grid: int) -> PromptTokens:
    """The tokens of the ``grid x grid`` correspondence grid that ``prompt`` (on the letterboxed image) marks.

    Only tokens whose cell holds image content (``content``) are marked: a point or scribble on the image's edge
    does not select cells lying wholly in the letterbox padding."""
    rects = cell_rectangles(box, grid)
    x0, y0, x1, y1 = rects.unbind(-1)
    content = (x0 < box.width) & (x1 > 0) & (y0 < box.height) & (y1 > 0)
    empty = torch.zeros(grid, grid, dtype=torch.bool)
    marked = {(kind, sign): empty.clone() for kind in ("dense", "sparse") for sign in (True, False)}
    if prompt.mask is not None and (prompt.mask > 0.5).any():
        marked["dense", True] |= roi_token_mask(box.mask(prompt.mask[None].float()), (grid, grid), "inside")[0]
    for b in prompt.boxes:
        bx1, by1 = b.x + b.width, b.y + b.height
        if b.positive:
            eps = 1e-6  # pixels: a box drawn on cell borders holds those cells despite rounding
            marked["dense", True] |= (x0 >= b.x - eps) & (x1 <= bx1 + eps) & (y0 >= b.y - eps) & (y1 <= by1 + eps)
        else:
            marked["dense", False] |= (x0 < bx1) & (x1 > b.x) & (y0 < by1) & (y1 > b.y)
    strokes = Strokes.of(prompt, point_radius(box, grid))
    touched = _stroke_cells(strokes, rects, *cell_edges(box, grid))
    for sign in (True, False):
        marked["dense", sign] &= content
        marked["sparse", sign] = touched[sign] & content
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
