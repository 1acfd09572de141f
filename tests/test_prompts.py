"""Reference prompts on synthetic images: marks JSON, RoI tokens at any size and aspect ratio, the §3.6 extension."""

from __future__ import annotations

import io
import itertools
import json

import numpy as np
import pytest
import torch
from PIL import Image
from skimage import data as skimage_data

from icm_model.backbone.capture import HIGH
from icm_model.backbone.features import EnsembleFeatureExtractor, EnsembleNoise
from icm_model.decoder.similarity import roi_token_mask
from icm_model.geometry import Letterbox
from icm_model.pipeline import encode_prompts, encode_reference
from icm_model.prompts.fingerprint import picture_fingerprint, same_picture
from icm_model.prompts.marks_json import kjnodes_points, marks_json, parse_marks, points_from_kjnodes
from icm_model.prompts.prompt import Box, Point, ReferencePrompt, Scribble
from icm_model.prompts.raster import rasterise
from icm_model.prompts.tokens import (
    PromptTokens,
    cell_rectangles,
    extension_tokens,
    point_radius,
    prompt_tokens,
    segment_touches,
    select_tokens,
    selection_cells,
)

SIZES = [(128, 128), (96, 160), (300, 40), (1000, 600), (7, 3000)]
"""(height, width) of the reference images: square, landscape, very tall, large, extreme."""


def _cell_in_image(box: Letterbox, grid: int, i: int, j: int) -> tuple[float, float, float, float]:
    """Cell (i, j) of the canvas mapped to image pixels, computed forward from the letterbox's scale."""
    step = box.size / grid
    sx, sy = box.content_width / box.width, box.content_height / box.height
    return ((j * step - box.left) / sx, (i * step - box.top) / sy, ((j + 1) * step - box.left) / sx,
            ((i + 1) * step - box.top) / sy)  # fmt: skip


def _content_cells(box: Letterbox, grid: int) -> list[tuple[int, int]]:
    """Cells lying wholly on the image (no padding)."""
    step = box.size / grid
    return [
        (i, j)
        for i in range(grid)
        for j in range(grid)
        if i * step >= box.top and (i + 1) * step <= box.top + box.content_height
        and j * step >= box.left and (j + 1) * step <= box.left + box.content_width
    ]  # fmt: skip


def _cells(tokens: torch.Tensor) -> set[tuple[int, int]]:
    return {tuple(c) for c in tokens.nonzero().tolist()}


@pytest.mark.parametrize(
    ("height", "width", "working_size"),
    # Images thinner than a cell on the canvas have no cell wholly on the image: (300, 40) and (7, 3000) at 128,
    # (7, 3000) at 768.
    [(h, w, size) for size in (128, 768) for h, w in SIZES if min(h, w) / max(h, w) * size >= 2 * 16],
)
def test_each_mark_selects_its_cells_at_any_size(height, width, working_size):
    grid = working_size // 16
    box = Letterbox.fit(height, width, working_size)
    inside = _content_cells(box, grid)
    assert len(inside) >= 4
    (i, j), (k, m) = inside[0], inside[-1]
    # A click at a cell's centre selects that cell alone; at a shared corner the 4 cells around it.
    x0, y0, x1, y1 = _cell_in_image(box, grid, i, j)
    point = ReferencePrompt(height, width, points=[Point((x0 + x1) / 2, (y0 + y1) / 2)])
    assert _cells(prompt_tokens(point, box, grid).positive) == {(i, j)}
    corners = [(a, b) for a, b in inside if (a + 1, b + 1) in inside and (a, b + 1) in inside and (a + 1, b) in inside]
    if corners:
        a, b = corners[0]
        cx, cy = _cell_in_image(box, grid, a, b)[2:]
        corner = ReferencePrompt(height, width, points=[Point(cx, cy)])
        assert _cells(prompt_tokens(corner, box, grid).sparse) == {(a, b), (a + 1, b), (a, b + 1), (a + 1, b + 1)}
    # A box over cells (i, j)..(k, m) exactly selects the cells entirely inside it; shrunk by a pixel, not its rim.
    bx0, by0 = _cell_in_image(box, grid, i, j)[:2]
    bx1, by1 = _cell_in_image(box, grid, k, m)[2:]
    exact = ReferencePrompt(height, width, boxes=[Box(bx0, by0, bx1 - bx0, by1 - by0)])
    expected = {(a, b) for a in range(i, k + 1) for b in range(j, m + 1)}
    assert _cells(prompt_tokens(exact, box, grid).positive) == expected
    shrunk = ReferencePrompt(height, width, boxes=[Box(bx0 + 0.5, by0, bx1 - bx0 - 0.5, by1 - by0)])
    assert _cells(prompt_tokens(shrunk, box, grid).positive) == {(a, b) for a, b in expected if b != j}
    # A thin scribble along a row of cell centres selects exactly that row; a 3-cell-wide one the rows beside too.
    row = [(a, b) for a, b in inside if a == i]
    ys = (y0 + y1) / 2
    xs = [(_cell_in_image(box, grid, a, b)[0] + _cell_in_image(box, grid, a, b)[2]) / 2 for a, b in row]
    line = ReferencePrompt(height, width, scribbles=[Scribble(((xs[0], ys), (xs[-1], ys)), 1.0)])
    assert _cells(prompt_tokens(line, box, grid).positive) == set(row)


