"""Reading images and masks from files and writing alpha mattes, for the standalone tools."""

from __future__ import annotations

import io
from pathlib import Path
from typing import BinaryIO

import numpy as np
import torch
from PIL import Image, ImageOps, UnidentifiedImageError

from .validation import InputError

IMAGE_SUFFIXES = (".png", ".jpg", ".jpeg", ".webp", ".bmp", ".tif", ".tiff")
EXIF_ORIENTATION = 0x0112
SWAPPED_ORIENTATIONS = (5, 6, 7, 8)
"""EXIF orientations that turn the stored picture by 90 degrees (:func:`ImageOps.exif_transpose` swaps its sides)."""


def _open(source: Path | BinaryIO, what: str, name: str | None = None) -> Image.Image:
    """The image of a file or an open binary stream (``name`` names it in errors), EXIF orientation applied."""
    name = str(source) if name is None else name
    try:
        image = Image.open(source)
        image.load()
    except FileNotFoundError as error:
        raise InputError(f"{what} {name!r} does not exist") from error
    except (UnidentifiedImageError, OSError, SyntaxError) as error:
        raise InputError(f"{what} {name!r} is not a readable image ({error})") from error
    return ImageOps.exif_transpose(image)


def image_size(source: Path | BinaryIO, what: str = "image", name: str | None = None) -> tuple[int, int]:
    """``(width, height)`` of an image as the loaders show it (EXIF orientation applied), from its header alone;
    InputError naming it (``name``, default the path) when it is not a readable image."""
    name = str(source) if name is None else name
    try:
        with Image.open(source) as image:
            width, height = image.size
            orientation = image.getexif().get(EXIF_ORIENTATION, 1)
    except FileNotFoundError as error:
        raise InputError(f"{what} {name!r} does not exist") from error
    except (UnidentifiedImageError, OSError, SyntaxError) as error:
        raise InputError(f"{what} {name!r} is not a readable image ({error})") from error
    return (height, width) if orientation in SWAPPED_ORIENTATIONS else (width, height)


def check_companion_sizes(image: Path, companions: dict[str, Path | None], advice: str = "") -> None:
    """Refuses (InputError naming the file) an alpha or trimap (``companions``: what -> file or None) whose size is
    not its image's; ``advice`` is added after the sizes."""
    width, height = image_size(image, "image")
    for what, path in companions.items():
        if path is None:
            continue
        other = image_size(path, what)
        if other != (width, height):
            raise InputError(
                f"{what} {str(path)!r} is {other[0]}x{other[1]} but its image is {width}x{height}{advice}: "
                f"the {what} must have its image's size"
            )


def load_image(source: str | Path | BinaryIO, what: str = "image", name: str | None = None) -> torch.Tensor:
    """RGB image ``[1, 3, H, W]`` float32 in [0, 1] from a file or an open binary stream (``name`` for errors)."""
    source = Path(source) if isinstance(source, str) else source
    array = np.asarray(_open(source, what, name).convert("RGB"), dtype=np.float32) / 255.0
    return torch.from_numpy(array).permute(2, 0, 1).unsqueeze(0).contiguous()


def load_mask(path: str | Path, what: str = "mask") -> torch.Tensor:
    """Mask ``[1, H, W]`` float32 in [0, 1]: white = inside. A file with transparency gives its alpha channel."""
    image = _open(Path(path), what)
    has_alpha = image.mode in ("RGBA", "LA") or (image.mode == "P" and "transparency" in image.info)
    channel = image.convert("RGBA").getchannel("A") if has_alpha else image.convert("L")
    return torch.from_numpy(np.asarray(channel, dtype=np.float32) / 255.0).unsqueeze(0)


def _png(image: Image.Image) -> bytes:
    buffer = io.BytesIO()
    image.save(buffer, format="PNG")
    return buffer.getvalue()


def alpha_png(alpha: torch.Tensor) -> bytes:
    """Alpha ``[H, W]`` or ``[1, H, W]`` in [0, 1] as an 8-bit grayscale PNG file (white = foreground)."""
    array = (alpha.detach().float().squeeze().clamp(0, 1).cpu().numpy() * 255.0).round().astype(np.uint8)
    return _png(Image.fromarray(array))


def rgba_png(image: torch.Tensor, alpha: torch.Tensor) -> bytes:
    """A colour ``[3, H, W]`` and alpha ``[H, W]`` or ``[1, H, W]`` in [0, 1] as an 8-bit RGBA PNG file (straight
    alpha, as PNG defines it)."""
    rgba = torch.cat([image.detach().float().cpu(), alpha.detach().float().reshape(1, *image.shape[-2:]).cpu()])
    array = (rgba.clamp(0, 1).permute(1, 2, 0).numpy() * 255.0).round().astype(np.uint8)
    return _png(Image.fromarray(array, "RGBA"))


def save_alpha(path: str | Path, alpha: torch.Tensor) -> None:
    """Writes :func:`alpha_png` of ``alpha`` to ``path``."""
    Path(path).write_bytes(alpha_png(alpha))


def list_images(location: str | Path) -> list[Path]:
    """The image files of a folder (sorted by name), or the file itself."""
    location = Path(location)
    if location.is_file():
        return [location]
    if not location.is_dir():
        raise InputError(f"{str(location)!r} is neither an image file nor a folder")
    files = sorted(p for p in location.iterdir() if p.suffix.lower() in IMAGE_SUFFIXES and p.is_file())
    if not files:
        raise InputError(f"no images ({', '.join(IMAGE_SUFFIXES)}) in {str(location)!r}")
    return files


def thumbnail(x: torch.Tensor, size: tuple[int, int]) -> Image.Image:
    """``[3, H, W]`` or ``[H, W]`` in [0, 1] scaled to fit ``size`` (width, height), centred on dark grey, RGB."""
    array = (x.detach().float().clamp(0, 1) * 255).round().to(torch.uint8).cpu().numpy()
    image = Image.fromarray(array if array.ndim == 2 else array.transpose(1, 2, 0)).convert("RGB")
    return ImageOps.pad(image, size, Image.Resampling.BILINEAR, color=(48, 48, 48))
