"""The standalone command line: a diffusers SD2 folder + checkpoint + reference -> alpha PNGs."""

from __future__ import annotations

import json

import numpy as np
import pytest
import torch
from PIL import Image

from icm_model.cli import main
from icm_model.decoder.checkpoint import load_decoder, read_tensors, save_decoder
from icm_model.random_models import TINY_DECODER, random_decoder, write_diffusers_folder


@pytest.fixture(scope="module")
def setup(tmp_path_factory):
    root = tmp_path_factory.mktemp("cli")
    write_diffusers_folder(root / "sd", "tiny")
    save_decoder(random_decoder(), root / "icm.safetensors")
    rng = np.random.default_rng(0)
    Image.fromarray(rng.integers(0, 255, (100, 150, 3), dtype=np.uint8)).save(root / "ref.png")
    mask = np.zeros((100, 150), np.uint8)
    mask[20:80, 40:110] = 255
    Image.fromarray(mask).save(root / "mask.png")
    (root / "targets").mkdir()
    for name, (h, w) in {"a": (60, 80), "b": (60, 80), "c": (200, 90)}.items():
        Image.fromarray(rng.integers(0, 255, (h, w, 3), dtype=np.uint8)).save(root / "targets" / f"{name}.jpg")
    (root / "targets" / "notes.txt").write_text("not an image")
    return root


def _matte_args(root, out, *extra):
    return [
        "matte",
        "--sd",
        str(root / "sd"),
        "--icm",
        str(root / "icm.safetensors"),
        "--reference",
        str(root / "ref.png"),
        "--reference-mask",
        str(root / "mask.png"),
        "--targets",
        str(root / "targets"),
        "--out",
        str(out),
        *extra,
    ]


def test_matte_writes_full_size_alpha_pngs(setup, tmp_path, capsys):
    assert main(_matte_args(setup, tmp_path / "out")) == 0
    sizes = {p.name: Image.open(p).size for p in sorted((tmp_path / "out").iterdir())}
    assert sizes == {"a.png": (80, 60), "b.png": (80, 60), "c.png": (90, 200)}
    assert Image.open(tmp_path / "out" / "c.png").mode == "L"
    assert "3 alpha mattes written" in capsys.readouterr().out


def test_foreground_writes_straight_rgba_cutouts(setup, tmp_path, capsys):
    assert main(_matte_args(setup, tmp_path / "out", "--foreground", "--upsampling", "bilinear")) == 0
    assert "3 alpha mattes and RGBA cut-outs written" in capsys.readouterr().out
    cutout = Image.open(tmp_path / "out" / "c_rgba.png")
    assert cutout.mode == "RGBA" and cutout.size == (90, 200)
    alpha = np.asarray(Image.open(tmp_path / "out" / "c.png"))
    assert np.array_equal(np.asarray(cutout)[..., 3], alpha)
    assert main(_matte_args(setup, tmp_path / "plain", "--foreground", "multiply")) == 0
    target = np.asarray(Image.open(setup / "targets" / "c.jpg"))
    assert np.array_equal(np.asarray(Image.open(tmp_path / "plain" / "c_rgba.png"))[..., :3], target)


def test_same_seed_same_pngs(setup, tmp_path):
    for run in ("one", "two"):
        assert main(_matte_args(setup, tmp_path / run, "--seed", "5", "--ensemble", "2")) == 0
    for name in ("a.png", "c.png"):
        first, second = (np.asarray(Image.open(tmp_path / run / name)) for run in ("one", "two"))
        assert np.array_equal(first, second)


def test_bad_mask_gives_a_clear_error(setup, tmp_path, capsys):
    Image.fromarray(np.zeros((100, 150), np.uint8)).save(tmp_path / "empty.png")
    args = _matte_args(setup, tmp_path / "out")
    args[args.index("--reference-mask") + 1] = str(tmp_path / "empty.png")
    assert main(args) == 2
    assert "reference_mask is empty" in capsys.readouterr().err


def test_missing_inputs(setup, tmp_path, capsys):
    args = _matte_args(setup, tmp_path / "out")
    args[args.index("--targets") + 1] = str(tmp_path / "nowhere")
    assert main(args) == 2
    assert "neither an image file nor a folder" in capsys.readouterr().err
    args = _matte_args(setup, tmp_path / "out")
    args[args.index("--sd") + 1] = str(tmp_path)
    assert main(args) == 2
    assert "neither an SD2.1 checkpoint file nor a diffusers folder" in capsys.readouterr().err


TINY_OFFICIAL_CONFIG = {
    "in_context_fusion": {
        "res_ratio": None,
        "pool_type": "min",
        "use_norm": 64,
        "in_ft_dim": [64, 64],
        "in_attn_dim": [16, 64],
        "attn_out_dim": 8,
        "ft_out_dim": [16, 16],
    },
    "detail_decoder": {"in_chans": 16, "img_chans": 3, "fusion_out": [8, 8, 8, 8]},
}


def test_convert_a_ckpt_of_another_config(tmp_path, capsys):
    save_decoder(random_decoder(TINY_DECODER), tmp_path / "reference.safetensors")
    tensors, _ = read_tensors(tmp_path / "reference.safetensors")
    torch.save({"state_dict": tensors, "epoch": 1}, tmp_path / "icm.ckpt")
    (tmp_path / "config.json").write_text(json.dumps(TINY_OFFICIAL_CONFIG))
    out = tmp_path / "out.safetensors"
    assert main(["convert", str(tmp_path / "icm.ckpt"), str(out)]) == 2
    assert "wrong shapes" in capsys.readouterr().err
    assert main(["convert", str(tmp_path / "icm.ckpt"), str(out), "--config", str(tmp_path / "config.json")]) == 0
    converted, metadata = read_tensors(out)
    assert all(torch.equal(converted[key], value) for key, value in tensors.items())
    assert load_decoder(out).config == TINY_DECODER
