"""``python -m icm_model train`` on the tiny random-weight model: resume equals an uninterrupted run bit for bit, the
exported model loads in Load IconMatting Model and in ``matte``, validation and logs, bad input, interrupted saves."""

from __future__ import annotations

import csv
import json
import os
import re
import shutil
import signal
from types import SimpleNamespace

import numpy as np
import pytest
import torch
from PIL import Image
from safetensors.torch import load_file, save_file
from test_cli import TINY_OFFICIAL_CONFIG

from icm_model.cli import main
from icm_model.decoder.checkpoint import load_decoder, read_tensors, save_decoder
from icm_model.random_models import TINY_DECODER, random_decoder, write_diffusers_folder
from icm_model.training import checkpoint_io, trainer
from icm_model.training.log import CURVE_SIZE

STEPS = 4


def _soft_disc(height, width, rng):
    y, x = np.mgrid[:height, :width]
    cy, cx = rng.uniform(0.4, 0.6) * height, rng.uniform(0.4, 0.6) * width
    alpha = np.clip((min(height, width) * 0.3 - np.hypot(y - cy, x - cx)) / 5 + 0.5, 0, 1)
    return (alpha * 255).astype(np.uint8)


def _write_groups(root, groups, rng):
    for group, count in groups.items():
        (root / group).mkdir(parents=True)
        for i in range(count):
            h, w = int(rng.integers(100, 160)), int(rng.integers(100, 160))
            Image.fromarray(rng.integers(0, 255, (h, w, 3), dtype=np.uint8)).save(root / group / f"{i}.png")
            Image.fromarray(_soft_disc(h, w, rng)).save(root / group / f"{i}_alpha.png")


def _train_args(root, out, *extra):
    return [
        "train", "--sd", str(root / "sd"), "--init", str(root / "icm.safetensors"), "--data", str(root / "data"),
        "--out", str(out), "--steps", str(STEPS), "--batch-size", "2", "--micro-batch", "1", "--ensemble", "1",
        "--warmup-steps", "0", "--lr", "1e-3", "--random-crop", "0.7", "--val-data", str(root / "val"),
        "--validate-every", "2", *extra,
    ]  # fmt: skip


@pytest.fixture(scope="module")
def runs(tmp_path_factory):
    """One uninterrupted run, and one stopped by SIGTERM after step 2 then resumed."""
    root = tmp_path_factory.mktemp("train")
    write_diffusers_folder(root / "sd", "tiny")
    save_decoder(random_decoder(), root / "icm.safetensors")
    rng = np.random.default_rng(0)
    _write_groups(root / "data", {"cat": 3, "dog": 2}, rng)
    for folder in ("image", "alpha"):
        (root / "val" / folder).mkdir(parents=True)
    for stem in ("fox_1", "fox_2"):
        Image.fromarray(rng.integers(0, 255, (96, 96, 3), dtype=np.uint8)).save(root / "val" / "image" / f"{stem}.png")
        Image.fromarray(_soft_disc(96, 96, rng)).save(root / "val" / "alpha" / f"{stem}.png")
    assert main(_train_args(root, root / "whole")) == 0

    original = trainer.Trainer.run

    def run_with_sigterm(self, stop=None, on_step=None):
        return original(self, stop, lambda step: step == 2 and os.kill(os.getpid(), signal.SIGTERM))

    trainer.Trainer.run = run_with_sigterm
    try:
        assert main(_train_args(root, root / "resumed")) == 0
    finally:
        trainer.Trainer.run = original
    stopped = checkpoint_io.complete_checkpoints(root / "resumed" / "checkpoints")
    assert [p.name for p in stopped] == ["step_00000002"]
    assert main(_train_args(root, root / "resumed", "--resume", str(root / "resumed" / "checkpoints"))) == 0
    return SimpleNamespace(root=root, whole=root / "whole", resumed=root / "resumed")


def _rows(path):
    with path.open() as file:
        return [{k: v for k, v in row.items() if k != "seconds"} for row in csv.DictReader(file)]


def test_resume_after_sigterm_equals_the_uninterrupted_run_bit_for_bit(runs):
    whole, resumed = (read_tensors(run / "model.safetensors")[0] for run in (runs.whole, runs.resumed))
    assert whole.keys() == resumed.keys() and all(torch.equal(whole[k], resumed[k]) for k in whole)
    start = read_tensors(runs.root / "icm.safetensors")[0]
    assert sum(not torch.equal(whole[k], start[k]) for k in whole) >= 50  # every parameter trained, BN stats moved
    states = [
        load_file(str(run / "checkpoints" / "step_00000004" / "state.safetensors"))
        for run in (runs.whole, runs.resumed)
    ]
    optimizer = [k for k in states[0] if k.startswith("optimizer.")]
    assert len(optimizer) == 3 * 50 and all(torch.equal(states[0][k], states[1][k]) for k in optimizer)
    assert _rows(runs.whole / "loss.csv") == _rows(runs.resumed / "loss.csv")
    assert [row["step"] for row in _rows(runs.whole / "loss.csv")] == ["1", "2", "3", "4"]
    assert _rows(runs.whole / "validation.csv") == _rows(runs.resumed / "validation.csv")


