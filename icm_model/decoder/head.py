"""The trained matting head: guidance convs, multi-scale feature fusion and the ViTMatte-style detail decoder."""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn

from .config import IMAGE_STREAM_CHANNELS, DecoderConfig


class ConvNormReLU(nn.Module):
    """conv3x3 (no bias) -> BatchNorm -> ReLU."""

    def __init__(self, in_channels: int, out_channels: int, stride: int = 1) -> None:
        super().__init__()
        self.conv = nn.Conv2d(in_channels, out_channels, 3, stride=stride, padding=1, bias=False)
        self.bn = nn.BatchNorm2d(out_channels)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return F.relu(self.bn(self.conv(x)))


class GuidanceConv(nn.Module):
    """Compresses an intra-similarity map to a few guidance channels.

    Input ``[B, r, r, r*r]`` (for each query token, its propagated similarity to every key token); LayerNorm over the
    key axis, channels-first, ReLU, conv3x3 (no bias). Output ``[B, guidance_channels, r, r]``.
    """

    def __init__(self, tokens: int, out_channels: int) -> None:
        super().__init__()
        self.ln = nn.LayerNorm(tokens)
        self.conv = nn.Conv2d(tokens, out_channels, 3, padding=1, bias=False)

    def forward(self, intra: torch.Tensor) -> torch.Tensor:
        return self.conv(F.relu(self.ln(intra).permute(0, 3, 1, 2)))


def upsample2x(x: torch.Tensor) -> torch.Tensor:
    """Bilinear x2 upsampling (align_corners=False), as in every fusion step of the head."""
    return F.interpolate(x, scale_factor=2.0, mode="bilinear", align_corners=False)


class DetailDecoder(nn.Module):
    """ViTMatte's DetailCapture: fuses the 1/16-scale guided feature with an image conv stream, then predicts alpha.

    ``forward(feature [B, C, H/16, W/16], image [B, 3, H, W] in [-1, 1]) -> alpha [B, 1, H, W]`` in [0, 1].
    """

    def __init__(self, in_channels: int, fusion_channels: tuple[int, ...]) -> None:
        super().__init__()
        stream_in = (3, *IMAGE_STREAM_CHANNELS[:-1])
        self.image_stream = nn.ModuleList(
            ConvNormReLU(cin, cout, stride=2) for cin, cout in zip(stream_in, IMAGE_STREAM_CHANNELS, strict=True)
        )
        # Fusion block i meets the detail feature of scale 1/2**(3-i): 192, 96, 48 channels, then the image itself.
        detail_channels = (*reversed(IMAGE_STREAM_CHANNELS), 3)
        fusion_in = (in_channels, *fusion_channels[:-1])
        self.fusion_blocks = nn.ModuleList(
            ConvNormReLU(detail + cin, cout)
            for detail, cin, cout in zip(detail_channels, fusion_in, fusion_channels, strict=True)
        )
        self.alpha_head = nn.Sequential(
            nn.Conv2d(fusion_channels[-1], 16, 3, padding=1),
            nn.BatchNorm2d(16),
            nn.ReLU(),
            nn.Conv2d(16, 1, 1),
        )

    def forward(self, feature: torch.Tensor, image: torch.Tensor) -> torch.Tensor:
        details = [image]
        for conv in self.image_stream:
            details.append(conv(details[-1]))
        for block, detail in zip(self.fusion_blocks, reversed(details), strict=True):
            feature = block(torch.cat([detail, upsample2x(feature)], dim=1))
        return torch.sigmoid(self.alpha_head(feature))


class MattingHead(nn.Module):
    """Turns the intra-similarity guidance, the U-Net matting features and the target image into alpha.

    At each token grid (low, high) the intra map is compressed by a :class:`GuidanceConv` and concatenated after the
    projected U-Net feature; the two grids are fused at the high grid, and the detail decoder upsamples to pixels.
    """

    def __init__(self, config: DecoderConfig) -> None:
        super().__init__()
        c = config
        self.guidance_convs = nn.ModuleList(GuidanceConv(t, c.guidance_channels) for t in c.attention_tokens)
        self.feature_convs = nn.ModuleList(
            ConvNormReLU(cin, cout) for cin, cout in zip(c.feature_channels, c.feature_out_channels, strict=True)
        )
        self.guided_feature_convs = nn.ModuleList(
            ConvNormReLU(cout + c.guidance_channels, cout) for cout in c.feature_out_channels
        )
        self.scale_fusion = ConvNormReLU(sum(c.feature_out_channels), c.feature_out_channels[1])
        self.detail = DetailDecoder(c.feature_out_channels[1], c.fusion_channels)

    def forward(
        self,
        intra: tuple[torch.Tensor, torch.Tensor],
        features: tuple[torch.Tensor, torch.Tensor],
        image: torch.Tensor,
    ) -> tuple[torch.Tensor, torch.Tensor]:
        """Predicts alpha.

        Args:
            intra: intra-similarity maps ``[B, r, r, r*r]`` at the low and high grids.
            features: U-Net matting features ``[B, C, r, r]`` (up-block 0 and up-block 1 outputs).
            image: target image ``[B, 3, H, W]`` in [-1, 1], ``H = 16 * r_high``.

        Returns:
            ``(alpha, guidance_preview)``: alpha ``[B, 1, H, W]`` in [0, 1]; the preview ``[B, 1, H, W]`` is the
            channel mean of both compressed guidance maps resized to the image and averaged (unbounded, for display).
        """
        guided, previews = [], []
        for i in range(2):
            guidance = self.guidance_convs[i](intra[i])
            feature = self.feature_convs[i](features[i])
            guided.append(self.guided_feature_convs[i](torch.cat([feature, guidance], dim=1)))
            previews.append(
                F.interpolate(
                    guidance.mean(1, keepdim=True), size=image.shape[-2:], mode="bilinear", align_corners=False
                )
            )
        fused = self.scale_fusion(torch.cat([guided[1], upsample2x(guided[0])], dim=1))
        return self.detail(fused, image), (previews[0] + previews[1]) / 2
