"""Temporal stability of video mattes: motion-compensated, residual-gated recursive smoothing of alpha.

Each frame's alpha is blended with the previous frame's (already stabilised) alpha *warped along the sub-pixel motion*
between the two frames (:mod:`.motion`), and only where that warp explains the new frame: where the warped previous
frame differs from the current one by more than sensor noise (occlusions, newly revealed background, motion not
found), the current alpha is kept as it is. At a scene cut (:mod:`.cuts`), or where the motion explains less than
half of the frame, the stabiliser starts afresh: that frame's alpha is kept as it is. A new shot's history holds few
frames: the ``k``-th frame of a shot gives its history at most the weight ``(k - 1) / k`` (a running mean, whose
estimate of a static pixel is the best of ``k`` noisy frames), so early frames do not lean on one noisy first frame.
"""

from __future__ import annotations

import copy

import torch
import torch.nn.functional as F

from .cuts import CutDetector
from .motion import backward_flow, warp

DEFAULT_STRENGTH = 0.5
"""Weight of the previous frame's warped alpha where the motion explains the new frame (0 = off)."""
MAX_STRENGTH = 0.95
MISMATCH_THRESHOLD = 0.05
"""Mean absolute colour difference (0..1) between a frame and the warped previous frame at which blending stops."""
MIN_EXPLAINED = 0.5
"""Below this share of a frame's pixels explained by the motion (gate > 0.5) the stabiliser starts afresh."""


class TemporalStabiliser:
    """Stabilises the alpha of consecutive frames, one chunk after another; it keeps the last frame and alpha.

    Args:
        strength: in [0, ``MAX_STRENGTH``]; 0 returns every alpha unchanged.
        threshold: colour residual (0..1) of the motion-compensated previous frame at which a pixel is left alone.
    """

    def __init__(self, strength: float = DEFAULT_STRENGTH, threshold: float = MISMATCH_THRESHOLD) -> None:
        if not 0 <= strength <= MAX_STRENGTH:
            raise ValueError(f"temporal strength must be in 0..{MAX_STRENGTH}, got {strength}")
        self.strength, self.threshold = strength, threshold
        self.frame: torch.Tensor | None = None
        """``[1, 3, H, W]`` the last frame seen."""
        self.alpha: torch.Tensor | None = None
        """``[1, 1, H, W]`` its stabilised alpha."""
        self.cuts = CutDetector()
        self.shot_frames = 0
        """Frames of the current shot seen so far (the last one included)."""

    def copy(self) -> TemporalStabiliser:
        """An independent stabiliser in the same state (the tensors it keeps are never modified in place)."""
        twin = copy.copy(self)
        twin.cuts = copy.copy(self.cuts)
        return twin

    def gate(self, previous: torch.Tensor, current: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """Backward flow ``[1, 2, H, W]`` and where it explains ``current``: ``[1, 1, H, W]`` in [0, 1] (1 where the
        warped previous frame matches within noise, 0 from a residual of ``threshold`` on, and near such pixels)."""
        flow = backward_flow(previous, current)
        residual = (current - warp(previous, flow)).abs().mean(dim=1, keepdim=True)
        residual = F.max_pool2d(F.avg_pool2d(residual, 3, 1, 1, count_include_pad=False), 3, 1, 1)
        return flow, (1 - (residual / self.threshold) ** 2).clamp(0, 1)

    def _motion(self, frame: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor] | None:
        """:meth:`gate` from the previous frame to ``frame`` ``[1, 3, H, W]``, or None where ``frame`` starts a shot."""
        if self.frame is None or self.frame.shape != frame.shape or self.cuts.is_cut(self.frame, frame):
            return None
        flow, gate = self.gate(self.frame, frame)
        return (flow, gate) if float((gate > 0.5).float().mean()) >= MIN_EXPLAINED else None

    def _blend(self, frame: torch.Tensor, matte: torch.Tensor) -> torch.Tensor:
        """``matte`` ``[1, 1, H, W]`` of ``frame`` blended with the warped previous alpha (unless a shot starts)."""
        motion = self._motion(frame)
        if motion is None:
            self.shot_frames = 1
            return matte
        flow, gate = motion
        weight = min(self.strength, self.shot_frames / (self.shot_frames + 1))
        self.shot_frames += 1
        return matte + weight * gate * (warp(self.alpha, flow, "bicubic").clamp(0, 1) - matte)

    @torch.no_grad()
    def __call__(self, frames: torch.Tensor, alpha: torch.Tensor) -> torch.Tensor:
        """Stabilised alpha ``[b, H, W]`` in [0, 1] of frames ``[b, 3, H, W]`` in [0, 1] that follow the last ones."""
        if self.strength == 0:
            return alpha
        out = []
        for frame, matte in zip(frames.to(alpha.device).float().split(1), alpha.float().split(1), strict=True):
            matte = self._blend(frame, matte.unsqueeze(1))
            self.frame, self.alpha = frame, matte
            out.append(matte.squeeze(1))
        return torch.cat(out).to(alpha.dtype)
