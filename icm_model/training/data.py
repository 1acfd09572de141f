"""Training data: groups of images with their alpha, reference/target pairs drawn within a group, the official
crop-resize pipeline.

Dataset layouts (a training run may mix several datasets; each is flagged as matting or segmentation data):

* **ICM-57 style**: the folder holds ``image/``, ``alpha/`` and optionally ``trimap/``, files of one image sharing a
  stem; the group of a file is its stem without a trailing number (``cat_01``, ``cat-2``, ``cat3`` are all in group
  ``cat``; :func:`icm_model.evaluation.evaluate.group_of`).
* **Folder per group**: every sub-folder is one group; in it, ``NAME.<ext>`` is an image, ``NAME_alpha.<ext>`` its
  alpha and ``NAME_trimap.<ext>`` its optional trimap (``<ext>``: any of :data:`~icm_model.image_io.IMAGE_SUFFIXES`).

Groups are per dataset: two datasets with a group of the same name never exchange references.

Pairing: the target is the item the batch plan names; its reference is drawn uniformly within its group. With
``self_pairing`` (the official behaviour, quirk T7) the target is excluded only in groups of more than 2 items, so in
groups of 1 or 2 items it can be its own reference; without it the target is always excluded and a group of one
image is an error.

Trimaps: a trimap file is read as grey 0..255; absent, it is generated from the alpha at the file's resolution:
``unknown = dilate(0 < alpha < 1  OR  edge)`` with a square of radius ``r`` pixels, ``edge`` = the pixels whose 3x3
neighbourhood holds both alpha >= 0.5 and alpha < 0.5 (so a hard 0/1 mask gets a band too), and ``r`` =
``trimap_radius`` pixels of the training canvas, scaled to the crop's resolution (at least 1 px). Known pixels are
255 where alpha >= 0.5, else 0; unknown ones 128.

Pipeline per image (official ``CropResize`` + ``ToTensor``, phase train): alpha = grey / 255; for segmentation data
the alpha is quantised before resizing (< 0.5 -> 0, else 1, as the official code does for open-images); a centre
square crop (the long side loses ``(long - short) // 2`` pixels at its start) or, with ``random_crop = f``, a square
of side uniform in ``[f * short, short]`` at a uniform position; resize to ``size x size`` with PIL: image and alpha
with an interpolation drawn from NEAREST, BILINEAR, BICUBIC, LANCZOS (two independent draws with
``independent_interpolation``, quirk T6; else one draw for both), the trimap with NEAREST. PIL resamples with
antialiasing when shrinking, where the official cv2.resize does not: the values differ from the official ones by
resampling detail, not by convention. Tensors: image ``u8 / 127.5 - 1`` ``[3, S, S]`` in [-1, 1]; alpha clipped to
[0, 1] ``[1, S, S]``; trimap ``[1, S, S]`` in {0, 0.5, 1} (raw < 85 -> 0, raw >= 170 -> 1, else 0.5).

Every random draw of an item (reference, crop, interpolations) comes from ``random.Random(f"{seed}/{epoch}/{index}")``,
so an item is the same whatever process, worker or resumed run loads it.
"""

from __future__ import annotations

import random
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import scipy.ndimage as ndi
import torch
from PIL import Image

from ..evaluation.evaluate import Sample, discover_dataset
from ..image_io import IMAGE_SUFFIXES, _open, check_companion_sizes
from ..validation import InputError

MATTING = "matting"
SEGMENTATION = "segmentation"
KINDS = (MATTING, SEGMENTATION)
INTERPOLATIONS = (
    Image.Resampling.NEAREST,
    Image.Resampling.BILINEAR,
    Image.Resampling.BICUBIC,
    Image.Resampling.LANCZOS,
)
"""PIL's counterparts of the official cv2 draw {INTER_NEAREST, INTER_LINEAR, INTER_CUBIC, INTER_LANCZOS4}."""
DEFAULT_TRIMAP_RADIUS = 10
ALPHA_SUFFIX = "_alpha"
TRIMAP_SUFFIX = "_trimap"
OFFICIAL_ORDER_SEED = 1
"""The official item list is sorted by name, then shuffled once with ``numpy.random.RandomState(1)``."""
_TRIMAP_LOW, _TRIMAP_HIGH = 85, 170


