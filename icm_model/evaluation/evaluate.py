"""Evaluating in-context matting on a dataset laid out like ICM-57: per-image, per-group and overall metrics.

Dataset folder:

* ``image/``: the images, any of :data:`~icm_model.image_io.IMAGE_SUFFIXES`.
* ``alpha/``: the ground-truth alpha of every image: same file stem (any image suffix), same size; white = foreground.
* ``trimap/`` (optional): trimaps with the same stems, 0 = background, 128 = unknown, 255 = foreground. An image with a
  trimap is measured over the trimap's unknown pixels, one without over the whole image (the ``region`` column).

Groups: ICM-57 names its files by group. The group of a file is its stem without a trailing number and the ``_`` or
``-`` before it (``cat_01``, ``cat-2`` and ``cat3`` are all in group ``cat``; ``cat_01_02`` is in ``cat_01``); a stem
that is only digits is its own group. Names are case-sensitive.

References: in every group, ``min(references, group size - 1)`` images are drawn with
``random.Random(f"{seed}/{group}")`` from the sorted stems, so the choice depends only on the seed, the group's name
and its files (not on other groups, listing order or OS). Their ground-truth alpha is the reference mask (the pipeline
takes alpha > 0.5 as the RoI); the other images of the group are the targets. A group of a single image has nothing to
serve as reference: it is skipped and listed in the report. The same seed also seeds the pipeline's noise.

Metrics (:mod:`icm_model.evaluation.metrics`, the paper's definitions) compare the unrounded predicted alpha with the
ground truth. Per-group and overall values are means over target images: the overall mean weighs every target once,
so it is not the mean of the group means.
"""

from __future__ import annotations

import random
import re
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass, field
from functools import reduce
from pathlib import Path

import numpy as np
import torch
from PIL import Image

from ..image_io import IMAGE_SUFFIXES, check_companion_sizes, load_image, load_mask, save_alpha, thumbnail
from ..pipeline import DEFAULT_ENSEMBLE, DEFAULT_TIMESTEP, InContextMatting, ReferenceContext
from ..validation import InputError
from .metrics import MattingMetrics, alpha_to_255, compute_metrics

MAX_REFERENCES = 4
PANEL_SIZE = (200, 160)
"""(width, height) of each picture of the contact sheet; the picture is scaled to fit and centred."""
METRIC_NAMES = ("sad", "mse", "grad", "conn")
REGION_TRIMAP = "trimap unknown"
REGION_WHOLE = "whole image"
_TRAILING_NUMBER = re.compile(r"[_-]?\d+$")
_UNKNOWN_TOLERANCE = 0.5


def group_of(stem: str) -> str:
    """The ICM-57 group of a file stem: the stem without a trailing number and its ``_``/``-`` separator."""
    return _TRAILING_NUMBER.sub("", stem) or stem


@dataclass(frozen=True)
class Sample:
    """One image of the dataset: its stem, its group and its files (``trimap`` is ``None`` when it has none)."""

    name: str
    group: str
    image: Path
    alpha: Path
    trimap: Path | None


@dataclass(frozen=True)
class GroupPlan:
    """The references and the targets of one group, both in stem order."""

    name: str
    references: tuple[Sample, ...]
    targets: tuple[Sample, ...]

    @property
    def reference_names(self) -> tuple[str, ...]:
        return tuple(sample.name for sample in self.references)


@dataclass(frozen=True)
class EvaluationPlan:
    """Every group that can be evaluated (sorted by name) and the single-image groups that cannot."""

    groups: tuple[GroupPlan, ...]
    skipped: tuple[str, ...]

    @property
    def target_count(self) -> int:
        return sum(len(group.targets) for group in self.groups)


@dataclass(frozen=True)
class EvaluationSettings:
    """References per group (1..4, capped at group size - 1), seed (reference choice and noise), timestep, ensemble."""

    references: int = 1
    seed: int = 0
    timestep: int = DEFAULT_TIMESTEP
    ensemble: int = DEFAULT_ENSEMBLE

    def __post_init__(self) -> None:
        if not 1 <= self.references <= MAX_REFERENCES:
            raise InputError(f"references must be 1 to {MAX_REFERENCES} per group, got {self.references}")


@dataclass(frozen=True)
class ImageResult:
    """The metrics of one target, with the references used and a contact-sheet picture of its prediction."""

    sample: Sample
    references: tuple[str, ...]
    width: int
    height: int
    metrics: MattingMetrics
    preview: Image.Image = field(repr=False, compare=False)

    @property
    def region(self) -> str:
        return REGION_WHOLE if self.sample.trimap is None else REGION_TRIMAP


# --- the dataset ------------------------------------------------------------------------------------------------


def discover_dataset(root: str | Path) -> list[Sample]:
    """The samples of a dataset folder (see the module docstring), sorted by stem.

    Raises ``ValueError`` for a missing ``image/`` or ``alpha/`` folder, no images, two files of one stem, an image
    without alpha, or an alpha or trimap whose size differs from its image's. Only file headers are read.
    """
    root = Path(root)
    if not root.is_dir():
        raise InputError(f"dataset {str(root)!r} is not a folder")
    for required in ("image", "alpha"):
        if not (root / required).is_dir():
            raise InputError(
                f"dataset {str(root)!r} has no {required}/ folder: lay it out like ICM-57 "
                "(image/, alpha/ and optionally trimap/, files of one image sharing a stem)"
            )
    images = _files_by_stem(root / "image")
    if not images:
        raise InputError(f"no images ({', '.join(IMAGE_SUFFIXES)}) in {str(root / 'image')!r}")
    alphas = _files_by_stem(root / "alpha")
    trimaps = _files_by_stem(root / "trimap") if (root / "trimap").is_dir() else {}
    samples = []
    for stem, image in sorted(images.items()):
        if stem not in alphas:
            raise InputError(f"image {str(image)!r} has no ground truth: add alpha/{stem}.png (any image suffix)")
        check_companion_sizes(image, {"alpha": alphas[stem], "trimap": trimaps.get(stem)}, " (width x height)")
        samples.append(Sample(stem, group_of(stem), image, alphas[stem], trimaps.get(stem)))
    return samples


