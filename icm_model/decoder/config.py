"""Architecture of the trained IconMatting decoder (the in-context similarity norm plus the matting head)."""

from __future__ import annotations

import json
import math
from dataclasses import asdict, dataclass
from typing import Any

from ..validation import InputError

# The official DetailCapture builds its image conv stream with ViTMatte's defaults whatever the config says.
IMAGE_STREAM_CHANNELS = (48, 96, 192)


@dataclass(frozen=True)
class DecoderConfig:
    """Channel counts of the in-context decoder; the defaults are those of the released checkpoint.

    Two token grids run through the model: ``low`` (24x24 at a 768x768 input) and ``high`` (48x48). The U-Net
    features of up-block 0 live on the low grid, those of up-block 1 on the high grid, and the self-attention maps
    of each grid have ``grid**2`` channels once flattened.
    """

    feature_channels: tuple[int, int] = (1280, 1280)
    """Channels of the U-Net matting features (up-block 0 output, up-block 1 output)."""
    correspondence_channels: int = 1280
    """Channels of the correspondence feature (up-block 1 output) normalised before the inter-similarity."""
    attention_tokens: tuple[int, int] = (576, 2304)
    """Token counts of the low and high grids (the channel count of the intra-similarity maps)."""
    guidance_channels: int = 256
    """Channels of each conv-compressed intra-similarity map."""
    feature_out_channels: tuple[int, int] = (320, 320)
    """Channels of the guided matting features at the low and high grids."""
    fusion_channels: tuple[int, int, int, int] = (256, 128, 64, 32)
    """Channels of the detail decoder's four upsampling fusion blocks."""

    def __post_init__(self) -> None:
        for tokens in self.attention_tokens:
            if math.isqrt(tokens) ** 2 != tokens:
                raise ValueError(f"attention_tokens must be square numbers, got {self.attention_tokens}")
        low, high = self.token_grids
        if high != 2 * low:
            raise ValueError(f"the high token grid must be twice the low one, got {low} and {high}")

    @property
    def token_grids(self) -> tuple[int, int]:
        """Side of the low and high token grids (24 and 48 for the released model)."""
        return math.isqrt(self.attention_tokens[0]), math.isqrt(self.attention_tokens[1])

    @property
    def working_size(self) -> int:
        """Side of the square image the U-Net sees: 8x VAE downsampling, then 4x down to the low grid (768)."""
        return 32 * self.token_grids[0]

    @classmethod
    def from_official(cls, config: dict[str, Any]) -> DecoderConfig:
        """Reads the official ``in_context_decoder`` config (keys ``in_context_fusion`` and ``detail_decoder``)."""
        fusion, detail = config["in_context_fusion"], config["detail_decoder"]
        if fusion.get("res_ratio") is not None or fusion.get("pool_type", "min") != "min":
            raise InputError("only the released variant (res_ratio None, pool_type 'min') is supported")
        if detail["in_chans"] != fusion["ft_out_dim"][1]:
            raise InputError("detail_decoder.in_chans must equal the last of in_context_fusion.ft_out_dim")
        return cls(
            feature_channels=tuple(fusion["in_ft_dim"]),
            correspondence_channels=int(fusion["use_norm"]),
            attention_tokens=tuple(fusion["in_attn_dim"]),
            guidance_channels=int(fusion["attn_out_dim"]),
            feature_out_channels=tuple(fusion["ft_out_dim"]),
            fusion_channels=tuple(detail["fusion_out"]),
        )

    def to_json(self) -> str:
        """The config as JSON, as stored in the metadata of our ``.safetensors`` files."""
        return json.dumps(asdict(self))

    @classmethod
    def from_json(cls, text: str) -> DecoderConfig:
        return cls(
            **{key: tuple(value) if isinstance(value, list) else value for key, value in json.loads(text).items()}
        )
