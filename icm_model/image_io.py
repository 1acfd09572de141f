"""Reading images and masks from files and writing alpha mattes, for the standalone tools."""

from __future__ import annotations

from collections import Counter
from collections.abc import Sequence
from pathlib import Path

import numpy as np
import torch
from PIL import Image, ImageOps, UnidentifiedImageError

from .validation import InputError

IMAGE_SUFFIXES = (".png", ".jpg", ".jpeg", ".webp", ".bmp", ".tif", ".tiff")


def _open(path: Path, what: str) -> Image.Image:
    try:
        image = Image.open(path)
        image.load()
    except FileNotFoundError as error:
        raise InputError(f"{what} {str(path)!r} does not exist") from error
    except (UnidentifiedImageError, OSError) as error:
        raise InputError(f"{what} {str(path)!r} is not a readable image ({error})") from error
    return ImageOps.exif_transpose(image)


def load_image(path: str | Path, what: str = "image") -> torch.Tensor:
    """RGB image ``[1, 3, H, W]`` float32 in [0, 1]."""
    array = np.asarray(_open(Path(path), what).convert("RGB"), dtype=np.float32) / 255.0
    return torch.from_numpy(array).permute(2, 0, 1).unsqueeze(0).contiguous()


def load_mask(path: str | Path, what: str = "mask") -> torch.Tensor:
    """Mask ``[1, H, W]`` float32 in [0, 1]: white = inside. A file with transparency gives its alpha channel."""
    image = _open(Path(path), what)
    has_alpha = image.mode in ("RGBA", "LA") or (image.mode == "P" and "transparency" in image.info)
    channel = image.convert("RGBA").getchannel("A") if has_alpha else image.convert("L")
    return torch.from_numpy(np.asarray(channel, dtype=np.float32) / 255.0).unsqueeze(0)


def save_alpha(path: str | Path, alpha: torch.Tensor) -> None:
    """Writes alpha ``[H, W]`` or ``[1, H, W]`` in [0, 1] as an 8-bit grayscale PNG (white = foreground)."""
    array = (alpha.detach().float().squeeze().clamp(0, 1).cpu().numpy() * 255.0).round().astype(np.uint8)
    Image.fromarray(array).save(path)


def save_rgba(path: str | Path, image: torch.Tensor, alpha: torch.Tensor) -> None:
    """Writes a colour ``[3, H, W]`` and alpha ``[H, W]`` or ``[1, H, W]`` in [0, 1] as an 8-bit RGBA PNG (straight
    alpha, as PNG defines it)."""
    rgba = torch.cat([image.detach().float().cpu(), alpha.detach().float().reshape(1, *image.shape[-2:]).cpu()])
    array = (rgba.clamp(0, 1).permute(1, 2, 0).numpy() * 255.0).round().astype(np.uint8)
    Image.fromarray(array, "RGBA").save(path)


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


def output_stems(paths: Sequence[Path]) -> dict[Path, str]:
    """A distinct output name (without suffix) per input file: its stem, or its whole file name where files share a
    stem (``a.jpg``, ``a.png`` -> ``a.jpg``, ``a.png``), numbered (``~2``) if still not distinct; names are compared
    ignoring case, as some file systems do."""
    shared = Counter(path.stem.casefold() for path in paths)
    stems: dict[Path, str] = {}
    taken: set[str] = set()
    for path in paths:
        stem = path.stem if shared[path.stem.casefold()] == 1 else path.name
        candidate, number = stem, 1
        while candidate.casefold() in taken:
            number += 1
            candidate = f"{stem}~{number}"
        taken.add(candidate.casefold())
        stems[path] = candidate
    return stems


def thumbnail(x: torch.Tensor, size: tuple[int, int]) -> Image.Image:
    """``[3, H, W]`` or ``[H, W]`` in [0, 1] scaled to fit ``size`` (width, height), centred on dark grey, RGB."""
    array = (x.detach().float().clamp(0, 1) * 255).round().to(torch.uint8).cpu().numpy()
    image = Image.fromarray(array if array.ndim == 2 else array.transpose(1, 2, 0)).convert("RGB")
    return ImageOps.pad(image, size, Image.Resampling.BILINEAR, color=(48, 48, 48))