def _files_by_stem(folder: Path) -> dict[str, Path]:
    files: dict[str, Path] = {}
    for path in sorted(folder.iterdir()):
        if not (path.is_file() and path.suffix.lower() in IMAGE_SUFFIXES):
            continue
        if path.stem in files:
            raise InputError(f"{str(files[path.stem])!r} and {str(path)!r} share a stem: keep one of them")
        files[path.stem] = path
    return files


# --- the plan ---------------------------------------------------------------------------------------------------


def choose_references(group: str, names: Iterable[str], count: int, seed: int) -> list[str]:
    """``min(count, len(names) - 1)`` stems of a group, drawn by ``random.Random(f"{seed}/{group}")``, sorted.

    The draw is from the sorted names, so it depends only on ``seed``, ``group`` and the set of names.
    """
    names = sorted(names)
    if len(names) < 2:
        raise InputError(f"group {group!r} has {len(names)} image(s): in-context matting needs at least two")
    if count < 1:
        raise InputError(f"count must be at least 1, got {count}")
    return sorted(random.Random(f"{seed}/{group}").sample(names, min(count, len(names) - 1)))


def plan_evaluation(samples: Sequence[Sample], references: int, seed: int) -> EvaluationPlan:
    """Splits every group into references and targets (see :func:`choose_references`); skips single-image groups."""
    groups: dict[str, list[Sample]] = {}
    for sample in sorted(samples, key=lambda s: s.name):
        groups.setdefault(sample.group, []).append(sample)
    plans, skipped = [], []
    for name, members in sorted(groups.items()):
        if len(members) < 2:
            skipped.append(name)
            continue
        chosen = set(choose_references(name, (s.name for s in members), references, seed))
        plans.append(
            GroupPlan(
                name,
                tuple(s for s in members if s.name in chosen),
                tuple(s for s in members if s.name not in chosen),
            )
        )
    if not plans:
        raise InputError(
            f"no group has two or more images ({len(skipped)} single-image groups): name the files of a group "
            "like cat_01, cat_02 (see the group rule of icm_model.evaluation.evaluate)"
        )
    return EvaluationPlan(tuple(plans), tuple(skipped))


# --- running the model ------------------------------------------------------------------------------------------


def evaluate(
    matting: InContextMatting,
    plan: EvaluationPlan,
    settings: EvaluationSettings,
    *,
    on_target: Callable[[int], None] | None = None,
    alpha_dir: Path | None = None,
) -> list[ImageResult]:
    """Mattes every target of ``plan`` (reference encoded once per group) and measures it, in plan order.

    ``on_target(1)`` is called after each target; with ``alpha_dir`` the predicted alphas are saved there as
    ``<stem>.png``.
    """
    if alpha_dir is not None:
        alpha_dir.mkdir(parents=True, exist_ok=True)
    results = []
    for group in plan.groups:
        context = _reference_context(matting, group, settings)
        for sample in group.targets:
            image = load_image(sample.image, "image")
            alpha = matting.matte(context, image, ensemble=settings.ensemble, seed=settings.seed)[0, 0]
            if alpha_dir is not None:
                save_alpha(alpha_dir / f"{sample.name}.png", alpha)
            results.append(_measure(sample, group.reference_names, alpha))
            if on_target is not None:
                on_target(1)
    return results


def _reference_context(matting: InContextMatting, group: GroupPlan, settings: EvaluationSettings) -> ReferenceContext:
    """The union of the contexts of the group's references, each masked by its ground-truth alpha."""
    contexts = []
    for sample in group.references:
        try:
            contexts.append(
                matting.encode_reference(
                    load_image(sample.image, "reference image"),
                    load_mask(sample.alpha, "reference alpha"),
                    timestep=settings.timestep,
                    ensemble=settings.ensemble,
                    seed=settings.seed,
                )
            )
        except InputError as error:
            raise InputError(
                f"group {group.name!r}: reference {sample.name!r} ({str(sample.alpha)!r}) cannot be used: {error}; "
                "fix its alpha or pick other references with another seed"
            ) from error
    return reduce(ReferenceContext.union, contexts)


def _measure(sample: Sample, references: tuple[str, ...], alpha: torch.Tensor) -> ImageResult:
    """Metrics of a predicted alpha ``[H, W]`` in [0, 1] against the sample's ground truth (and trimap)."""
    truth = load_mask(sample.alpha, "alpha")[0]
    trimap = None if sample.trimap is None else _load_trimap(sample.trimap)
    metrics = compute_metrics(alpha_to_255(alpha), alpha_to_255(truth), trimap)
    height, width = alpha.shape
    return ImageResult(sample, references, width, height, metrics, thumbnail(alpha, PANEL_SIZE))


def _load_trimap(path: Path) -> np.ndarray:
    """A trimap file as ``(H, W)`` float64 in 0..255; refused if it has no unknown (128) pixel."""
    trimap = alpha_to_255(load_mask(path, "trimap")[0])
    if not (np.abs(trimap - 128.0) <= _UNKNOWN_TOLERANCE).any():
        raise InputError(
            f"trimap {str(path)!r} has no unknown (128) pixels: fix it, or delete it to measure the whole image"
        )
    return trimap
