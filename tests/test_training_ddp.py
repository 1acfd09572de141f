"""Data parallel training on the CPU (gloo): 2 torchrun processes with one item each train like 1 process with the
batch of 2, and gradient accumulation like one forward of the whole batch.

BatchNorm is frozen (``--batchnorm frozen``: running statistics, not batch statistics) in these comparisons: with
batch statistics, per-process BatchNorm over 1 item differs from BatchNorm over 2 items by design (the official code
too), and PyTorch's SyncBatchNorm, which would remove that difference, runs on CUDA only.
"""

from __future__ import annotations

import csv
import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import torch
from test_training_cli import _write_groups

from icm_model.cli import main
from icm_model.decoder.checkpoint import read_tensors, save_decoder
from icm_model.random_models import random_decoder, write_diffusers_folder

ROOT = Path(__file__).resolve().parents[1]


@pytest.fixture(scope="module")
def setup(tmp_path_factory):
    root = tmp_path_factory.mktemp("ddp")
    write_diffusers_folder(root / "sd", "tiny")
    save_decoder(random_decoder(), root / "icm.safetensors")
    _write_groups(root / "data", {"cat": 2, "dog": 2}, np.random.default_rng(3))
    return root


def _args(root, out, *extra):
    return [
        "train", "--sd", str(root / "sd"), "--init", str(root / "icm.safetensors"), "--data", str(root / "data"),
        "--out", str(out), "--steps", "2", "--batch-size", "2", "--ensemble", "1", "--warmup-steps", "0",
        "--lr", "1e-3", "--batchnorm", "frozen", "--device", "cpu", *extra,
    ]  # fmt: skip


def _log(out):
    with (out / "loss.csv").open() as file:
        return [{k: float(v) for k, v in row.items() if k != "seconds"} for row in csv.DictReader(file)]


def _same_run(a, b, tolerance):
    """Equal logged losses and gradient norms (the gradient norm is what a wrong loss scale would change: Adam's
    update is nearly scale-free) and equal trained tensors, within ``tolerance``."""
    for row_a, row_b in zip(_log(a), _log(b), strict=True):
        for key in row_a:
            assert row_a[key] == pytest.approx(row_b[key], rel=tolerance), key
    first, second = (read_tensors(out / "model.safetensors")[0] for out in (a, b))
    for key in first:
        assert torch.allclose(first[key], second[key], rtol=tolerance, atol=tolerance), key


@pytest.mark.parametrize("recipe", ["official", "corrected"])
def test_gradient_accumulation_equals_the_whole_batch(setup, tmp_path, recipe):
    assert main(_args(setup, tmp_path / "whole", "--recipe", recipe)) == 0
    assert main(_args(setup, tmp_path / "accumulated", "--recipe", recipe, "--micro-batch", "1")) == 0
    _same_run(tmp_path / "whole", tmp_path / "accumulated", 1e-5)


def test_two_gloo_processes_equal_one_process_with_both_items(setup, tmp_path):
    assert main(_args(setup, tmp_path / "one")) == 0
    command = [sys.executable, "-m", "torch.distributed.run", "--standalone", "--nproc_per_node", "2", "-m",
               "icm_model", *_args(setup, tmp_path / "two")]  # fmt: skip
    environment = {**os.environ, "OMP_NUM_THREADS": "1", "PYTHONPATH": str(ROOT)}
    done = subprocess.run(command, env=environment, capture_output=True, text=True, timeout=300)
    assert done.returncode == 0, done.stderr[-3000:]
    _same_run(tmp_path / "one", tmp_path / "two", 1e-5)
