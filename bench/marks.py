"""Benchmark: reading and rasterising a long scribble, as the Reference Prompt node does.

    python bench/marks.py                 # a 100 000-vertex scribble on a 1920 x 1080 image
    python bench/marks.py --vertices 20000 --old 2000

Times parse_marks (JSON -> prompt), prompt_tokens (the 48 x 48 cells it touches, what Encode Reference Context uses)
and rasterise (the reference_mask output, pixels). ``--old N`` also times the per-segment loop the cells used before
(every segment tested against every cell) on the first N vertices; its cost grows linearly with the vertices.
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from pathlib import Path

import torch

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from icm_model.geometry import Letterbox  # noqa: E402
from icm_model.prompts.marks_json import parse_marks  # noqa: E402
from icm_model.prompts.prompt import ReferencePrompt  # noqa: E402
from icm_model.prompts.raster import rasterise  # noqa: E402
from icm_model.prompts.tokens import cell_rectangles, point_radius, prompt_tokens, segment_touches  # noqa: E402

HEIGHT, WIDTH, WORKING_SIZE, GRID = 1080, 1920, 768, 48


def scribble(vertices: int, width: float) -> str:
    """``marks`` JSON of one scribble: a random walk of ``vertices`` vertices over the whole image (seed 0)."""
    walk = torch.cumsum(torch.randn(vertices, 2, generator=torch.Generator().manual_seed(0), dtype=torch.float64), 0)
    walk = (walk - walk.min(0).values) / (walk.max(0).values - walk.min(0).values)
    walk = (walk * torch.tensor([WIDTH - 1, HEIGHT - 1])).round(decimals=2)
    marks = {"version": 1, "image": {"width": WIDTH, "height": HEIGHT}, "scribbles": [
        {"points": walk.tolist(), "width": width, "positive": True}]}  # fmt: skip
    return json.dumps(marks)


def seconds(step) -> tuple[float, object]:
    """CPU seconds of ``step()`` (this process; steadier than wall time on a shared machine) and its result."""
    start = time.process_time()
    result = step()
    return time.process_time() - start, result


def old_cells(prompt: ReferencePrompt, box: Letterbox) -> torch.Tensor:
    """The loop before vectorisation: one segment at a time against all cells."""
    rects = cell_rectangles(box, GRID)
    marked = torch.zeros(GRID, GRID, dtype=torch.bool)
    for s in prompt.scribbles:
        for a, b in zip(s.points[:-1], s.points[1:], strict=True):
            marked |= segment_touches(rects, a, b, s.width / 2)
    return marked


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--vertices", type=int, default=100_000)
    parser.add_argument("--width", type=float, default=16.0, help="brush width in pixels (the editor's default)")
    parser.add_argument("--old", type=int, default=0, help="also time the old per-segment loop on this many vertices")
    args = parser.parse_args()
    text = scribble(args.vertices, args.width)
    box = Letterbox.fit(HEIGHT, WIDTH, WORKING_SIZE)
    parse, prompt = seconds(lambda: parse_marks(text, HEIGHT, WIDTH))
    cells, tokens = seconds(lambda: prompt_tokens(prompt, box, GRID))
    pixels, _ = seconds(lambda: rasterise(prompt, point_radius(box, GRID)))
    print(f"{args.vertices} vertices, width {args.width:g}, {WIDTH}x{HEIGHT}, torch threads {torch.get_num_threads()}")
    print(f"CPU s: parse_marks {parse:.3f} | prompt_tokens (cells) {cells:.3f} | rasterise (pixels) {pixels:.3f}")
    if args.old:
        part = ReferencePrompt(HEIGHT, WIDTH, scribbles=[prompt.scribbles[0].__class__(
            prompt.scribbles[0].points[: args.old], prompt.scribbles[0].width)])  # fmt: skip
        old, marked = seconds(lambda: old_cells(part, box))
        assert torch.equal(marked & tokens.content, prompt_tokens(part, box, GRID).sparse)
        print(f"CPU s: old cell loop on {args.old} vertices {old:.3f} (x{args.vertices / args.old:g}: "
              f"~{old * args.vertices / args.old:.1f} s for {args.vertices})")  # fmt: skip


if __name__ == "__main__":
    main()
