"""Checkpoint loading: the released key set, strict checks, refused pickles, conversion."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest
import torch
from helpers import SHARED, require, shared_path, unavailable
from safetensors.torch import save_file

from icm_model.decoder.checkpoint import (
    convert_checkpoint,
    decoder_from_state_dict,
    expected_shapes,
    load_decoder,
    official_key,
    read_tensors,
    save_decoder,
)
from icm_model.decoder.config import DecoderConfig
from icm_model.random_models import TINY_DECODER, random_decoder


@pytest.fixture(scope="module")
def schema() -> dict:
    return json.loads(require(shared_path("ICM_OFFICIAL_SCHEMA", "icm/official_schema.json")).read_text())


@pytest.fixture(scope="module")
def released_state_dict(schema) -> dict[str, torch.Tensor]:
    """Random tensors under every key and shape of the released checkpoint."""
    generator = torch.Generator().manual_seed(0)
    return {
        key: torch.randn(spec["shape"], generator=generator).to(getattr(torch, spec["dtype"]))
        for key, spec in schema["keys"].items()
    }


def test_released_architecture_matches_the_schema(schema):
    ours = expected_shapes(DecoderConfig.from_official(schema["config"]))
    assert ours == {key: tuple(spec["shape"]) for key, spec in schema["keys"].items()}
    assert DecoderConfig.from_official(schema["config"]) == DecoderConfig()
    assert DecoderConfig().working_size == 768


def test_strict_load_of_the_released_key_set(released_state_dict):
    decoder = decoder_from_state_dict(released_state_dict, DecoderConfig())
    key = "in_context_decoder.detail_decoder.fusion_blks.3.conv.conv.weight"
    assert torch.equal(decoder.head.detail.fusion_blocks[3].conv.weight, released_state_dict[key])
    assert not decoder.training


@pytest.mark.parametrize("fmt", ["ckpt", "safetensors"])
def test_files_written_like_the_release_load(tmp_path, fmt, schema):
    """The shared script writes the released key set as a Lightning .ckpt (with optimizer state) or .safetensors."""
    script = require(SHARED / "icm/make_random_icm_ckpt.py")
    path = tmp_path / f"icm.{fmt}"
    subprocess.run(
        [sys.executable, str(script), str(shared_path("ICM_OFFICIAL_SCHEMA", "icm/official_schema.json")), str(path)],
        check=True,
        capture_output=True,
    )
    decoder = load_decoder(path)
    assert decoder.config == DecoderConfig()


def _error(state_dict: dict) -> str:
    with pytest.raises(ValueError) as info:
        decoder_from_state_dict(state_dict, DecoderConfig(), "test.ckpt")
    return str(info.value)


def test_missing_key_is_named(released_state_dict):
    key = "in_context_decoder.in_context_fusion.attn_module.norm.bias"
    message = _error({k: v for k, v in released_state_dict.items() if k != key})
    assert "missing keys" in message and key in message


def test_unexpected_key_is_named(released_state_dict):
    key = "in_context_decoder.extra_module.weight"
    message = _error({**released_state_dict, key: torch.zeros(3)})
    assert "unexpected keys" in message and key in message


def test_wrong_shape_is_named(released_state_dict):
    key = "in_context_decoder.in_context_fusion.attn_module_list.1.conv.weight"
    message = _error({**released_state_dict, key: torch.zeros(256, 576, 3, 3)})
    assert "wrong shapes" in message and key in message and "[256, 2304, 3, 3]" in message


def test_stable_diffusion_file_gets_a_hint():
    message = _error({"model.diffusion_model.input_blocks.0.0.weight": torch.zeros(320, 4, 3, 3)})
    assert "not an IconMatting checkpoint" in message and "models/checkpoints" in message


class _RunsCode:
    def __init__(self, marker: Path) -> None:
        self.marker = marker

    def __reduce__(self):
        return (Path.write_text, (self.marker, "pwned"))


def test_pickle_that_runs_code_is_refused(tmp_path, released_state_dict):
    marker = tmp_path / "marker.txt"
    path = tmp_path / "evil.ckpt"
    torch.save({"state_dict": released_state_dict, "payload": _RunsCode(marker)}, path)
    with pytest.raises(ValueError, match="NOT loaded"):
        load_decoder(path)
    assert not marker.exists()


@pytest.mark.parametrize("name", ["broken.safetensors", "broken.ckpt"])
def test_corrupt_file(tmp_path, name):
    path = tmp_path / name
    path.write_bytes(b"\x00\x01 not a checkpoint" * 10)
    with pytest.raises(ValueError, match="broken"):
        load_decoder(path)


def test_missing_file_and_unknown_type(tmp_path):
    with pytest.raises(ValueError, match="does not exist"):
        load_decoder(tmp_path / "nothing.safetensors")
    (tmp_path / "model.onnx").write_bytes(b"x")
    with pytest.raises(ValueError, match="unsupported checkpoint type"):
        load_decoder(tmp_path / "model.onnx")


def test_plain_state_dict_pickle(tmp_path, released_state_dict):
    path = tmp_path / "plain.pth"
    torch.save(released_state_dict, path)
    assert load_decoder(path).config == DecoderConfig()


def test_convert_ckpt_to_safetensors(tmp_path, released_state_dict):
    source, converted = tmp_path / "icm.ckpt", tmp_path / "icm.safetensors"
    torch.save({"state_dict": released_state_dict, "epoch": 3}, source)
    convert_checkpoint(source, converted)
    tensors, metadata = read_tensors(converted)
    assert set(tensors) == set(released_state_dict)
    for key, value in released_state_dict.items():
        assert torch.equal(tensors[key], value), key
    assert DecoderConfig.from_json(metadata["icm_decoder_config"]) == DecoderConfig()
    with pytest.raises(ValueError, match=r"\.safetensors"):
        convert_checkpoint(source, tmp_path / "icm.ckpt2")


def test_tiny_config_travels_in_safetensors_metadata(tmp_path):
    decoder = random_decoder(TINY_DECODER, seed=3)
    path = tmp_path / "tiny.safetensors"
    save_decoder(decoder, path)
    loaded = load_decoder(path)
    assert loaded.config == TINY_DECODER
    for (name, ours), theirs in zip(loaded.state_dict().items(), decoder.state_dict().values(), strict=True):
        assert torch.equal(ours, theirs), name


def test_safetensors_without_metadata_is_checked_against_the_released_architecture(tmp_path):
    path = tmp_path / "tiny_no_meta.safetensors"
    tensors = {official_key(k): v.contiguous() for k, v in random_decoder(TINY_DECODER).state_dict().items()}
    save_file(tensors, path)
    with pytest.raises(ValueError, match="wrong shapes"):
        load_decoder(path)
    assert load_decoder(path, TINY_DECODER).config == TINY_DECODER


UNSAFE_ADVICE = ("weights_only", "add_safe_globals", "safe_globals", "allowlist")


@pytest.mark.parametrize("payload", ["code", "corrupt"])
def test_errors_never_advise_loading_unsafely(tmp_path, payload):
    marker, path = tmp_path / "marker.txt", tmp_path / "file.ckpt"
    if payload == "code":
        torch.save({"state_dict": {}, "payload": _RunsCode(marker)}, path)
    else:
        torch.save({"state_dict": {}}, path)
        path.write_bytes(path.read_bytes()[:-40])
    with pytest.raises(ValueError, match=r"^file\.ckpt ") as info:
        load_decoder(path)
    message = str(info.value)
    assert not [word for word in UNSAFE_ADVICE if word in message], message
    assert not marker.exists()
    if payload == "code":
        assert "NOT loaded" in message and "Unsupported global" in message  # torch's reason, without its advice


def test_no_file_suggests_unsafe_loading():
    root = Path(__file__).resolve().parents[1]
    listing = subprocess.run(
        ["git", "ls-files", "--cached", "--others", "--exclude-standard"], cwd=root, capture_output=True, text=True
    )
    if listing.returncode != 0:
        unavailable("the pack is not a git checkout")
    unsafe = "weights_only" + "=False"  # split, so that this file does not hold it either
    files = [root / name for name in listing.stdout.splitlines() if (root / name).is_file()]
    assert files and not [str(path) for path in files if unsafe in path.read_text(errors="ignore")]
