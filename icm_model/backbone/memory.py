"""What one capture pass needs in device memory on top of the weights: a stated model of it.

The model, per U-Net call over ``N`` latents of ``h x w`` (token grid of level ``l``: ``T_l = ceil(h / 2^l) *
ceil(w / 2^l)``; ``c_l`` channels and ``heads_l`` heads at level ``l``; activations in the U-Net's dtype of ``b``
bytes; the captured grids are level 1 (high, 48x48 at 768x768) and level 2 (low, 24x24)):

- fixed, whatever ``N`` (:meth:`UNetCapture.attend` works one sample at a time): the explicit scores and
  probabilities of one sample on the largest captured grid, fp32, ``2 * heads_l * T_l^2 * 4`` bytes, and its q, k, v
  in fp32, ``3 * T_l * c_l * 4`` (at 768x768: 10 heads x 2304^2 x 2 x 4 B = 425 MB);
- per latent, attention: the running sum over layers of the head-averaged probabilities of every captured grid,
  ``T_l^2 * 4`` each, and the head average of the layer being captured, ``T_l^2 * 4`` for the largest grid (fp32);
- per latent, the recorded up-block outputs: up-block 1 (``c_2`` channels on level 1's grid) and, when the low grid
  is captured, up-block 0 (``c_3`` channels on level 2's grid), ``b`` bytes each element;
- per latent, activations (``b`` bytes each): the skip connections the input side keeps for the output side (conv_in
  and every ResBlock output at its level, every downsampler's output at the next level), plus the working set of the
  widest layer, :data:`FEEDFORWARD_COPIES` x ``c_0 * T_0`` (the GEGLU feed-forward of a level-0 transformer). The
  other self- and cross-attention layers are assumed to use a memory-efficient kernel (PyTorch SDPA, as ComfyUI
  does), whose scores are never held whole.

The parts are added although they peak at different moments of the pass, so the model is an upper bound: on the tiny
random U-Net (fp32, CPU) it is 1.1-1.7 x the measured peak of the tensors the pass allocates (tests/test_memory.py).

Not modelled: the weights (ComfyUI's model management counts them), the VAE encode (ComfyUI's VAE batches by its own
estimate), the matting head.
"""

from __future__ import annotations

from dataclasses import dataclass

from .capture import HIGH, LOW

FEEDFORWARD_COPIES = 20
"""Level-0 activation copies (``c_0 * T_0`` elements each) alive at once in the widest layer, a level-0 transformer's
GEGLU feed-forward: its 8c projection, the 4c GELU of the gate and their 4c product, beside the block's residual
stream, its normalised copy and the transformer's input (c each): 19, rounded up."""
FP32_BYTES = 4
GRID_LEVEL = {HIGH: 1, LOW: 2}
"""U-Net level whose token grid each captured grid is."""


@dataclass(frozen=True)
class UNetLayout:
    """The U-Net architecture the estimate needs: ``channels`` and attention ``heads`` per level (4 levels), and
    ResBlocks per level on the input side."""

    channels: tuple[int, ...] = (320, 640, 1280, 1280)
    heads: tuple[int, ...] = (5, 10, 20, 20)
    res_blocks: int = 2


SD21 = UNetLayout()
"""Stable Diffusion 2.x (head dimension 64)."""


def tokens(height: int, width: int, level: int) -> int:
    """Tokens of level ``level``'s grid for ``height x width`` latents (stride-2 downsamplers, padding 1)."""
    return -(-height // 2**level) * -(-width // 2**level)


@dataclass(frozen=True)
class CaptureMemory:
    """Bytes a capture pass needs beyond the weights: ``fixed`` per call, plus ``per_latent`` for each latent.

    ``kept_per_latent`` is the part of ``per_latent`` the capture still holds after the pass (attention sums and
    up-block outputs).
    """

    fixed: int
    per_latent: int
    kept_per_latent: int

    def total(self, latents: int) -> int:
        """Bytes for one call over ``latents`` latents."""
        return self.fixed + latents * self.per_latent

    def latents_fitting(self, free: int, at_most: int) -> int:
        """Most latents (1..``at_most``) of one call that fit ``free`` bytes; 1 even when none fits."""
        return max(1, min(at_most, (free - self.fixed) // self.per_latent))


def capture_memory(
    height: int, width: int, grids: tuple[str, ...], dtype_bytes: int = 2, layout: UNetLayout = SD21
) -> CaptureMemory:
    """The stated model (module docstring) for latents ``[N, 4, height, width]``, capturing attention on ``grids``
    (``()`` for a plain reference pass), with activations of ``dtype_bytes`` bytes (2: fp16/bf16, 4: fp32)."""
    c, levels = layout.channels, len(layout.channels)
    t = [tokens(height, width, level) for level in range(levels)]
    skips = (1 + layout.res_blocks) * c[0] * t[0]
    skips += sum(c[level - 1] * t[level] + layout.res_blocks * c[level] * t[level] for level in range(1, levels))
    activations = (skips + FEEDFORWARD_COPIES * c[0] * t[0]) * dtype_bytes
    features = (c[3] * t[2] if LOW in grids else 0) + c[2] * t[1]
    captured = [GRID_LEVEL[grid] for grid in grids]
    sums = sum(t[level] ** 2 for level in captured) * FP32_BYTES
    layer = max((t[level] ** 2 for level in captured), default=0) * FP32_BYTES
    fixed = max(
        (2 * layout.heads[level] * t[level] ** 2 + 3 * t[level] * c[level]) * FP32_BYTES for level in captured
    ) if captured else 0  # fmt: skip
    kept = sums + features * dtype_bytes
    return CaptureMemory(fixed=fixed, per_latent=activations + kept + layer, kept_per_latent=kept)
