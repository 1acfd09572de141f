"""Writes the example photos the templates name (copied to ComfyUI's ``input/iconmatting_<file>`` at import).

    python example_inputs/make_example_inputs.py photos   # needs scikit-image (the test extra)
    python example_inputs/make_example_inputs.py video    # needs PyAV (ComfyUI's environment has it)

Every photo comes from scikit-image's sample data (``skimage.data``); LICENSES.md names each one's author and licence.
The masks are drawn by hand here as polygons over the cat (white = object).
"""

from __future__ import annotations

import sys
from pathlib import Path

import numpy as np
from PIL import Image, ImageDraw

FOLDER = Path(__file__).resolve().parent
CAT_OUTLINE = [(0, 40), (40, 0), (330, 0), (360, 40), (370, 150), (340, 250), (300, 300), (0, 300)]
"""The cat in ``chelsea.jpg`` (451 x 300): head and chest, left of the blurred room on the right."""
PAN = {"frames": 4, "size": (192, 128), "crop": (390, 260), "step": 20}
"""The video: a 390 x 260 window panning right by 20 px per frame over ``chelsea.jpg``, each frame 192 x 128."""


def _jpeg(array: np.ndarray, name: str) -> None:
    Image.fromarray(array).save(FOLDER / name, quality=88, optimize=True)


def _mask(size: tuple[int, int], outline: list[tuple[int, int]]) -> Image.Image:
    mask = Image.new("L", size, 0)
    ImageDraw.Draw(mask).polygon(outline, fill=255)
    return mask


def photos() -> None:
    from skimage import data

    cat = data.chelsea()  # [300, 451, 3]
    _jpeg(cat, "chelsea.jpg")
    _mask((451, 300), CAT_OUTLINE).save(FOLDER / "chelsea_mask.png", optimize=True)
    mirrored = np.asarray(Image.fromarray(cat[20:, ::-1]).resize((451, 300), Image.Resampling.LANCZOS))
    _jpeg(mirrored, "chelsea_mirrored.jpg")  # a second view of the same cat: mirrored and 7% closer
    _jpeg(np.asarray(Image.fromarray(cat[30:300, 60:330]).resize((300, 300), Image.Resampling.LANCZOS)),
          "chelsea_closeup.jpg")  # fmt: skip
    _jpeg(data.coffee(), "coffee.jpg")
    _jpeg(data.astronaut(), "astronaut.jpg")


def _pan_frames() -> tuple[list[np.ndarray], Image.Image]:
    """The frames [128, 192, 3] uint8 of the pan over chelsea.jpg and the mask of its first frame."""
    cat, mask = Image.open(FOLDER / "chelsea.jpg"), Image.open(FOLDER / "chelsea_mask.png")
    width, height = PAN["crop"]
    boxes = [(i * PAN["step"], 20, i * PAN["step"] + width, 20 + height) for i in range(PAN["frames"])]
    frames = [np.asarray(cat.crop(box).resize(PAN["size"], Image.Resampling.LANCZOS)) for box in boxes]
    return frames, mask.crop(boxes[0]).resize(PAN["size"], Image.Resampling.NEAREST)


def video() -> None:
    import av

    frames, first_mask = _pan_frames()
    with av.open(str(FOLDER / "chelsea_pan.mp4"), mode="w") as container:
        stream = container.add_stream("libx264", rate=8)
        stream.width, stream.height, stream.pix_fmt = *PAN["size"], "yuv420p"
        for frame in frames:
            container.mux(stream.encode(av.VideoFrame.from_ndarray(frame, format="rgb24")))
        container.mux(stream.encode())
    first_mask.save(FOLDER / "chelsea_pan_mask.png", optimize=True)


if __name__ == "__main__":
    {"photos": photos, "video": video}[sys.argv[1]]()
