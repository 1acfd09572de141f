"""Training checkpoints (resumable state) and the exported model, written so that an interruption never leaves a
half-written file where a loadable one was.

A training checkpoint is a folder ``step_NNNNNNNN/`` holding

* ``state.safetensors``: every tensor: ``model.<key>`` (the decoder's parameters and BatchNorm buffers, our names),
  ``optimizer.<param index>.<name>`` (Adam's moments and step counts), ``rng.torch``, ``rng.cuda.<device>``,
  ``rng.numpy`` (the MT19937 key);
* ``state.json``: everything else: the step, the optimizer's parameter groups and non-tensor state, the scheduler's
  state dict, the gradient scaler's state, the Python and numpy RNG positions, and the run's settings.

No pickle is written or read. The folder is written as ``.step_NNNNNNNN.tmp`` and renamed when complete; the newest
complete folder is the one a resume loads. The model the run exports is the released checkpoint's format
(:func:`icm_model.decoder.checkpoint.save_decoder`: official key names, the architecture in the metadata), written
to a temporary name and renamed.
"""

from __future__ import annotations

import json
import os
import random
import shutil
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import torch
from safetensors import SafetensorError
from safetensors.torch import load_file, save_file

from ..decoder.checkpoint import save_decoder
from ..decoder.model import InContextDecoder
from ..validation import InputError

STATE_TENSORS = "state.safetensors"
STATE_JSON = "state.json"
STEP_PREFIX = "step_"
FORMAT_VERSION = 1


@dataclass
class TrainingState:
    """What a resume restores beside the decoder: optimizer, scheduler, scaler, step and RNG states."""

    step: int
    optimizer: dict[str, Any]
    scheduler: dict[str, Any]
    scaler: dict[str, Any] | None
    settings: dict[str, Any]


def checkpoint_dir(folder: Path, step: int) -> Path:
    return folder / f"{STEP_PREFIX}{step:08d}"


def _rng_state() -> tuple[dict[str, torch.Tensor], dict[str, Any]]:
    tensors = {"rng.torch": torch.get_rng_state()}
    if torch.cuda.is_available():
        for index, state in enumerate(torch.cuda.get_rng_state_all()):
            tensors[f"rng.cuda.{index}"] = state
    kind, key, position, has_gauss, gauss = np.random.get_state()
    tensors["rng.numpy"] = torch.from_numpy(key.astype(np.int64))
    version, internal, python_gauss = random.getstate()
    return tensors, {
        "numpy": [kind, position, has_gauss, gauss],
        "python": [version, list(internal), python_gauss],
    }


def _set_rng_state(tensors: dict[str, torch.Tensor], state: dict[str, Any]) -> None:
    torch.set_rng_state(tensors["rng.torch"])
    cuda = [tensors[f"rng.cuda.{i}"] for i in range(torch.cuda.device_count()) if f"rng.cuda.{i}" in tensors]
    if cuda:
        torch.cuda.set_rng_state_all(cuda)
    kind, position, has_gauss, gauss = state["numpy"]
    np.random.set_state((kind, tensors["rng.numpy"].numpy().astype(np.uint32), position, has_gauss, gauss))
    version, internal, python_gauss = state["python"]
    random.setstate((version, tuple(internal), python_gauss))


def _split_optimizer(state_dict: dict[str, Any]) -> tuple[dict[str, torch.Tensor], dict[str, Any]]:
    tensors, plain = {}, {}
    for index, values in state_dict["state"].items():
        plain[str(index)] = {}
        for name, value in values.items():
            if isinstance(value, torch.Tensor):
                tensors[f"optimizer.{index}.{name}"] = value.detach().cpu().contiguous()
            else:
                plain[str(index)][name] = value
    return tensors, {"state": plain, "param_groups": state_dict["param_groups"]}


def _join_optimizer(tensors: dict[str, torch.Tensor], plain: dict[str, Any]) -> dict[str, Any]:
    state: dict[int, dict[str, Any]] = {int(index): dict(values) for index, values in plain["state"].items()}
    for key, value in tensors.items():
        if key.startswith("optimizer."):
            _, index, name = key.split(".", 2)
            state.setdefault(int(index), {})[name] = value
    return {"state": state, "param_groups": plain["param_groups"]}