@dataclass(frozen=True)
class DatasetSource:
    """One training dataset folder and whether it holds matting (soft alpha) or segmentation (0/1 mask) data."""

    root: Path
    kind: str = MATTING

    def __post_init__(self) -> None:
        if self.kind not in KINDS:
            raise InputError(f"dataset kind must be one of {', '.join(KINDS)}, got {self.kind!r}")


@dataclass(frozen=True)
class TrainingItem:
    """One image of the training set: its files, its group (``<dataset folder name>/<group>``) and its data kind."""

    sample: Sample
    group: str
    kind: str


@dataclass(frozen=True)
class PipelineOptions:
    """How items become tensors (see the module docstring)."""

    size: int = 768
    independent_interpolation: bool = True
    self_pairing: bool = True
    random_crop: float | None = None
    trimap_radius: int = DEFAULT_TRIMAP_RADIUS

    def __post_init__(self) -> None:
        if self.random_crop is not None and not 0 < self.random_crop <= 1:
            raise InputError(f"random_crop must be in (0, 1] (smallest crop side / short side), got {self.random_crop}")
        if self.trimap_radius < 0:
            raise InputError(f"trimap_radius must be 0 or more pixels, got {self.trimap_radius}")


# --- finding the items ------------------------------------------------------------------------------------------


def discover_items(source: DatasetSource) -> list[TrainingItem]:
    """The items of one dataset folder in either layout, sorted by name.

    Raises:
        ValueError: naming the file or folder and what to do, for a missing or empty folder, an image without
            alpha, an alpha or trimap without image or of another size, or an unreadable file.
    """
    root = source.root
    if not root.is_dir():
        raise InputError(f"training dataset {str(root)!r} is not a folder")
    if (root / "image").is_dir() or (root / "alpha").is_dir():
        samples = discover_dataset(root)
    else:
        folders = sorted(p for p in root.iterdir() if p.is_dir())
        if not folders:
            raise InputError(
                f"training dataset {str(root)!r} has neither image/ + alpha/ folders nor group folders: lay it out "
                "as image/, alpha/ [trimap/] (ICM-57 style) or one folder per group holding NAME.png + NAME_alpha.png"
            )
        samples = [sample for folder in folders for sample in _group_folder(folder)]
    return [TrainingItem(s, f"{root.name}/{s.group}", source.kind) for s in sorted(samples, key=lambda s: s.name)]


def _group_folder(folder: Path) -> list[Sample]:
    """The samples of one group folder (``NAME``, ``NAME_alpha``, ``NAME_trimap`` files)."""
    files = {}
    for path in sorted(folder.iterdir()):
        if path.is_file() and path.suffix.lower() in IMAGE_SUFFIXES:
            if path.stem in files:
                raise InputError(f"{str(files[path.stem])!r} and {str(path)!r} share a stem: keep one of them")
            files[path.stem] = path
    alphas = {stem[: -len(ALPHA_SUFFIX)]: p for stem, p in files.items() if stem.endswith(ALPHA_SUFFIX)}
    trimaps = {stem[: -len(TRIMAP_SUFFIX)]: p for stem, p in files.items() if stem.endswith(TRIMAP_SUFFIX)}
    images = {s: p for s, p in files.items() if not s.endswith((ALPHA_SUFFIX, TRIMAP_SUFFIX))}
    if not images:
        raise InputError(
            f"group folder {str(folder)!r} holds no images ({', '.join(IMAGE_SUFFIXES)}): add NAME.png with "
            "NAME_alpha.png, or remove the folder"
        )
    for stem, path in {**alphas, **trimaps}.items():
        if stem not in images:
            raise InputError(f"{str(path)!r} belongs to no image: add {stem}.png beside it or remove it")
    samples = []
    for stem, image in images.items():
        if stem not in alphas:
            raise InputError(f"image {str(image)!r} has no alpha: add {stem}{ALPHA_SUFFIX}.png beside it")
        check_companion_sizes(image, {"alpha": alphas[stem], "trimap": trimaps.get(stem)})
        samples.append(Sample(f"{folder.name}/{stem}", folder.name, image, alphas[stem], trimaps.get(stem)))
    return samples


