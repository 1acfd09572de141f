"""Reading, checking and converting IconMatting checkpoints.

Accepted: the released Lightning ``.ckpt`` (a dict whose ``state_dict`` holds ``in_context_decoder.*`` tensors), a
plain state dict pickle (``.pt``/``.pth``/``.bin``), or ``.safetensors``. Pickles are read with ``weights_only=True``
only, so a file that would run code on load is refused. Keys on disk always use the official names; the mapping to
our module names lives here and nowhere else.
"""

from __future__ import annotations

import pickle
import re
from collections.abc import Mapping
from pathlib import Path

import torch
from safetensors import SafetensorError, safe_open
from safetensors.torch import save_file

from ..validation import InputError
from .config import DecoderConfig
from .model import InContextDecoder

OFFICIAL_PREFIX = "in_context_decoder."
CONFIG_METADATA_KEY = "icm_decoder_config"
SAFETENSORS_SUFFIX = ".safetensors"
PICKLE_SUFFIXES = (".ckpt", ".pt", ".pth", ".bin")

# (official name, our name) prefixes; ``{i}`` stands for a layer index.
_KEY_MAP = (
    ("in_context_fusion.attn_module.norm.", "token_norm."),
    ("in_context_fusion.attn_module_list.{i}.", "head.guidance_convs.{i}."),
    ("in_context_fusion.ft_module_list.{i}.", "head.feature_convs.{i}."),
    ("in_context_fusion.ft_attn_module_list.{i}.", "head.guided_feature_convs.{i}."),
    ("in_context_fusion.fusion.module_list.0.conv.", "head.scale_fusion."),
    ("detail_decoder.convstream.convs.{i}.", "head.detail.image_stream.{i}."),
    ("detail_decoder.fusion_blks.{i}.conv.", "head.detail.fusion_blocks.{i}."),
    ("detail_decoder.matting_head.matting_convs.", "head.detail.alpha_head."),
)


def _prefix_pattern(template: str) -> re.Pattern[str]:
    return re.compile("^" + re.escape(template).replace(re.escape("{i}"), r"(?P<i>\d+)"))


_TO_OURS = [(_prefix_pattern(official), ours) for official, ours in _KEY_MAP]
_TO_OFFICIAL = [(_prefix_pattern(ours), official) for official, ours in _KEY_MAP]


def _rename(key: str, rules: list[tuple[re.Pattern[str], str]]) -> str | None:
    for pattern, template in rules:
        match = pattern.match(key)
        if match:
            return template.replace("{i}", match.groupdict().get("i") or "") + key[match.end() :]
    return None


def official_key(our_key: str) -> str:
    """Our key -> official key, e.g. ``head.detail.fusion_blocks.0.bn.weight`` ->
    ``in_context_decoder.detail_decoder.fusion_blks.0.conv.bn.weight``."""
    renamed = _rename(our_key, _TO_OFFICIAL)
    if renamed is None:
        raise KeyError(f"no official name for {our_key!r}")
    return OFFICIAL_PREFIX + renamed


def expected_shapes(config: DecoderConfig) -> dict[str, tuple[int, ...]]:
    """Official key -> shape of every tensor a checkpoint of this architecture must hold."""
    with torch.device("meta"):
        decoder = InContextDecoder(config)
    return {official_key(key): tuple(value.shape) for key, value in decoder.state_dict().items()}


def read_tensors(path: str | Path) -> tuple[dict[str, torch.Tensor], dict[str, str]]:
    """All tensors of a checkpoint file and its safetensors metadata (empty for pickles).

    Raises:
        ValueError: the file is missing, corrupt, not a checkpoint, or a pickle that needs code to load.
    """
    path = Path(path)
    if not path.is_file():
        raise InputError(f"IconMatting checkpoint {str(path)!r} does not exist")
    suffix = path.suffix.lower()
    if suffix == SAFETENSORS_SUFFIX:
        try:
            with safe_open(str(path), framework="pt") as file:
                return {key: file.get_tensor(key) for key in file.keys()}, dict(file.metadata() or {})  # noqa: SIM118
        except (SafetensorError, OSError) as error:
            raise unreadable_checkpoint(path.name, error) from error
    if suffix not in PICKLE_SUFFIXES:
        raise InputError(f"{path.name}: unsupported checkpoint type {suffix!r}; use .safetensors or .ckpt")
    try:
        loaded = torch.load(path, map_location="cpu", weights_only=True)
    except (pickle.UnpicklingError, RuntimeError, EOFError, OSError) as error:
        raise unreadable_checkpoint(path.name, error) from error
    if isinstance(loaded, Mapping) and isinstance(loaded.get("state_dict"), Mapping):
        loaded = loaded["state_dict"]
    if not isinstance(loaded, Mapping):
        raise InputError(f"{path.name} holds a {type(loaded).__name__}, not a state dict")
    return {key: value for key, value in loaded.items() if isinstance(value, torch.Tensor)}, {}


