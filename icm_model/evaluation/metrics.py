"""Alpha-matting metrics of the IconMatting paper (CVPR 2024, section 4.2).

SAD, MSE, Grad and Conn follow Rhemann et al. 2009 exactly as the official IconMatting evaluation code
(``icm/criterion/matting_criterion_eval.py``) computes them, including its quirks (see
:func:`connectivity_error`).

Conventions shared by every function here:

* ``pred`` and ``target`` are 2-D ``(H, W)`` alpha mattes with values in 0..255 (float or int; numpy arrays,
  nested lists or torch tensors). Alpha held in 0..1, such as a ComfyUI ``MASK``, must go through
  :func:`alpha_to_255` first.
* ``trimap`` is ``None`` or an ``(H, W)`` array in 0..255 with 0 = background, 128 = unknown,
  255 = foreground (a value within 0.5 of 128 counts as unknown, so a 0..1 trimap passed through
  :func:`alpha_to_255` works). The metrics are summed (or averaged) over the unknown pixels only; with
  ``trimap=None`` the whole image counts. Gradients and connected components are always computed on the whole image.
* All arithmetic is float64. The returned values are the paper's scaled numbers (SAD, Grad and Conn
  divided by 1000).
"""

from __future__ import annotations

from dataclasses import asdict, dataclass
from functools import cache
from itertools import pairwise
from typing import Any

import numpy as np
import scipy.ndimage as ndi

__all__ = [
    "MattingMetrics",
    "alpha_to_255",
    "compute_metrics",
    "connectivity_error",
    "gradient_error",
    "mse",
    "sad",
]

ArrayLike = Any  # numpy array, nested list, or anything exposing .detach().cpu() like a torch tensor

_MAX_VALUE = 255.0
_UNKNOWN = 128.0
_UNKNOWN_TOLERANCE = 0.5  # trimap values within 0.5 of 128 are unknown (see _unknown_region)
_RANGE_SLOP = 1e-3  # float rounding allowed outside the nominal value range
_GRAD_SIGMA = 1.4
_GRAD_EPSILON = 1e-2
_CONN_STEP = 0.1
_CONN_MIN_DISTANCE = 0.15
_FOUR_CONNECTED = ndi.generate_binary_structure(2, 1)
_NO_UNKNOWN_MESSAGE = "trimap has no unknown (128) pixels; pass trimap=None to evaluate the whole image"


@dataclass(frozen=True)
class MattingMetrics:
    """The four paper metrics of one matte, already scaled (SAD, Grad and Conn divided by 1000)."""

    sad: float
    mse: float
    grad: float
    conn: float

    def as_dict(self) -> dict[str, float]:
        """Return ``{"sad": ..., "mse": ..., "grad": ..., "conn": ...}``."""
        return asdict(self)


def alpha_to_255(x: ArrayLike) -> np.ndarray:
    """Convert alpha (or a mask) in 0..1 to a float64 array in 0..255, of the same shape.

    Accepts numpy arrays, nested lists and torch tensors (any device). Raises ``ValueError`` naming ``x`` if it
    contains NaN or values outside 0..1 (beyond float slop), which usually means it is already in 0..255.
    """
    array = _as_float64(x)
    _check_values(array, "x", upper=1.0, slop=_RANGE_SLOP / _MAX_VALUE)
    return array * _MAX_VALUE


def sad(pred: ArrayLike, target: ArrayLike, trimap: ArrayLike | None = None) -> float:
    """Sum of absolute differences: ``sum(|pred - target| / 255)`` over the region, divided by 1000.

    ``pred``/``target``: ``(H, W)`` in 0..255; ``trimap``: ``(H, W)`` in 0..255 or ``None`` (whole image).
    """
    return _sad(*_prepare(pred, target, trimap))


def mse(pred: ArrayLike, target: ArrayLike, trimap: ArrayLike | None = None) -> float:
    """Mean squared error: ``mean(((pred - target) / 255) ** 2)`` over the region's pixels (not divided by 1000).

    ``pred``/``target``: ``(H, W)`` in 0..255; ``trimap``: ``(H, W)`` in 0..255 or ``None`` (whole image).
    """
    return _mse(*_prepare(pred, target, trimap))