def collect_items(sources: Sequence[DatasetSource], self_pairing: bool) -> list[TrainingItem]:
    """Every item of every dataset in the official order: sorted by (group, name), shuffled once with
    ``RandomState(1)`` (the official ContextData order with ratio 1).

    Raises:
        ValueError: no dataset, or (without ``self_pairing``) a group of one image, naming its file.
    """
    if not sources:
        raise InputError("no training dataset: give at least one --data folder")
    items = sorted((i for s in sources for i in discover_items(s)), key=lambda i: (i.group, i.sample.name))
    lone = single_image_groups(items)
    if lone and not self_pairing:
        first = next(item for item in items if item.group == lone[0])
        raise InputError(
            f"group {first.group!r} has one image ({str(first.sample.image)!r}) and this recipe never pairs an image "
            "with itself: add another image of the same object or class to its group, or remove it"
            + (f" ({len(lone)} such groups)" if len(lone) > 1 else "")
        )
    np.random.RandomState(OFFICIAL_ORDER_SEED).shuffle(items)
    return items


def single_image_groups(items: Sequence[TrainingItem]) -> list[str]:
    """Groups holding one image (their target is its own reference under self-pairing)."""
    counts: dict[str, int] = {}
    for item in items:
        counts[item.group] = counts.get(item.group, 0) + 1
    return sorted(group for group, count in counts.items() if count == 1)


# --- trimaps and the crop-resize pipeline ----------------------------------------------------------------------


def _dilate(mask: np.ndarray, radius: int) -> np.ndarray:
    """Binary dilation of ``[H, W]`` bool by a ``(2r+1)``-square (nothing enters from outside the image)."""
    if radius == 0:
        return mask
    return ndi.maximum_filter(mask.astype(np.uint8), size=2 * radius + 1, mode="constant", cval=0) > 0


def trimap_from_alpha(alpha: np.ndarray, radius: int) -> np.ndarray:
    """A trimap ``[H, W]`` uint8 (0, 128, 255) from alpha ``[H, W]`` in [0, 1] (rule: module docstring)."""
    foreground = alpha >= 0.5
    edge = _dilate(foreground, 1) & _dilate(~foreground, 1)
    unknown = _dilate(((alpha > 0) & (alpha < 1)) | edge, radius)
    trimap = np.where(foreground, 255, 0).astype(np.uint8)
    trimap[unknown] = 128
    return trimap


def _crop_box(width: int, height: int, rng: random.Random, random_crop: float | None) -> tuple[int, int, int]:
    """(left, top, side) of the square crop."""
    short = min(width, height)
    if random_crop is None:
        return (width - short) // 2, (height - short) // 2, short
    side = rng.randint(max(1, round(random_crop * short)), short)
    return rng.randint(0, width - side), rng.randint(0, height - side), side


def _load_grey(path: Path, what: str) -> np.ndarray:
    return np.asarray(_open(path, what).convert("L"))


def load_item(
    item: TrainingItem, options: PipelineOptions, rng: random.Random
) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """One item through the pipeline: image ``[3, S, S]`` in [-1, 1], alpha ``[1, S, S]`` in [0, 1], trimap
    ``[1, S, S]`` in {0, 0.5, 1}. Draws the crop, then the interpolation(s), from ``rng``."""
    sample = item.sample
    image = _open(sample.image, "image").convert("RGB")
    alpha = _load_grey(sample.alpha, "alpha").astype(np.float32) / 255.0
    if item.kind == SEGMENTATION:
        alpha = (alpha >= 0.5).astype(np.float32)
    if alpha.shape != (image.height, image.width):
        raise InputError(
            f"alpha {str(sample.alpha)!r} is {alpha.shape[1]}x{alpha.shape[0]} but its image is "
            f"{image.width}x{image.height}: the alpha must have its image's size"
        )
    left, top, side = _crop_box(image.width, image.height, rng, options.random_crop)
    box = (left, top, left + side, top + side)
    alpha = alpha[top : top + side, left : left + side]
    if sample.trimap is not None:
        trimap = _load_grey(sample.trimap, "trimap")[top : top + side, left : left + side]
    else:
        radius = max(1, round(options.trimap_radius * side / options.size)) if options.trimap_radius else 0
        trimap = trimap_from_alpha(alpha, radius)
    image_filter = rng.choice(INTERPOLATIONS)
    alpha_filter = rng.choice(INTERPOLATIONS) if options.independent_interpolation else image_filter
    size = (options.size, options.size)
    image = np.asarray(image.resize(size, image_filter, box=box), dtype=np.float64)
    alpha = np.asarray(Image.fromarray(np.ascontiguousarray(alpha), "F").resize(size, alpha_filter))
    trimap = np.asarray(Image.fromarray(np.ascontiguousarray(trimap)).resize(size, Image.Resampling.NEAREST))
    image_tensor = torch.from_numpy(image / 127.5 - 1.0).float().permute(2, 0, 1).contiguous()  # float64 as official
    alpha_tensor = torch.from_numpy(np.clip(alpha, 0.0, 1.0)).unsqueeze(0)
    trimap_tensor = torch.full(trimap.shape, 0.5)
    trimap_tensor[torch.from_numpy(trimap < _TRIMAP_LOW)] = 0.0
    trimap_tensor[torch.from_numpy(trimap >= _TRIMAP_HIGH)] = 1.0
    return image_tensor, alpha_tensor, trimap_tensor.unsqueeze(0)