def _reason(error: Exception) -> str:
    """Why the file could not be read, without torch's advice to load it unsafely or to allowlist its globals."""
    text = str(error)
    found = re.search(r"WeightsUnpickler error: (.*?)(?:\s+Please use|\n|$)", text)
    if found:
        return found.group(1).strip()
    first_line = re.sub(r"\x1b\[[0-9;]*m", "", text).strip().split("\n")[0]
    return "" if "weights_only" in first_line else first_line


def unreadable_checkpoint(name: str, error: Exception) -> InputError:
    """The error for a checkpoint file that could not be read, saying why and what to do."""
    reason = _reason(error)
    if isinstance(error, pickle.UnpicklingError):
        detail = f" ({reason})" if reason else ""
        return InputError(
            f"{name} holds Python objects beyond plain tensors and was NOT loaded, because unpickling them could "
            f"run code. Use the released IconMatting checkpoint, or a .safetensors file.{detail}"
        )
    return InputError(f"{name} is not a readable checkpoint ({reason or type(error).__name__}); download it again")


def check_state_dict(state_dict: Mapping[str, torch.Tensor], config: DecoderConfig, source: str) -> None:
    """Strict check of keys and shapes against the architecture; the error lists every mismatch.

    Raises:
        ValueError: with the missing, unexpected and mis-shaped keys (official names).
    """
    expected = expected_shapes(config)
    missing = sorted(set(expected) - set(state_dict))
    unexpected = sorted(set(state_dict) - set(expected))
    misshaped = [
        f"{key} (expected {list(shape)}, got {list(state_dict[key].shape)})"
        for key, shape in expected.items()
        if key in state_dict and tuple(state_dict[key].shape) != shape
    ]
    if not (missing or unexpected or misshaped):
        return
    if not any(key.startswith(OFFICIAL_PREFIX) for key in state_dict):
        hint = " It holds no 'in_context_decoder.*' tensors, so it is not an IconMatting checkpoint" + (
            " (it looks like a Stable Diffusion checkpoint: that one goes in models/checkpoints)."
            if any(key.startswith("model.diffusion_model.") for key in state_dict)
            else "."
        )
    else:
        hint = " Is this the released IconMatting checkpoint (or one converted from it by this pack)?"
    parts = [
        f"{name}: {', '.join(keys[:20])}{' ...' if len(keys) > 20 else ''}"
        for name, keys in (("missing keys", missing), ("unexpected keys", unexpected), ("wrong shapes", misshaped))
        if keys
    ]
    raise InputError(f"{source} does not match the IconMatting decoder architecture. " + "; ".join(parts) + "." + hint)


def config_of(metadata: Mapping[str, str]) -> DecoderConfig:
    """The architecture stored in our safetensors metadata, else the released one."""
    text = metadata.get(CONFIG_METADATA_KEY)
    return DecoderConfig.from_json(text) if text else DecoderConfig()


def load_decoder(path: str | Path, config: DecoderConfig | None = None) -> InContextDecoder:
    """Builds the decoder from a checkpoint file, strictly checked, in eval mode on the CPU (float32).

    Args:
        path: ``.safetensors``, Lightning ``.ckpt`` or plain state-dict pickle.
        config: architecture; default: the file's metadata, else the released architecture.
    """
    tensors, metadata = read_tensors(path)
    return decoder_from_state_dict(tensors, config or config_of(metadata), Path(path).name)


def decoder_from_state_dict(
    state_dict: Mapping[str, torch.Tensor], config: DecoderConfig, source: str = "state dict"
) -> InContextDecoder:
    """A decoder holding ``state_dict`` (official key names), after the strict check."""
    check_state_dict(state_dict, config, source)
    decoder = InContextDecoder(config)
    ours = {_rename(key[len(OFFICIAL_PREFIX) :], _TO_OURS): value for key, value in state_dict.items()}
    decoder.load_state_dict(ours, strict=True)
    return decoder.eval().requires_grad_(False)


def save_decoder(decoder: InContextDecoder, path: str | Path) -> None:
    """Writes the decoder as ``.safetensors`` with official key names and its config in the metadata."""
    tensors = {official_key(key): value.detach().cpu().contiguous() for key, value in decoder.state_dict().items()}
    save_file(tensors, str(path), metadata={CONFIG_METADATA_KEY: decoder.config.to_json()})


def convert_checkpoint(source: str | Path, destination: str | Path, config: DecoderConfig | None = None) -> Path:
    """Converts any accepted checkpoint file to ``.safetensors`` (strictly checked on the way)."""
    destination = Path(destination)
    if destination.suffix.lower() != SAFETENSORS_SUFFIX:
        raise InputError(f"the converted file must end in .safetensors, got {destination.name!r}")
    save_decoder(load_decoder(source, config), destination)
    return destination
