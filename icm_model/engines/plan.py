"""A matting job's plan: output names, the targets still to do, and the U-Net batches both engines run.

Both engines matte the same batches (consecutive targets of one size, as many as one U-Net call holds), so a target's
alpha does not depend on the engine or on the worker it lands on.
"""

from __future__ import annotations

from collections import Counter
from dataclasses import dataclass
from pathlib import PurePosixPath

from ..image_io import image_size
from ..validation import InputError
from .storage import Storage

ALPHA_SUFFIX = ".png"
RGBA_SUFFIX = "_rgba.png"


@dataclass(frozen=True)
class Target:
    """One target image of a job.

    Attributes:
        location: its path or URI.
        name: the output stem: ``<name>.png`` is its alpha, ``<name>_rgba.png`` its cut-out.
        size: ``(height, width)`` as the image is shown (EXIF orientation applied), or None when unreadable.
    """

    location: str
    name: str
    size: tuple[int, int] | None = None


@dataclass(frozen=True)
class Failure:
    """A target that could not be matted, and why (shown to the user by name)."""

    location: str
    reason: str


def _file_name(location: str) -> str:
    return PurePosixPath(location.replace("\\", "/")).name


def output_names(locations: list[str]) -> list[str]:
    """Output stems of the targets: the file name's stem, or ``<stem>_<extension>`` where targets share a stem
    (``a.jpg`` and ``a.png`` give ``a_jpg`` and ``a_png``), so no output overwrites another."""
    stems = [PurePosixPath(_file_name(location)).stem for location in locations]
    shared = {stem for stem, count in Counter(stems).items() if count > 1}
    names = [
        f"{stem}_{PurePosixPath(_file_name(location)).suffix.lstrip('.').lower()}" if stem in shared else stem
        for stem, location in zip(stems, locations, strict=True)
    ]
    outputs = Counter(name + suffix for name in names for suffix in (ALPHA_SUFFIX, RGBA_SUFFIX))
    clashes = sorted(output for output, count in outputs.items() if count > 1)
    if clashes:
        raise InputError(
            f"targets would write the same output file ({', '.join(clashes)}): rename the targets so that no name is "
            "another's name plus '_rgba' or '_<extension>'"
        )
    return names


def outputs_of(storage: Storage, out: str, name: str, foreground: bool) -> list[str]:
    """The files a target writes: its alpha, and its cut-out when a foreground method is set."""
    suffixes = (ALPHA_SUFFIX, RGBA_SUFFIX) if foreground else (ALPHA_SUFFIX,)
    return [storage.join(out, name + suffix) for suffix in suffixes]


def probe_size(location: str) -> tuple[int, int]:
    """``(height, width)`` of an image as shown, from its header; InputError naming it when it is not an image."""
    with Storage.for_location(location).open_read(location) as stream:
        width, height = image_size(stream, "target image", location)
    return height, width


def plan_targets(
    storage: Storage, locations: list[str], out: str, foreground: bool
) -> tuple[list[Target], int, list[Failure]]:
    """The targets still to matte, with their sizes; how many are already done (every output present in ``out``, on
    ``storage``); and the targets whose header cannot be read."""
    todo, done, failures = [], 0, []
    for location, name in zip(locations, output_names(locations), strict=True):
        if all(storage.exists(path) for path in outputs_of(storage, out, name, foreground)):
            done += 1
            continue
        try:
            todo.append(Target(location, name, probe_size(location)))
        except ValueError as error:
            failures.append(Failure(location, str(error)))
    return todo, done, failures


def plan_batches(targets: list[Target], per_call: int) -> list[list[Target]]:
    """Consecutive targets of the same size, at most ``per_call`` at a time (the batches of one U-Net call each)."""
    batches: list[list[Target]] = []
    for target in targets:
        if batches and len(batches[-1]) < per_call and batches[-1][0].size == target.size:
            batches[-1].append(target)
        else:
            batches.append([target])
    return batches