def gradient_error(pred: ArrayLike, target: ArrayLike, trimap: ArrayLike | None = None) -> float:
    """Gradient error: ``sum((|grad pred| - |grad target|) ** 2)`` over the region, divided by 1000.

    Gradients are taken of ``pred / 255`` and ``target / 255`` over the whole image with first-derivative-of-
    Gaussian filters (sigma 1.4, 9x9, unit L2 norm, ``mode='nearest'`` borders), as in the classic
    ``gaussgradient``. ``pred``/``target``: ``(H, W)`` in 0..255; ``trimap``: ``(H, W)`` in 0..255 or ``None``.
    """
    return _gradient_error(*_prepare(pred, target, trimap))


def connectivity_error(pred: ArrayLike, target: ArrayLike, trimap: ArrayLike | None = None) -> float:
    """Connectivity error: ``sum(|phi(pred) - phi(target)|)`` over the region, divided by 1000.

    On ``pred / 255`` and ``target / 255`` (whole image) and thresholds ``t_i = 0, 0.1, ..., 1.0``: for each
    ``i >= 1``, ``omega`` is the "largest" 4-connected component of ``(pred >= t_i) & (target >= t_i)``; pixels
    not yet assigned and outside ``omega`` get level ``t_{i-1}``; pixels never assigned get level 1. With
    ``d = alpha - level``, ``phi = 1 - d * (d >= 0.15)``.

    Quirk kept from the official code (required to match its values): ``omega`` is the label with the most
    pixels *counting label 0*, i.e. the pixels outside the thresholded mask. Whenever those outnumber every
    connected component, ``omega`` is the complement of the mask, so the mask's pixels get the level instead.

    ``pred``/``target``: ``(H, W)`` in 0..255; ``trimap``: ``(H, W)`` in 0..255 or ``None`` (whole image).
    """
    return _connectivity_error(*_prepare(pred, target, trimap))


def compute_metrics(pred: ArrayLike, target: ArrayLike, trimap: ArrayLike | None = None) -> MattingMetrics:
    """Compute SAD, MSE, Grad and Conn at once (inputs validated once); see the single-metric functions."""
    prepared = _prepare(pred, target, trimap)
    return MattingMetrics(
        sad=_sad(*prepared),
        mse=_mse(*prepared),
        grad=_gradient_error(*prepared),
        conn=_connectivity_error(*prepared),
    )


def _sad(pred: np.ndarray, target: np.ndarray, region: np.ndarray) -> float:
    return float(np.sum(np.abs(pred - target)[region] / _MAX_VALUE) / 1000.0)


def _mse(pred: np.ndarray, target: np.ndarray, region: np.ndarray) -> float:
    return float(np.mean(((pred - target)[region] / _MAX_VALUE) ** 2))


def _gradient_error(pred: np.ndarray, target: np.ndarray, region: np.ndarray) -> float:
    error = (_gradient_magnitude(pred / _MAX_VALUE) - _gradient_magnitude(target / _MAX_VALUE)) ** 2
    return float(np.sum(error[region]) / 1000.0)


def _connectivity_error(pred: np.ndarray, target: np.ndarray, region: np.ndarray) -> float:
    pred, target = pred / _MAX_VALUE, target / _MAX_VALUE
    levels = _connectivity_levels(pred, target)
    error = np.abs(_connectivity_phi(pred, levels) - _connectivity_phi(target, levels))
    return float(np.sum(error[region]) / 1000.0)


@cache
def _gauss_gradient_filter(sigma: float) -> np.ndarray:
    """Return the x-derivative filter ``h[i, j] = g(i - half) * g'(j - half)``, normalised to unit L2 norm."""
    half = int(np.ceil(sigma * np.sqrt(-2.0 * np.log(np.sqrt(2.0 * np.pi) * sigma * _GRAD_EPSILON))))
    offsets = np.arange(-half, half + 1, dtype=np.float64)
    gauss = np.exp(-(offsets**2) / (2.0 * sigma**2)) / (sigma * np.sqrt(2.0 * np.pi))
    filter_x = np.outer(gauss, -offsets * gauss / sigma**2)
    filter_x /= np.sqrt(np.sum(filter_x * filter_x))
    filter_x.setflags(write=False)
    return filter_x