# --- pairs and the batch plan -----------------------------------------------------------------------------------


class PairDataset(torch.utils.data.Dataset):
    """Reference/target pairs: ``dataset[(epoch, index)]`` is target ``items[index]`` with a reference drawn in its
    group, as a dict of the official batch keys plus ``segmentation`` (the dataset flag):

    ``reference_image`` ``[3, S, S]`` in [-1, 1], ``guidance_on_reference_image`` ``[1, S, S]`` (the reference's
    alpha), ``source_image`` ``[3, S, S]`` (the target), ``alpha`` ``[1, S, S]``, ``trimap`` ``[1, S, S]``,
    ``segmentation`` bool scalar tensor.
    """

    def __init__(self, items: Sequence[TrainingItem], options: PipelineOptions, seed: int) -> None:
        self.items, self.options, self.seed = list(items), options, seed
        self.groups: dict[str, list[int]] = {}
        for index, item in enumerate(self.items):
            self.groups.setdefault(item.group, []).append(index)

    def __len__(self) -> int:
        return len(self.items)

    def reference_of(self, index: int, rng: random.Random) -> int:
        """The reference drawn for target ``index`` (see the module docstring for the self-pairing rule)."""
        members = self.groups[self.items[index].group]
        if len(members) > 2 or not self.options.self_pairing:
            members = [m for m in members if m != index]
        return rng.choice(members)

    def _rng(self, key: tuple[int, int]) -> random.Random:
        epoch, index = key
        return random.Random(f"{self.seed}/{epoch}/{index}")

    def describe(self, key: tuple[int, int]) -> str:
        """``target '<file>' with reference '<file>'``: the files of the pair ``self[key]``."""
        reference = self.items[self.reference_of(key[1], self._rng(key))]
        return f"target {str(self.items[key[1]].sample.image)!r} with reference {str(reference.sample.image)!r}"

    def __getitem__(self, key: tuple[int, int]) -> dict[str, torch.Tensor]:
        rng = self._rng(key)
        target = self.items[key[1]]
        reference = self.items[self.reference_of(key[1], rng)]
        reference_image, reference_alpha, _ = load_item(reference, self.options, rng)
        image, alpha, trimap = load_item(target, self.options, rng)
        return {
            "reference_image": reference_image,
            "guidance_on_reference_image": reference_alpha,
            "source_image": image,
            "alpha": alpha,
            "trimap": trimap,
            "segmentation": torch.tensor(target.kind == SEGMENTATION),
        }


def epoch_order(count: int, epoch: int, shuffle: bool, seed: int) -> list[int]:
    """Item indices of one epoch: the fixed list order (official, no shuffling) or a seeded permutation."""
    order = list(range(count))
    if shuffle:
        random.Random(f"{seed}/order/{epoch}").shuffle(order)
    return order


def step_keys(step: int, batch: int, count: int, shuffle: bool, seed: int) -> list[tuple[int, int]]:
    """The ``(epoch, index)`` keys of the ``batch`` items of optimizer step ``step``: positions
    ``step * batch ...`` of the endless sequence of epochs (an epoch boundary may fall inside a batch)."""
    keys = []
    orders: dict[int, list[int]] = {}
    for position in range(step * batch, (step + 1) * batch):
        epoch = position // count
        if epoch not in orders:
            orders[epoch] = epoch_order(count, epoch, shuffle, seed)
        keys.append((epoch, orders[epoch][position % count]))
    return keys