def test_logs_validation_and_curve(runs):
    rows = _rows(runs.whole / "loss.csv")
    assert [float(r["lr"]) for r in rows] == [1e-3] * STEPS
    assert all(float(r["loss"]) > 0 and float(r["grad_norm"]) > 0 for r in rows)
    terms = ("unknown_l1_loss", "known_l1_loss", "loss_pha_laplacian", "loss_gradient_penalty")
    for row in rows:
        assert float(row["loss"]) == pytest.approx(sum(float(row[t]) for t in terms), rel=1e-6)
    validation = _rows(runs.whole / "validation.csv")
    assert [r["step"] for r in validation] == ["2", "4"]
    assert all(
        np.isfinite(float(r[m])) and float(r[m]) >= 0 for r in validation for m in ("sad", "mse", "grad", "conn")
    )
    curve = Image.open(runs.whole / "loss.png")
    assert curve.format == "PNG" and curve.size == CURVE_SIZE


def test_exported_model_loads_in_the_node_and_in_matte(runs, nodes, tmp_path):
    import folder_paths

    trained = load_decoder(runs.whole / "model.safetensors")
    assert trained.config == TINY_DECODER
    folder = folder_paths.folder_names_and_paths["icon_matting"][0][0]
    os.makedirs(folder, exist_ok=True)
    shutil.copy(runs.whole / "model.safetensors", os.path.join(folder, "trained.safetensors"))
    loaded = nodes["LoadIconMattingModel"]().load("trained.safetensors")[0].decoder
    assert all(
        torch.equal(a, b) for a, b in zip(loaded.state_dict().values(), trained.state_dict().values(), strict=True)
    )
    image, mask = runs.root / "val" / "image" / "fox_1.png", runs.root / "val" / "alpha" / "fox_1.png"
    args = ["matte", "--sd", str(runs.root / "sd"), "--icm", str(runs.whole / "model.safetensors"), "--reference",
            str(image), "--reference-mask", str(mask), "--targets", str(runs.root / "val" / "image"), "--out",
            str(tmp_path / "mattes"), "--ensemble", "1"]  # fmt: skip
    assert main(args) == 0
    assert sorted(p.name for p in (tmp_path / "mattes").iterdir()) == ["fox_1.png", "fox_2.png"]


def test_bad_input_is_a_clear_error(runs, tmp_path, capsys):
    tensors, _ = read_tensors(runs.root / "icm.safetensors")
    save_file(tensors, str(tmp_path / "no_config.safetensors"))  # tiny tensors, no architecture metadata
    args = _train_args(runs.root, tmp_path / "out")
    args[args.index("--init") + 1] = str(tmp_path / "no_config.safetensors")
    assert main(args) == 2
    err = capsys.readouterr().err
    assert "--init '" in err and "no_config.safetensors" in err and "wrong shapes" in err and "--decoder-config" in err
    (tmp_path / "empty").mkdir()
    args = _train_args(runs.root, tmp_path / "out")
    args[args.index("--data") + 1] = str(tmp_path / "empty")
    assert main(args) == 2
    assert "empty' has neither image/ + alpha/ folders nor group folders" in capsys.readouterr().err
    blank = tmp_path / "blank" / "g"  # a group whose alphas are empty: no reference RoI
    blank.mkdir(parents=True)
    for i in range(2):
        Image.fromarray(np.zeros((64, 64, 3), np.uint8)).save(blank / f"{i}.png")
        Image.fromarray(np.zeros((64, 64), np.uint8)).save(blank / f"{i}_alpha.png")
    args = _train_args(runs.root, tmp_path / "out")
    args[args.index("--data") + 1] = str(tmp_path / "blank")
    assert main(args) == 2
    assert re.search(
        r"step 1 \(target '.*blank/g/\d.png' with reference '.*blank/g/\d.png'\): training sample 0: "
        "its reference guidance covers no whole",
        capsys.readouterr().err,
    )
    assert main(_train_args(runs.root, tmp_path / "out", "--precision", "fp16", "--device", "cpu")) == 2
    assert "--precision fp16 needs a CUDA device" in capsys.readouterr().err
    args = _train_args(runs.root, tmp_path / "out", "--resume", str(runs.whole / "checkpoints"))
    args[args.index("--batch-size") + 1] = "1"
    assert main(args) == 2
    assert "written with other settings (batch_size 2 -> 1" in capsys.readouterr().err


def test_from_scratch_with_a_decoder_config(runs, tmp_path):
    (tmp_path / "config.json").write_text(json.dumps(TINY_OFFICIAL_CONFIG))
    args = _train_args(runs.root, tmp_path / "out", "--decoder-config", str(tmp_path / "config.json"), "--steps", "1")
    args.pop(args.index("--init") + 1)
    args.remove("--init")
    assert main(args) == 0
    assert load_decoder(tmp_path / "out" / "model.safetensors").config == TINY_DECODER


def test_an_interrupted_save_leaves_the_last_checkpoint_loadable(runs, tmp_path, monkeypatch):
    saves = []
    real = checkpoint_io.save_file

    def interrupted_on_the_second_save(tensors, path, *args, **kwargs):
        saves.append(path)
        if len(saves) == 2:
            with open(path, "wb") as file:
                file.write(b"half a file")
            raise KeyboardInterrupt
        real(tensors, path, *args, **kwargs)

    monkeypatch.setattr(checkpoint_io, "save_file", interrupted_on_the_second_save)
    with pytest.raises(KeyboardInterrupt):
        main(_train_args(runs.root, tmp_path / "out", "--save-every", "1", "--steps", "2", "--validate-every", "0"))
    checkpoints = tmp_path / "out" / "checkpoints"
    assert sorted(p.name for p in checkpoints.iterdir()) == [".step_00000002.tmp", "step_00000001"]
    state = checkpoint_io.load_training_checkpoint(checkpoints, random_decoder(TINY_DECODER))
    assert state.step == 1
    assert load_decoder(tmp_path / "out" / "model.safetensors").config == TINY_DECODER