def save_training_checkpoint(folder: Path, decoder: InContextDecoder, state: TrainingState, keep: int = 2) -> Path:
    """Writes ``folder/step_<step>/`` (write, then rename) and deletes all but the ``keep`` newest complete ones."""
    folder.mkdir(parents=True, exist_ok=True)
    final = checkpoint_dir(folder, state.step)
    temporary = folder / f".{final.name}.tmp"
    shutil.rmtree(temporary, ignore_errors=True)
    temporary.mkdir()
    tensors = {f"model.{key}": value.detach().cpu().contiguous() for key, value in decoder.state_dict().items()}
    optimizer_tensors, optimizer_plain = _split_optimizer(state.optimizer)
    rng_tensors, rng_plain = _rng_state()
    save_file({**tensors, **optimizer_tensors, **rng_tensors}, str(temporary / STATE_TENSORS))
    document = {
        "format": FORMAT_VERSION,
        "step": state.step,
        "optimizer": optimizer_plain,
        "scheduler": state.scheduler,
        "scaler": state.scaler,
        "rng": rng_plain,
        "settings": state.settings,
    }
    (temporary / STATE_JSON).write_text(json.dumps(document, indent=1))
    shutil.rmtree(final, ignore_errors=True)
    os.replace(temporary, final)
    for old in complete_checkpoints(folder)[:-keep]:
        shutil.rmtree(old)
    return final


def complete_checkpoints(folder: Path) -> list[Path]:
    """The complete checkpoint folders under ``folder``, oldest first (unfinished ``.tmp`` folders are ignored)."""
    if not folder.is_dir():
        return []
    found = [p for p in folder.iterdir() if p.is_dir() and p.name.startswith(STEP_PREFIX)]
    return sorted(p for p in found if (p / STATE_TENSORS).is_file() and (p / STATE_JSON).is_file())


def load_training_checkpoint(location: Path, decoder: InContextDecoder) -> TrainingState:
    """Restores the decoder's tensors and the RNG states from a checkpoint folder (or the newest one under a run's
    ``checkpoints/`` folder) and returns the rest for the optimizer, scheduler and scaler.

    Raises:
        ValueError: naming the folder or file, when there is no complete checkpoint or it does not fit the decoder.
    """
    if not (location / STATE_JSON).is_file():
        found = complete_checkpoints(location)
        if not found:
            raise InputError(
                f"{str(location)!r} holds no training checkpoint (a step_NNNNNNNN/ folder with {STATE_TENSORS} and "
                f"{STATE_JSON}): give a run's checkpoints/ folder or one of its step folders"
            )
        location = found[-1]
    try:
        tensors = load_file(str(location / STATE_TENSORS))
        document = json.loads((location / STATE_JSON).read_text())
    except (SafetensorError, OSError, json.JSONDecodeError) as error:
        raise InputError(
            f"training checkpoint {str(location)!r} is not readable ({error}); resume from another"
        ) from error
    if document.get("format") != FORMAT_VERSION:
        raise InputError(f"{str(location / STATE_JSON)!r} is not a training checkpoint of format {FORMAT_VERSION}")
    model = {key[len("model.") :]: value for key, value in tensors.items() if key.startswith("model.")}
    expected = decoder.state_dict()
    mismatched = sorted(
        set(model) ^ set(expected) | {k for k in model if k in expected and model[k].shape != expected[k].shape}
    )
    if mismatched:
        raise InputError(
            f"training checkpoint {str(location)!r} holds another decoder architecture ({', '.join(mismatched[:5])}"
            f"{' ...' if len(mismatched) > 5 else ''}): resume with the settings of the run that wrote it"
        )
    with torch.no_grad():
        for key, value in decoder.state_dict().items():
            value.copy_(model[key])
    _set_rng_state(tensors, document["rng"])
    return TrainingState(
        document["step"],
        _join_optimizer(tensors, document["optimizer"]),
        document["scheduler"],
        document["scaler"],
        document["settings"],
    )


def export_model(decoder: InContextDecoder, path: Path) -> Path:
    """Writes the decoder in the released checkpoint's format (see :func:`save_decoder`), via a temporary file."""
    path.parent.mkdir(parents=True, exist_ok=True)
    temporary = path.with_name(f".{path.name}.tmp")
    save_decoder(decoder, temporary)
    os.replace(temporary, path)
    return path
