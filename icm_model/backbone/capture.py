"""What one U-Net pass must capture, shared by every backbone (diffusers, ComfyUI).

A capture pass records the decoder features of up-blocks 0 and 1 and, for targets, the explicit self-attention
probabilities of the layers on the two token grids the matting head uses; every other attention layer keeps its fast
kernel. A reference pass records only up-block 1 and stops there, unless the reference-prompt extension (points,
scribbles) needs the reference's own self-attention on the correspondence (high) grid: then it records those layers
too. Once the last needed layer has run, the pass stops by raising :class:`StopUNet`.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field

import torch

LOW, HIGH = "low", "high"
"""The two token grids: up-block 0's output (24x24 at 768x768) and up-block 1's output (48x48)."""


class StopUNet(Exception):
    """Raised inside the U-Net once everything a capture pass needs has been recorded."""


@dataclass
class UNetCapture:
    """The results of one capture pass over ``N`` noisy latents.

    Attributes:
        with_attention: whether the matting features and the attention maps are wanted (targets), or only the
            correspondence feature (reference).
        reference_attention: for a reference (``with_attention`` False): also record the self-attention of the
            high grid, for the reference-prompt extension.
        stop_early: stop the U-Net once everything needed is recorded (off only to check that capture leaves the
            U-Net output unchanged).
        up_features: up-block index (0, 1) -> output ``[N, C, r, r]``; only 1 without attention.
        attention_sums: grid name -> sum over layers of the head-averaged probabilities ``[N, T, T]`` (fp32).
        attention_layers: grid name -> number of layers summed.
        on_block: called by the backbone after every U-Net block of the pass (progress; it may raise to cancel the
            pass). An early-stopped pass calls it exactly ``backbone.blocks_per_pass(with_attention)`` times.
    """

    with_attention: bool
    stop_early: bool = True
    reference_attention: bool = False
    on_block: Callable[[], None] | None = None
    up_features: dict[int, torch.Tensor] = field(default_factory=dict)
    attention_sums: dict[str, torch.Tensor] = field(default_factory=dict)
    attention_layers: dict[str, int] = field(default_factory=dict)

    @property
    def attention_grids(self) -> tuple[str, ...]:
        """The grids whose self-attention layers must run with explicit probabilities."""
        if self.with_attention:
            return (LOW, HIGH)
        return (HIGH,) if self.reference_attention else ()

    def block_done(self) -> None:
        """The backbone ran one more U-Net block of this pass."""
        if self.on_block is not None:
            self.on_block()

    def record_up_block(self, index: int, output: torch.Tensor) -> None:
        """Keeps up-block ``index``'s output (0 or 1); without attention, stops the pass after up-block 1."""
        if self.with_attention or index == 1:
            self.up_features[index] = output
        if index == 1 and not self.attention_grids and self.stop_early:
            raise StopUNet

    def attend(self, q: torch.Tensor, k: torch.Tensor, v: torch.Tensor, heads: int, grid: str) -> torch.Tensor:
        """Self-attention with explicit probabilities, recorded for ``grid``.

        Args:
            q, k, v: projected tokens ``[N, T, heads * d]``.
            heads: number of heads.
            grid: :data:`LOW` or :data:`HIGH`.

        Returns:
            ``softmax(q_h . k_h^T / sqrt(d)) @ v_h`` per head, ``[N, T, heads * d]`` in the dtype of ``q``. The
            probabilities are computed in fp32 one sample at a time, so memory stays at ``heads * T * T`` floats.
        """
        batch, tokens, inner = q.shape
        dim = inner // heads
        out = torch.empty_like(q)
        head_mean = torch.empty(batch, tokens, tokens, dtype=torch.float32, device=q.device)
        for n in range(batch):
            qh, kh, vh = (x[n].view(tokens, heads, dim).transpose(0, 1).float() for x in (q, k, v))
            probs = (qh @ kh.transpose(1, 2) * dim**-0.5).softmax(dim=-1)
            out[n] = (probs @ vh).transpose(0, 1).reshape(tokens, inner).to(q.dtype)
            head_mean[n] = probs.mean(dim=0)
        if grid in self.attention_sums:
            self.attention_sums[grid] += head_mean
        else:
            self.attention_sums[grid] = head_mean
        self.attention_layers[grid] = self.attention_layers.get(grid, 0) + 1
        return out

    def attention(self, grid: str) -> torch.Tensor:
        """Mean over layers of the head-averaged probabilities of ``grid``, ``[N, T, T]``."""
        if grid not in self.attention_sums:
            raise RuntimeError(f"no self-attention layer ran on the {grid} token grid")
        return self.attention_sums[grid] / self.attention_layers[grid]
