"""A small fingerprint of the picture marks were drawn on: its 8 x 8 grey thumbnail (docs/MARKS.md).

The editor stores it in the marks (``image.fingerprint``); the node computes it from the image it receives and refuses
marks drawn on another picture of the same size. The thumbnail does not depend on the resolution, so marks drawn on
a half-size copy still match; it is compared with a tolerance (a browser's JPEG decoder, colour management or a
brightness change upstream move its levels a little), so it tells apart pictures, not versions of one picture.
"""

from __future__ import annotations

import math

import torch

from .marks_format import FINGERPRINT_GRID, MAX_MEAN_DIFFERENCE, MIN_CORRELATION

FINGERPRINT_DIGITS = 2 * FINGERPRINT_GRID * FINGERPRINT_GRID
"""Hexadecimal digits of a fingerprint: one byte (a grey level 0..255) per thumbnail cell, row by row."""


def _cell_edges(size: int) -> list[tuple[int, int]]:
    """Pixel rows (or columns) ``[start, end)`` of the thumbnail's cells; an image thinner than the grid repeats
    pixels."""
    edges = []
    for i in range(FINGERPRINT_GRID):
        start = i * size // FINGERPRINT_GRID
        edges.append((start, max(start + 1, (i + 1) * size // FINGERPRINT_GRID)))
    return edges


def picture_fingerprint(image: torch.Tensor) -> str:
    """The fingerprint of ``image`` ``[3, H, W]`` (RGB in 0..1): per cell of an 8 x 8 grid, the mean of R, G and B
    over its pixels in 8-bit levels (each value rounded to 0..255 first), rounded half up; as hexadecimal digits."""
    levels = (image[:3].detach().double().cpu().clamp(0, 1) * 255).round().long().sum(0)  # [H, W], R + G + B
    rows, columns = _cell_edges(levels.shape[0]), _cell_edges(levels.shape[1])
    digits = []
    for top, bottom in rows:
        band = levels[top:bottom]
        for left, right in columns:
            total, count = int(band[:, left:right].sum()), 3 * (bottom - top) * (right - left)
            digits.append(f"{(2 * total + count) // (2 * count):02x}")
    return "".join(digits)


def fingerprint_levels(fingerprint: str) -> list[int]:
    """The grey levels (0..255, row by row) of a fingerprint."""
    return [int(fingerprint[i : i + 2], 16) for i in range(0, len(fingerprint), 2)]


def fingerprint_difference(a: str, b: str) -> tuple[float, float]:
    """``(mean absolute difference in grey levels, Pearson correlation)`` of two fingerprints' thumbnails (the
    correlation is 0 when either is flat)."""
    x, y = fingerprint_levels(a), fingerprint_levels(b)
    n = len(x)
    mean_difference = sum(abs(p - q) for p, q in zip(x, y, strict=True)) / n
    mx, my = sum(x) / n, sum(y) / n
    cov = sum((p - mx) * (q - my) for p, q in zip(x, y, strict=True))
    vx, vy = sum((p - mx) ** 2 for p in x), sum((q - my) ** 2 for q in y)
    return mean_difference, (cov / math.sqrt(vx * vy) if vx > 0 and vy > 0 else 0.0)


def same_picture(a: str, b: str) -> bool:
    """Whether two fingerprints are of one picture: thumbnails within ``MAX_MEAN_DIFFERENCE`` grey levels on average,
    or correlated at least ``MIN_CORRELATION`` (the same picture brighter, darker or with more contrast)."""
    mean_difference, correlation = fingerprint_difference(a, b)
    return mean_difference <= MAX_MEAN_DIFFERENCE or correlation >= MIN_CORRELATION