@pytest.mark.parametrize(("height", "width"), SIZES[:4])
def test_mask_follows_the_official_rule(height, width):
    box = Letterbox.fit(height, width, 768)
    mask = torch.zeros(height, width)
    mask[height // 4 : 3 * height // 4, width // 5 : 4 * width // 5] = 1
    tokens = prompt_tokens(ReferencePrompt(height, width, mask=mask), box, 48)
    assert torch.equal(tokens.positive, roi_token_mask(box.mask(mask[None]), (48, 48), "inside")[0])
    assert not tokens.sparse.any() and not tokens.negative.any()


def test_mixed_prompt_and_negative_marks():
    height, width = 96, 160  # on a 128 canvas: scale 0.8, content 77x128 at top 25; 8x8 cells of 20 image pixels
    box = Letterbox.fit(height, width, 128)
    mask = torch.zeros(height, width)
    mask[:, :60] = 1
    prompt = ReferencePrompt(
        height, width, mask=mask,
        points=[Point(150, 40), Point(30, 40, positive=False)],
        scribbles=[Scribble(((100, 70), (150, 70)), 2.0), Scribble(((10, 80), (50, 80)), 2.0, positive=False)],
        boxes=[Box(0, 0, 160, 20, positive=False)],
    )  # fmt: skip
    tokens = prompt_tokens(prompt, box, 8)
    # Rows of cells span image y [-11.25, 8.75), [8.75, 28.75), ... ; columns x [0, 20), [20, 40), ...; a point's
    # radius is 10 pixels. The scribble starts on the border of columns 4 and 5: both are touched.
    assert _cells(tokens.sparse) == {(3, 7), (4, 7), (5, 4), (5, 5), (5, 6), (5, 7)}
    assert _cells(tokens.negative_sparse) == {(3, 1), (4, 1), (5, 0), (5, 1), (5, 2)}
    negative_box = {(i, j) for i in (1, 2) for j in range(8)}  # the negative box overlaps rows 1 and 2
    assert _cells(tokens.negative) == negative_box | _cells(tokens.negative_sparse)
    mask_cells = {(i, j) for i in range(2, 6) for j in range(3)}  # whole cells on the image and inside the mask
    assert _cells(tokens.positive) == mask_cells | _cells(tokens.sparse)
    selection = select_tokens(tokens, None, 0)
    assert _cells(selection.query) == (mask_cells | _cells(tokens.sparse)) - _cells(tokens.negative)
    assert not selection.extension.any()


def test_extension_adds_the_top_m_tokens_of_each_prompted_token():
    generator = torch.Generator().manual_seed(0)
    grid, m = 6, 3
    attention = torch.rand(grid * grid, grid * grid, generator=generator).softmax(-1)
    content = torch.ones(grid, grid, dtype=torch.bool)
    content[0] = False  # padding row: never added
    marked = torch.zeros(grid, grid, dtype=torch.bool)
    marked[2, 2] = marked[4, 1] = True
    expected = set()
    for p in marked.flatten().nonzero().flatten().tolist():
        order = [n for n in attention[p].argsort(descending=True).tolist() if n != p and content.flatten()[n]]
        expected |= set(order[:m])
    got = extension_tokens(marked, attention, m, content).flatten().nonzero().flatten().tolist()
    assert set(got) == expected and len(expected) <= 2 * m
    assert not extension_tokens(marked, attention, 0, content).any()
    # Through select_tokens: the query is the prompt plus exactly those tokens.
    tokens = PromptTokens(marked, marked, torch.zeros_like(marked), torch.zeros_like(marked), content)
    selection = select_tokens(tokens, attention, m)
    assert torch.equal(selection.prompt, marked)
    assert set(selection.query.flatten().nonzero().flatten().tolist()) == expected | {14, 25}


def test_negative_tokens_and_their_extension_never_enter_the_query():
    grid, m = 6, 4
    attention = torch.eye(grid * grid) * 0.1 + 0.01
    positive, negative = torch.zeros(grid, grid, dtype=torch.bool), torch.zeros(grid, grid, dtype=torch.bool)
    positive[1, 1] = positive[1, 2] = True
    negative[4, 4] = True
    # The positive tokens attend most to tokens 28 (negative), 29, 35 and 9; the negative token to 9, 29, 30, 31.
    for p in (7, 8):
        attention[p, [28, 29, 35, 9]] = torch.tensor([0.9, 0.8, 0.7, 0.6])
    attention[28, [9, 29, 30, 31]] = 0.9
    content = torch.ones(grid, grid, dtype=torch.bool)
    tokens = PromptTokens(positive, positive, negative, negative, content)
    selection = select_tokens(tokens, attention, m)
    query = set(selection.query.flatten().nonzero().flatten().tolist())
    removed = {28} | set(extension_tokens(negative, attention, m, content).flatten().nonzero().flatten().tolist())
    assert removed == {28, 9, 29, 30, 31}
    assert query == {7, 8, 35} and not query & removed
    assert set(selection.extension.flatten().nonzero().flatten().tolist()) == {35}


class _RecordingBackbone:
    """Wraps a backbone and records which attention grids every capture pass asked for."""

    def __init__(self, backbone) -> None:
        self.backbone, self.grids, self.layers = backbone, [], []

    def __getattr__(self, name):
        return getattr(self.backbone, name)

    def run(self, noisy_latents, timestep, capture):
        out = self.backbone.run(noisy_latents, timestep, capture)
        self.grids.append(capture.attention_grids)
        self.layers.append(dict(capture.attention_layers))
        return out


def test_mask_only_reference_runs_no_attention_capture(tiny_backbone, reference_pair):
    image, mask = reference_pair
    recording = _RecordingBackbone(tiny_backbone)
    dense = ReferencePrompt(96, 160, mask=mask[0], boxes=[Box(0, 0, 60, 60)])
    context, (selection,) = encode_prompts(recording, image, [dense], 128, extension_top_m=8, ensemble=2)
    assert recording.grids == [()] and recording.layers == [{}]
    assert not selection.extension.any()
    # A mask-only prompt is exactly the mask path of encode_reference.
    plain = encode_reference(tiny_backbone, image, mask, 128, ensemble=2)
    masked, _ = encode_prompts(tiny_backbone, image, [ReferencePrompt(96, 160, mask=mask[0])], 128, ensemble=2)
    assert torch.equal(masked.query, plain.query)
    # Points (and only they) make the reference pass capture the high grid's self-attention: 5 layers.
    clicked = ReferencePrompt(96, 160, points=[Point(80, 48)])
    context, (selection,) = encode_prompts(recording, image, [clicked], 128, extension_top_m=2, ensemble=2)
    assert recording.grids[-1] == (HIGH,) and recording.layers[-1] == {HIGH: 5}
    assert 1 <= int(selection.extension.sum()) <= 2 * int(selection.prompt.sum())
    assert context.query.shape[0] == int(selection.query.sum())
    encode_prompts(recording, image, [clicked], 128, extension_top_m=0, ensemble=2)
    assert recording.grids[-1] == ()


def test_reference_attention_equals_the_target_attention_of_the_same_image(tiny_backbone):
    images = torch.rand(2, 3, 128, 128, generator=torch.Generator().manual_seed(4))
    noise = EnsembleNoise.draw(torch.Generator().manual_seed(5), 2, 16)
    extractor = EnsembleFeatureExtractor(tiny_backbone)
    features, attention = extractor.correspondence_and_attention(images, noise)
    targets = extractor.targets(images, noise)
    torch.testing.assert_close(features, targets.correspondence, rtol=1e-4, atol=1e-5)
    torch.testing.assert_close(attention, targets.attention[1].flatten(1, 2), rtol=1e-4, atol=1e-6)


# --- marks JSON and KJNodes JSON --------------------------------------------------------------------------------------

MARKS = {
    "version": 1,
    "image": {"width": 640, "height": 480},
    "points": [{"x": 120.5, "y": 88, "positive": True}, {"x": 10, "y": 20, "positive": False}],
    "scribbles": [{"points": [[10, 20], [14, 26], [30, 40]], "width": 12, "positive": False}],
    "boxes": [{"x": 40, "y": 30, "width": 200, "height": 150, "positive": True}],
}


def test_marks_round_trip_and_rescale():
    prompt = parse_marks(json.dumps(MARKS), 480, 640)
    assert prompt.points[0] == Point(120.5, 88) and prompt.points[1] == Point(10, 20, False)
    assert prompt.scribbles[0] == Scribble(((10, 20), (14, 26), (30, 40)), 12, False)
    assert prompt.boxes[0] == Box(40, 30, 200, 150)
    assert json.loads(marks_json(prompt)) == MARKS
    half = parse_marks(json.dumps(MARKS), 240, 320)
    assert half.points[0] == Point(60.25, 44) and half.boxes[0] == Box(20, 15, 100, 75)
    assert half.scribbles[0].width == 6
    assert parse_marks(json.dumps(MARKS), 481, 641).points[0].x == pytest.approx(120.68828125, rel=1e-12)  # 1 px more
    assert parse_marks('{"version": 1, "image": null, "points": []}', 10, 10).points == []
    assert not parse_marks("", 10, 10).has_marks and not parse_marks("{}", 10, 10).has_marks
    assert not parse_marks(" ", 10, 10).has_positive


def test_pathological_marks_json_gets_clear_errors():
    """Deep nesting (Python's parser would raise RecursionError), huge numbers (OverflowError in checks), booleans as
    numbers (True == 1): each a ValueError naming marks. More cases: tests/fixtures/marks_cases.json."""
    cases = {
        "[" * 100_000 + "]" * 100_000: "marks: lists and objects nested more than 32 deep",
        '{"points": [{"x": ' + "9" * 5000 + ', "y": 1}]}': "marks: points[0].x must be a finite number, got Infinity",
        '{"version": true}': "marks: version must be 1",
        '{"image": {"width": 1' + "0" * 400 + ', "height": 1}}': "marks: image.width must be a finite number",
    }
    for text, message in cases.items():
        with pytest.raises(ValueError) as error:
            parse_marks(text, 480, 640)
        assert message in str(error.value)


def test_kjnodes_points_in_and_out():
    points = points_from_kjnodes('[{"x": 10, "y": 20}, {"x": 30.4, "y": 40}]', False, "negative_points", 50, 50)
    assert points == [Point(10, 20, False), Point(30.4, 40, False)]
    prompt = ReferencePrompt(50, 50, points=[Point(1.6, 2), *points])
    assert json.loads(kjnodes_points(prompt, True)) == [{"x": 2, "y": 2}]
    assert json.loads(kjnodes_points(prompt, False)) == [{"x": 10, "y": 20}, {"x": 30, "y": 40}]
    with pytest.raises(ValueError, match="negative_points: not valid JSON"):
        points_from_kjnodes("[{x: 1}]", False, "negative_points", 50, 50)


def test_rasterised_marks_and_overlay_cells():
    prompt = ReferencePrompt(
        40, 60, points=[Point(10, 10)], scribbles=[Scribble(((30, 30), (50, 30)), 4)],
        boxes=[Box(40, 0, 20, 20), Box(45, 5, 5, 5, positive=False)],
    )  # fmt: skip
    mask = rasterise(prompt, 3)
    assert mask[10, 10] == 1 and mask[10, 13] == 0 and mask[30, 40] == 1 and mask[33, 40] == 0
    assert mask[2, 42] == 1 and mask[7, 47] == 0 and mask.sum() > 0
    box = Letterbox.fit(40, 60, 128)
    selection = select_tokens(prompt_tokens(prompt, box, 8), None, 0)
    cells = selection_cells(selection, box, 8)
    assert len(cells) == int(selection.query.sum()) and all(c[4] == "prompt" for c in cells)
    assert all(0 <= c[0] < c[2] <= 60 and 0 <= c[1] < c[3] <= 40 for c in cells)


def test_edge_marks_select_no_padding_cells():
    """A point or scribble on the edge of a wide image touches the padding's cells above and below; they hold no
    image content (grey that is not the object) and must not enter the query."""
    height, width = 96, 160  # on a 128 canvas: content rows 25..102, cells of 16 canvas (20 image) pixels
    box = Letterbox.fit(height, width, 128)
    rects = cell_rectangles(box, 8)
    padding = (rects[..., 3] <= 0) | (rects[..., 1] >= height)  # cells wholly above or below the image
    assert padding.any()
    prompt = ReferencePrompt(
        height, width, points=[Point(80, 0), Point(30, 96)], scribbles=[Scribble(((0, 0), (160, 0)), 30.0)]
    )
    tokens = prompt_tokens(prompt, box, 8)
    assert tokens.sparse.any() and not (tokens.sparse & padding).any() and not (tokens.positive & padding).any()
    assert torch.equal(tokens.content, ~padding)
    # Row 1 (image y -11.25..8.75) holds both content and padding: the top-edge marks select it.
    assert _cells(tokens.sparse) >= {(1, j) for j in range(8)}


def _old_stroke_cells(prompt: ReferencePrompt, rects: torch.Tensor, radius: float) -> dict[bool, torch.Tensor]:
    """The loop the vectorised path replaced: every segment against every cell."""
    marked = {sign: torch.zeros(rects.shape[:2], dtype=torch.bool) for sign in (True, False)}
    for p in prompt.points:
        marked[p.positive] |= segment_touches(rects, (p.x, p.y), (p.x, p.y), radius)
    for s in prompt.scribbles:
        ends = list(zip(s.points[:-1], s.points[1:], strict=True)) or [(s.points[0], s.points[0])]
        for a, b in ends:
            marked[s.positive] |= segment_touches(rects, a, b, s.width / 2)
    return marked


def _pixel_reference(prompt: ReferencePrompt, radius: float) -> torch.Tensor:
    """Pixels whose centre lies closer than the radius to a stroke, by the point-to-segment distance in numpy (the
    textbook projection formula), positive minus negative."""
    ys, xs = np.mgrid[0 : prompt.height, 0 : prompt.width] + 0.5
    marked = {sign: np.zeros(xs.shape, dtype=bool) for sign in (True, False)}
    strokes = [((p.x, p.y),) for p in prompt.points]
    strokes = [(v, radius, p.positive) for v, p in zip(strokes, prompt.points, strict=True)]
    strokes += [(s.points, s.width / 2, s.positive) for s in prompt.scribbles]
    for vertices, r, positive in strokes:
        for (ax, ay), (bx, by) in zip(vertices[:-1] or vertices, vertices[1:] or vertices, strict=True):
            vx, vy = bx - ax, by - ay
            length = vx * vx + vy * vy
            t = np.clip(((xs - ax) * vx + (ys - ay) * vy) / length, 0, 1) if length > 0 else 0.0
            marked[positive] |= np.hypot(xs - (ax + t * vx), ys - (ay + t * vy)) < r * (1 - 1e-9)
    return torch.from_numpy(marked[True] & ~marked[False]).float()


@pytest.mark.parametrize("seed", range(6))
def test_vectorised_strokes_equal_the_slow_paths(seed):
    generator = torch.Generator().manual_seed(seed)
    height, width = (int(v) for v in torch.randint(20, 160, (2,), generator=generator))

    def uniform(*shape):
        return torch.rand(*shape, generator=generator, dtype=torch.float64)

    points = [Point(float(x) * width, float(y) * height, bool(s < 0.7)) for x, y, s in uniform(4, 3)]
    scribbles = []
    for n in (1, 2, 7, 40):
        vertices = uniform(n, 2) * torch.tensor([width, height], dtype=torch.float64)
        scribbles.append(Scribble(tuple(map(tuple, vertices.tolist())), float(uniform(1)) * 20 + 0.5, n != 7))
    prompt = ReferencePrompt(height, width, points=points, scribbles=scribbles)
    box = Letterbox.fit(height, width, 128)
    tokens = prompt_tokens(prompt, box, 8)
    old = _old_stroke_cells(prompt, cell_rectangles(box, 8), point_radius(box, 8))
    assert torch.equal(tokens.sparse, old[True] & tokens.content)
    assert torch.equal(tokens.negative_sparse, old[False] & tokens.content)
    assert torch.equal(rasterise(prompt, 4.5), _pixel_reference(prompt, 4.5))


def _photo(name: str) -> torch.Tensor:
    """A scikit-image sample photo as an IMAGE-like ``[3, 256, 384]`` in 0..1 (grey photos as RGB)."""
    pixels = getattr(skimage_data, name)()
    pixels = np.stack([pixels] * 3, -1) if pixels.ndim == 2 else pixels[..., :3]
    resized = Image.fromarray(pixels).resize((384, 256), Image.BILINEAR)
    return torch.from_numpy(np.asarray(resized).astype(np.float32) / 255).permute(2, 0, 1)


PHOTOS = ["astronaut", "camera", "coffee", "chelsea", "rocket", "hubble_deep_field", "immunohistochemistry", "retina",
          "colorwheel", "page", "text", "moon", "brick", "grass", "gravel"]  # fmt: skip


def test_fingerprints_tell_photos_apart_but_not_versions_of_one():
    """Marks drawn on one photo are refused on any other of these 15 (105 pairs, textures of equal brightness
    included), and accepted on the same photo at half size, as a JPEG of quality 60, 30 levels brighter, with gamma
    0.6 or 1.5x contrast (what a browser's decoder or a colour step upstream does to it)."""
    photos = {name: _photo(name) for name in PHOTOS}
    prints = {name: picture_fingerprint(photo) for name, photo in photos.items()}
    assert not [(a, b) for a, b in itertools.combinations(PHOTOS, 2) if same_picture(prints[a], prints[b])]
    for name, photo in photos.items():
        jpeg = io.BytesIO()
        Image.fromarray((photo.permute(1, 2, 0).numpy() * 255).round().astype(np.uint8)).save(jpeg, "JPEG", quality=60)
        versions = {
            "half size": torch.nn.functional.interpolate(photo[None], scale_factor=0.5, mode="area")[0],
            "JPEG": torch.from_numpy(np.asarray(Image.open(jpeg)).astype(np.float32) / 255).permute(2, 0, 1),
            "brighter": (photo + 30 / 255).clamp(0, 1),
            "gamma": photo**0.6,
            "contrast": ((photo - 0.5) * 1.5 + 0.5).clamp(0, 1),
        }
        for version, image in versions.items():
            assert same_picture(prints[name], picture_fingerprint(image)), (name, version)
    # Through the marks: drawn on the astronaut, read on the camera man of the same size.
    marks = json.dumps({"image": {"width": 384, "height": 256, "fingerprint": prints["astronaut"]}, "points": [
        {"x": 10, "y": 10}]})  # fmt: skip
    assert parse_marks(marks, 256, 384, fingerprint=prints["astronaut"]).points == [Point(10, 10)]
    with pytest.raises(ValueError, match="marks: drawn on another picture"):
        parse_marks(marks, 256, 384, fingerprint=prints["camera"])
