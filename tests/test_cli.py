"""The standalone command line: a diffusers SD2 folder + checkpoint + reference -> alpha PNGs."""

from __future__ import annotations

import json

import numpy as np
import pytest
import torch
from PIL import Image

from icm_model.cli import main
from icm_model.decoder.checkpoint import load_decoder, read_tensors, save_decoder
from icm_model.random_models import TINY_DECODER, random_decoder


@pytest.fixture(scope="module")
def setup(standalone_models):
    """The tiny models, reference and mask of ``standalone_models``, and three targets (two of one size) beside a
    file that is no image."""
    root = standalone_models[0]
    rng = np.random.default_rng(0)
    (root / "targets").mkdir(exist_ok=True)
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


# --- output names, errors, equality with the library -----------------------------------------------------------------


def _read(path, mode: str) -> torch.Tensor:
    """An image ``[1, 3, H, W]`` (mode RGB) or mask ``[1, H, W]`` (mode L) in 0..1, read here with PIL."""
    tensor = torch.from_numpy(np.asarray(Image.open(path).convert(mode), dtype=np.float32) / 255.0)
    return tensor.permute(2, 0, 1).unsqueeze(0) if mode == "RGB" else tensor.unsqueeze(0)


def _library(root):
    from icm_model.cli import load_matting

    return load_matting(root / "sd", root / "icm.safetensors", torch.device("cpu"), "fp32")


def _library_context(root, references, seed=0, ensemble=4):
    """The union of the (image, mask) references, encoded by the library."""
    from functools import reduce

    from icm_model.pipeline import ReferenceContext

    matting = _library(root)
    contexts = [
        matting.encode_reference(_read(image, "RGB"), _read(mask, "L"), ensemble=ensemble, seed=seed)
        for image, mask in references
    ]
    return reduce(ReferenceContext.union, contexts)


def _library_alpha(root, image_path, references, seed=0, ensemble=4):
    """Alpha ``[H, W]`` of one target by the library (load_matting + InContextMatting), the images read here."""
    context = _library_context(root, references, seed, ensemble)
    return _library(root).matte(context, _read(image_path, "RGB"), ensemble=ensemble, seed=seed)[0, 0].numpy()


def _assert_png_is(path, alpha):
    """The 8-bit PNG is the library's alpha rounded (float noise of batched vs single runs: 1e-3 of a level)."""
    png = np.asarray(Image.open(path)).astype(np.float64)
    assert png.shape == alpha.shape
    assert np.abs(png - alpha.astype(np.float64) * 255).max() <= 0.5 + 1e-3


def test_cli_alpha_is_the_librarys(setup, tmp_path):
    assert main(_matte_args(setup, tmp_path / "out", "--seed", "3", "--ensemble", "2")) == 0
    for name in ("a", "b", "c"):
        expected = _library_alpha(setup, setup / "targets" / f"{name}.jpg", [(setup / "ref.png", setup / "mask.png")],
                                  seed=3, ensemble=2)  # fmt: skip
        _assert_png_is(tmp_path / "out" / f"{name}.png", expected)


def test_repeated_reference_is_the_union_of_the_references(setup, tmp_path, capsys, monkeypatch):
    """Both --reference pairs reach the matting: the context the CLI mattes with is the library's union of the two
    (on this random decoder the second reference moves alpha by less than a PNG level, so the context is compared)."""
    from icm_model.pipeline import InContextMatting

    rng = np.random.default_rng(5)
    Image.fromarray(rng.integers(0, 255, (90, 120, 3), dtype=np.uint8)).save(tmp_path / "ref2.png")
    mask = np.zeros((90, 120), np.uint8)
    mask[10:70, 50:110] = 255
    Image.fromarray(mask).save(tmp_path / "mask2.png")
    contexts = []
    matte = InContextMatting.matte
    monkeypatch.setattr(InContextMatting, "matte", lambda self, context, *a, **k: contexts.append(context) or matte(
        self, context, *a, **k))  # fmt: skip
    second = ["--reference", str(tmp_path / "ref2.png"), "--reference-mask", str(tmp_path / "mask2.png")]
    assert main(_matte_args(setup, tmp_path / "two", "--ensemble", "2", *second)) == 0
    references = [(setup / "ref.png", setup / "mask.png"), (tmp_path / "ref2.png", tmp_path / "mask2.png")]
    expected = _library_context(setup, references, ensemble=2)
    assert len(expected.token_masks) == 2 and {len(c.token_masks) for c in contexts} == {2}
    for context in contexts:
        assert torch.equal(context.query, expected.query)
        assert all(torch.equal(a, b) for a, b in zip(context.token_masks, expected.token_masks, strict=True))
    _assert_png_is(
        tmp_path / "two" / "c.png", _library_alpha(setup, setup / "targets" / "c.jpg", references, ensemble=2)
    )
    assert main(_matte_args(setup, tmp_path / "bad", "--reference", str(tmp_path / "ref2.png"))) == 2
    assert "give one --reference-mask per --reference (2 images, 1 masks)" in capsys.readouterr().err


def test_a_bug_keeps_its_traceback(setup, tmp_path, monkeypatch, capsys):
    """Only the pack's user-input errors (InputError) become one 'error:' line; a ValueError from a bug propagates."""
    import icm_model.cli

    def broken(*args, **kwargs):
        raise ValueError("a bug deep inside")

    monkeypatch.setattr(icm_model.cli, "matte_targets", broken)
    with pytest.raises(ValueError, match="a bug deep inside"):
        main(_matte_args(setup, tmp_path / "out"))
    assert "error:" not in capsys.readouterr().err
