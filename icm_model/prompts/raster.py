"""The marks of a prompt rasterised to pixels (the Reference Prompt node's ``reference_mask``, previews).

Points and scribbles are capsules (every point within the radius of a segment); a capsule is convex, so each pixel
row meets it in one interval, computed exactly per (segment, row) pair and filled by a running sum: the cost follows
the strokes' extent, not their vertices times their area.
"""

from __future__ import annotations

import torch

from .prompt import ReferencePrompt
from .tokens import Strokes, pairs

_INF = float("inf")


def _segment_terms(strokes: Strokes, radius: torch.Tensor) -> torch.Tensor:
    """``[S, 10]`` per segment: ``ax, ay, bx, by, vx, vy, |v|^2, radius^2, radius |v|, whether the disc at b is needed``
    (only at a stroke's last segment: elsewhere it is the next segment's disc at a)."""
    (ax, ay), (bx, by) = strokes.a.unbind(-1), strokes.b.unbind(-1)
    vx, vy = bx - ax, by - ay
    length = vx * vx + vy * vy
    end = strokes.last.double()
    return torch.stack([ax, ay, bx, by, vx, vy, length, radius * radius, radius * length.sqrt(), end], dim=1)


def _row_intervals(terms: torch.Tensor, y: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """``(lo, hi)`` ``[P]``: the open interval of x where the line ``y`` ``[P]`` lies closer than the radius to each
    pair's segment (``terms`` ``[P, 10]``, :func:`_segment_terms`); empty when ``lo >= hi``. The capsule is the union
    of the discs around the ends and the band along the segment, each met in one interval, and is convex: the union
    of those intervals is their hull."""
    ax, ay, bx, by, vx, vy, length, r2, width, end = terms.unbind(-1)
    lo, hi = torch.full_like(y, _INF), torch.full_like(y, -_INF)
    for cx, cy, used in ((ax, ay, None), (bx, by, end > 0)):
        reach = r2 - (y - cy) ** 2
        hit = reach > 0 if used is None else (reach > 0) & used
        half = reach.clamp(min=0).sqrt()
        lo, hi = torch.where(hit, torch.minimum(lo, cx - half), lo), torch.where(hit, torch.maximum(hi, cx + half), hi)
    # Band: 0 <= (x - ax) vx + dy vy <= |v|^2 (projection on the segment) and |vx dy - vy (x - ax)| < radius |v|.
    dy = y - ay
    along, across = dy * vy, vx * dy
    flat_x, flat_y = vx == 0, vy == 0
    t0, t1 = ax - along / vx, ax + (length - along) / vx
    s0, s1 = ax + (across - width) / vy, ax + (across + width) / vy
    band_lo = torch.maximum(
        torch.where(flat_x, -_INF, torch.minimum(t0, t1)), torch.where(flat_y, -_INF, torch.minimum(s0, s1))
    )
    band_hi = torch.minimum(
        torch.where(flat_x, _INF, torch.maximum(t0, t1)), torch.where(flat_y, _INF, torch.maximum(s0, s1))
    )
    hit = (length > 0) & (band_lo < band_hi)
    hit &= ~flat_x | ((along >= 0) & (along <= length))
    hit &= ~flat_y | (across.abs() < width)
    return torch.where(hit, torch.minimum(lo, band_lo), lo), torch.where(hit, torch.maximum(hi, band_hi), hi)


def stroke_pixels(strokes: Strokes, height: int, width: int) -> dict[bool, torch.Tensor]:
    """``[height, width]`` bool per sign: the pixels whose centre lies closer than the radius (less 1e-9 of it, as
    :func:`~.tokens.segment_touches`) to a positive (True) or negative (False) stroke."""
    terms = _segment_terms(strokes, strokes.radius * (1 - 1e-9))
    bounds = strokes.bounds()
    # Rows whose centre y = row + 0.5 lies within the stroke's bounding box.
    first = (torch.floor(bounds[:, 1] - 0.5) + 1).clamp(min=0).long()
    last = (torch.ceil(bounds[:, 3] - 0.5) - 1).clamp(max=height - 1).long()
    runs = {sign: torch.zeros(height * (width + 1), dtype=torch.int32) for sign in (True, False)}
    for segment, k in pairs(last - first + 1):
        row = first[segment] + k
        lo, hi = _row_intervals(terms[segment], row.double() + 0.5)
        start = (torch.floor(lo - 0.5) + 1).clamp(min=0, max=width).long()  # first column whose centre is > lo
        stop = torch.ceil(hi - 0.5).clamp(min=0, max=width).long()  # one past the last column whose centre is < hi
        stop = torch.maximum(start, stop)  # empty: + 1 and - 1 at one place
        offsets = row * (width + 1)
        positive = strokes.positive[segment].int()
        for sign, weight in ((True, positive), (False, 1 - positive)):
            runs[sign].index_add_(0, offsets + start, weight).index_add_(0, offsets + stop, -weight)
    return {sign: run.view(height, width + 1).cumsum(1)[:, :width] > 0 for sign, run in runs.items()}


def rasterise(prompt: ReferencePrompt, point_radius_px: float) -> torch.Tensor:
    """``[height, width]`` float mask of the marks at pixel centres: the mask (> 0.5), positive boxes, points (discs
    of ``point_radius_px``) and scribbles, minus the negative marks. For previews and other nodes."""
    height, width = prompt.height, prompt.width
    marked = stroke_pixels(Strokes.of(prompt, point_radius_px), height, width)
    if prompt.mask is not None:
        marked[True] |= prompt.mask.cpu() > 0.5
    for b in prompt.boxes:
        x0, y0 = max(0, round(b.x)), max(0, round(b.y))
        marked[b.positive][y0 : round(b.y + b.height), x0 : round(b.x + b.width)] = True
    return (marked[True] & ~marked[False]).float()
