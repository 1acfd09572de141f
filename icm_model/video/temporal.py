"""Temporal stability of video mattes: motion-compensated, mismatch-gated recursive smoothing of alpha.

Each frame's alpha is blended with the previous frame's (already stabilised) alpha *warped along the motion* between
the two frames, and only where that warp explains the new frame: where the warped previous frame does not match the
current one (occlusions, newly revealed background, motion too fast to find), the current alpha is kept as it is. So
a moving object's edge is followed, not smeared, while flicker on everything the motion explains is averaged out.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F

from .motion import backward_flow, warp

DEFAULT_STRENGTH = 0.5
"""Weight of the previous frame's warped alpha where the motion explains the new frame (0 = off)."""
MAX_STRENGTH = 0.95
MISMATCH_THRESHOLD = 0.08
"""Mean absolute colour difference (0..1) between a frame and the warped previous frame at which smoothing stops."""


class TemporalStabiliser:
    """Stabilises the alpha of consecutive frames, one chunk after another; it keeps the last frame and alpha.

    Args:
        strength: in [0, ``MAX_STRENGTH``]; 0 returns every alpha unchanged.
        threshold: colour mismatch (0..1) of the motion-compensated previous frame above which a pixel is left alone.
    """

    def __init__(self, strength: float = DEFAULT_STRENGTH, threshold: float = MISMATCH_THRESHOLD) -> None:
        if not 0 <= strength <= MAX_STRENGTH:
            raise ValueError(f"temporal strength must be in 0..{MAX_STRENGTH}, got {strength}")
        self.strength, self.threshold = strength, threshold
        self.frame: torch.Tensor | None = None
        """``[1, 3, H, W]`` the last frame seen."""
        self.alpha: torch.Tensor | None = None
        """``[1, 1, H, W]`` its stabilised alpha."""

    def copy(self) -> TemporalStabiliser:
        """An independent stabiliser in the same state (the tensors it keeps are never modified in place)."""
        twin = TemporalStabiliser(self.strength, self.threshold)
        twin.frame, twin.alpha = self.frame, self.alpha
        return twin

    def gate(self, previous: torch.Tensor, current: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """Backward flow ``[1, 2, H, W]`` and where it explains ``current``: ``[1, 1, H, W]`` in [0, 1]."""
        flow = backward_flow(previous, current)
        mismatch = (current - warp(previous, flow)).abs().mean(dim=1, keepdim=True)
        mismatch = F.max_pool2d(F.avg_pool2d(mismatch, 3, 1, 1, count_include_pad=False), 3, 1, 1)
        return flow, (1 - (mismatch / self.threshold) ** 2).clamp(0, 1)

    @torch.no_grad()
    def __call__(self, frames: torch.Tensor, alpha: torch.Tensor) -> torch.Tensor:
        """Stabilised alpha ``[b, H, W]`` in [0, 1] of frames ``[b, 3, H, W]`` in [0, 1] that follow the last ones."""
        if self.strength == 0:
            return alpha
        out = []
        for frame, matte in zip(frames.to(alpha.device).float().split(1), alpha.float().split(1), strict=True):
            matte = matte.unsqueeze(1)
            if self.frame is not None and self.frame.shape == frame.shape:
                flow, gate = self.gate(self.frame, frame)
                matte = matte + self.strength * gate * (warp(self.alpha, flow) - matte)
            self.frame, self.alpha = frame, matte
            out.append(matte.squeeze(1))
        return torch.cat(out).to(alpha.dtype)
