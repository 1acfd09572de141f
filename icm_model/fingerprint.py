"""Short content fingerprints: are two sets of weights, or two sets of patches on them, the same?

A fingerprint is a hex digest of shapes, dtypes and a few evenly strided values of every tensor (never the object's
``id()`` or a file name): two loads of one checkpoint agree, two checkpoints of one architecture differ (trained or
fine-tuned weights differ almost everywhere, so :data:`SAMPLES_PER_TENSOR` values of each tensor tell them apart).
"""

from __future__ import annotations

import hashlib
import types
from collections.abc import Iterable
from typing import Any

import torch

SAMPLES_PER_TENSOR = 64
"""Values read from each tensor, evenly strided over its flattened elements."""
DIGEST_CHARS = 16
MAX_OBJECT_DEPTH = 4
"""How many plain objects deep :func:`content_fingerprint` follows attributes (patch objects hold their tensors one or
two levels down); deeper objects count by their type alone."""


def tensor_sample(tensor: torch.Tensor) -> bytes:
    """Shape, dtype and :data:`SAMPLES_PER_TENSOR` strided values (as float64) of ``tensor``, as bytes.

    A tensor without data (``meta`` device) counts by its shape and dtype alone.
    """
    header = f"{tuple(tensor.shape)}:{tensor.dtype}".encode()
    if tensor.device.type == "meta" or tensor.numel() == 0:
        return header
    flat = tensor.detach().reshape(-1)
    values = flat[:: max(1, flat.numel() // SAMPLES_PER_TENSOR)][:SAMPLES_PER_TENSOR]
    return header + values.to("cpu", torch.float64).numpy().tobytes()


def weights_fingerprint(named_tensors: Iterable[tuple[str, torch.Tensor]], settings: str = "") -> str:
    """Fingerprint of named weights (a ``state_dict``'s items): the names, in order, and :func:`tensor_sample` of
    each, plus ``settings`` (e.g. a configuration the weights do not show)."""
    digest = hashlib.sha256(settings.encode())
    for name, tensor in named_tensors:
        digest.update(name.encode())
        digest.update(tensor_sample(tensor))
    return digest.hexdigest()[:DIGEST_CHARS]


def content_fingerprint(value: Any) -> str:
    """Fingerprint of a nest of containers, numbers, strings, tensors, functions and plain objects (patches on a
    model and their settings).

    Tensors count by :func:`tensor_sample`; functions by their module, qualified name, code, defaults and the values
    their closure captured (so two closures of one patch with other strengths differ); other objects by their type and
    attributes, :data:`MAX_OBJECT_DEPTH` objects deep.
    """
    digest = hashlib.sha256()
    _digest(value, digest, 0)
    return digest.hexdigest()[:DIGEST_CHARS]


def _digest(value: Any, digest: hashlib._Hash, depth: int) -> None:
    digest.update(type(value).__qualname__.encode())
    if isinstance(value, torch.Tensor):
        digest.update(tensor_sample(value))
    elif value is None or isinstance(value, (bool, int, float, complex, str, bytes, torch.dtype, torch.device)):
        digest.update(repr(value).encode())
    elif isinstance(value, (list, tuple, set, frozenset)):
        items = sorted(value, key=repr) if isinstance(value, (set, frozenset)) else value
        digest.update(str(len(items)).encode())
        for item in items:
            _digest(item, digest, depth)
    elif isinstance(value, dict):
        digest.update(str(len(value)).encode())
        for key in sorted(value, key=repr):
            _digest(key, digest, depth)
            _digest(value[key], digest, depth)
    elif depth >= MAX_OBJECT_DEPTH:
        return
    elif isinstance(value, types.MethodType):
        _digest(value.__func__, digest, depth + 1)
        _digest(value.__self__, digest, depth + 1)
    elif isinstance(value, types.FunctionType):
        digest.update(f"{value.__module__}.{value.__qualname__}".encode())
        digest.update(value.__code__.co_code)
        _digest(value.__defaults__, digest, depth + 1)
        _digest([cell.cell_contents for cell in value.__closure__ or () if _cell_is_set(cell)], digest, depth + 1)
    elif isinstance(value, torch.nn.Module):
        _digest(dict(value.state_dict()), digest, depth + 1)
    elif hasattr(value, "__dict__"):
        _digest(vars(value), digest, depth + 1)


def _cell_is_set(cell: types.CellType) -> bool:
    try:
        cell.cell_contents  # noqa: B018 - an empty cell raises
    except ValueError:
        return False
    return True