def _gradient_magnitude(image: np.ndarray) -> np.ndarray:
    filter_x = _gauss_gradient_filter(_GRAD_SIGMA)
    grad_x = ndi.convolve(image, filter_x, mode="nearest")
    grad_y = ndi.convolve(image, filter_x.T, mode="nearest")
    return np.sqrt(grad_x**2 + grad_y**2)


def _connectivity_levels(pred: np.ndarray, target: np.ndarray) -> np.ndarray:
    """Per pixel, the threshold level below which it leaves the "largest" joint component (1 if never)."""
    thresholds = np.arange(0.0, 1.0 + _CONN_STEP, _CONN_STEP)
    levels = np.full(pred.shape, -1.0)
    for previous, threshold in pairwise(thresholds):
        omega = _largest_label_mask((pred >= threshold) & (target >= threshold))
        levels[(levels == -1.0) & ~omega] = previous
    levels[levels == -1.0] = 1.0
    return levels


def _largest_label_mask(mask: np.ndarray) -> np.ndarray:
    """Pixels carrying the most frequent 4-connectivity label of ``mask``, label 0 (outside ``mask``) included.

    Counting label 0 is the official ``getLargestCC`` behaviour; ties go to the lowest label, as ``np.argmax``.
    """
    labels, _ = ndi.label(mask, structure=_FOUR_CONNECTED)
    return labels == np.argmax(np.bincount(labels.ravel()))


def _connectivity_phi(alpha: np.ndarray, levels: np.ndarray) -> np.ndarray:
    distance = alpha - levels
    return 1.0 - distance * (distance >= _CONN_MIN_DISTANCE)


def _prepare(pred: ArrayLike, target: ArrayLike, trimap: ArrayLike | None) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Validate the inputs; return float64 ``pred``, ``target`` and the boolean region mask."""
    pred_array = _as_matte(pred, "pred")
    target_array = _as_matte(target, "target")
    _check_same_shape(target_array, "target", pred_array.shape)
    if trimap is None:
        return pred_array, target_array, np.ones(pred_array.shape, dtype=bool)
    trimap_array = _as_matte(trimap, "trimap")
    _check_same_shape(trimap_array, "trimap", pred_array.shape)
    return pred_array, target_array, _unknown_region(trimap_array)


def _unknown_region(trimap: np.ndarray) -> np.ndarray:
    """Unknown pixels of a 0..255 trimap.

    Identical to the official ``trimap == 128`` on integer trimaps; the 0.5 tolerance also accepts trimaps that
    went through 0..1 floats (128/255 in float32, or 0.5 * 255 = 127.5) on their way here.
    """
    region = np.abs(trimap - _UNKNOWN) <= _UNKNOWN_TOLERANCE
    if not region.any():
        raise ValueError(_NO_UNKNOWN_MESSAGE)
    return region


def _as_matte(x: ArrayLike, name: str) -> np.ndarray:
    array = _as_float64(x)
    if array.ndim != 2:
        raise ValueError(f"{name} must be a 2-D (H, W) array, got shape {array.shape}")
    if array.size == 0:
        raise ValueError(f"{name} is empty (shape {array.shape})")
    _check_values(array, name, upper=_MAX_VALUE, slop=_RANGE_SLOP)
    return array


def _as_float64(x: ArrayLike) -> np.ndarray:
    if hasattr(x, "detach") and hasattr(x, "cpu"):
        x = x.detach().cpu()
    return np.asarray(x, dtype=np.float64)


def _check_same_shape(array: np.ndarray, name: str, expected: tuple[int, ...]) -> None:
    if array.shape != expected:
        raise ValueError(f"{name} shape {array.shape} does not match pred shape {expected}")


def _check_values(array: np.ndarray, name: str, upper: float, slop: float) -> None:
    if np.isnan(array).any():
        raise ValueError(f"{name} contains NaN")
    if array.size == 0:
        return
    low, high = float(array.min()), float(array.max())
    if low < -slop or high > upper + slop:
        raise ValueError(f"{name} values must lie in 0..{upper:g}, got min {low:g} and max {high:g}")
