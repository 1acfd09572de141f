"""The icm_model backbone on ComfyUI's own SD2.1 MODEL, VAE and empty-prompt conditioning.

The user's MODEL is never touched: every patch lives in the ``model_options`` of clones
(``ModelPatcher.clone()``), which share the weights and nothing else. Three clones serve three kinds of pass:

- reference passes: an output-block patch records up-block 1's output and stops the U-Net there;
- reference passes for the reference-prompt extension (points, scribbles; a third clone): as above, plus explicit
  self-attention on the 48x48 grid (input blocks 4, 5, output blocks 6-8), stopping after output block 8;
- target passes: attn1 replace patches compute explicit self-attention on the 24x24 and 48x48 token grids (input
  blocks 4, 5, 7, 8 and output blocks 3-8 of the LDM layout), the output-block patch records up-blocks 0 and 1,
  and the pass stops after the attention of output block 8.

Every pass is loaded with ComfyUI's ``load_models_gpu`` and a memory estimate of the pass
(:func:`icm_model.backbone.memory.capture_memory`); its latents go through the U-Net in calls that fit the device's
free memory, smaller after an out-of-memory error (:func:`icm_model.backbone.split_pass.run_split`).

Both clones also tick the capture's progress after every input block and before every output block, where they honour
ComfyUI's Cancel (``throw_exception_if_processing_interrupted``): a cancelled pass stops before its next block.
"""

from __future__ import annotations

from collections.abc import Callable

import comfy.model_management
import torch

from ..icm_model.backbone.capture import HIGH, LOW, StopUNet, UNetCapture
from ..icm_model.backbone.features import LATENT_CHANNELS, LatentPosterior
from ..icm_model.backbone.memory import capture_memory
from ..icm_model.backbone.split_pass import run_split
from .model_check import check_sd2_v
from .model_identity import model_identity

# LDM block -> token grid of its self-attention (SD2.x, one transformer per block, transformer_index 0).
ATTENTION_BLOCKS = {
    ("input", 4): HIGH, ("input", 5): HIGH, ("input", 7): LOW, ("input", 8): LOW,
    ("output", 3): LOW, ("output", 4): LOW, ("output", 5): LOW,
    ("output", 6): HIGH, ("output", 7): HIGH, ("output", 8): HIGH,
}  # fmt: skip
# output_block_patch sees ``h`` before output block i concatenates its skip: at i = 3 it is up-block 0's output.
UP_BLOCK_OF_OUTPUT_PATCH = {3: 0, 6: 1}
INPUT_BLOCKS = 12
"""Input blocks of the SD2.x LDM U-Net (conv_in, then 2 per level plus 3 downsamplers): input_block_patch calls."""


def cross_attention_width(diffusion_model: torch.nn.Module) -> int:
    """Width of the text embedding the U-Net's cross-attention reads (1024 for SD2.x)."""
    for name, module in diffusion_model.named_modules():
        if name.endswith("attn2.to_k"):
            return module.in_features
    raise ValueError("the MODEL has no cross-attention layers: it is not a Stable Diffusion U-Net")


def attention_blocks(grids: tuple[str, ...]) -> list[tuple[str, int]]:
    """The LDM blocks whose self-attention runs on ``grids``, in execution order."""
    return [key for key, grid in ATTENTION_BLOCKS.items() if grid in grids]


def check_latent_channels(channels: int) -> None:
    """The SD2.1 U-Net takes 4-channel latents; another family's VAE (SD3, Flux: 16) would fail deep inside it."""
    if channels != LATENT_CHANNELS:
        raise ValueError(
            f"the VAE input makes {channels}-channel latents (the VAE of another model family, e.g. SD3 or Flux), but "
            f"the SD2.1 U-Net takes {LATENT_CHANNELS}: wire the VAE of the SD2.1 checkpoint"
        )


class ComfyBackbone:
    """:class:`icm_model.backbone.features.Backbone` on a ComfyUI ``ModelPatcher`` (SD2.x v-prediction) and ``VAE``.

    Args:
        model: the user's MODEL; only clones of it are patched.
        vae: the SD VAE (posterior mode, a documented difference from the official posterior sample).
        conditioning: the empty-prompt text embedding ``[1, 77, 1024]``.
    """

    def __init__(self, model, vae, conditioning: torch.Tensor) -> None:
        check_sd2_v(model)
        width = cross_attention_width(model.model.diffusion_model)
        if conditioning.shape[-1] != width:
            raise ValueError(
                f"the prompt conditioning is {conditioning.shape[-1]} wide but this U-Net's cross-attention takes "
                f"{width}: wire the CLIP of the same SD2.1 checkpoint"
            )
        check_latent_channels(getattr(vae, "latent_channels", LATENT_CHANNELS))
        self._current: UNetCapture | None = None
        self._latents_after_oom: int | None = None
        self.model = model
        self.identity = model_identity(model)
        """The MODEL's weights and patches (:func:`~.model_identity.model_identity`): features of backbones of another
        identity cannot be compared with these."""
        self.vae = vae
        self.conditioning = conditioning
        self.reference_patcher = self._patched(())
        self.reference_attention_patcher = self._patched((HIGH,))
        self.target_patcher = self._patched((LOW, HIGH))
        self._patchers = {
            (): self.reference_patcher, (HIGH,): self.reference_attention_patcher, (LOW, HIGH): self.target_patcher
        }  # fmt: skip

    def _patched(self, grids: tuple[str, ...]):
        """A clone of the MODEL recording the up-blocks and, on ``grids``, explicit self-attention; the pass stops
        after the last of those attention layers (or after up-block 1 without any)."""
        patcher = self.model.clone()
        patcher.set_model_input_block_patch(self._input_block_patch())
        patcher.set_model_output_block_patch(self._output_block_patch())
        blocks = attention_blocks(grids)
        for key in blocks:
            patcher.set_model_attn1_replace(self._attention_patch(ATTENTION_BLOCKS[key], key == blocks[-1]), *key, 0)
        return patcher

    def _block_done(self) -> None:
        """One more U-Net block ran: tick the pass's progress, then honour Cancel before the next block runs."""
        if self._current is not None:
            self._current.block_done()
        comfy.model_management.throw_exception_if_processing_interrupted()

    # Closures rather than bound methods: ModelPatcher.clone() deep-copies model_options, and a deep copy of a bound
    # method would copy this whole object.
    def _input_block_patch(self) -> Callable:
        def patch(h: torch.Tensor, transformer_options: dict) -> torch.Tensor:
            self._block_done()
            return h

        return patch

    def _output_block_patch(self) -> Callable:
        def patch(h: torch.Tensor, hsp: torch.Tensor, transformer_options: dict):
            self._block_done()
            index = UP_BLOCK_OF_OUTPUT_PATCH.get(transformer_options["block"][1])
            if index is not None and self._current is not None:
                self._current.record_up_block(index, h)
            return h, hsp

        return patch

    def _attention_patch(self, grid: str, stop: bool) -> Callable:
        def patch(q: torch.Tensor, k: torch.Tensor, v: torch.Tensor, extra_options: dict) -> torch.Tensor:
            out = self._current.attend(q, k, v, extra_options["n_heads"], grid)
            if stop and self._current.stop_early:
                raise StopUNet
            return out

        return patch

    def blocks_per_pass(self, grids: tuple[str, ...]) -> int:
        blocks = attention_blocks(grids)
        block, number = blocks[-1] if blocks else ("output", max(UP_BLOCK_OF_OUTPUT_PATCH))  # where the pass stops
        return number + 1 if block == "input" else INPUT_BLOCKS + number + 1

    def alphas_cumprod(self) -> torch.Tensor:
        sigmas = self.model.model.model_sampling.sigmas.double()
        return 1.0 / (sigmas**2 + 1.0)

    def encode(self, images: torch.Tensor) -> LatentPosterior:
        # float32 whatever VAE.encode gives: newer ComfyUI returns vae_output_dtype(), float16 with --fp16-intermediates
        latents = self.vae.encode(images.movedim(1, -1)).float()
        if latents.ndim != 4:
            raise ValueError(
                f"the VAE input gives latents of shape {list(latents.shape)}, not images' [batch, 4, h, w] (a video "
                "VAE?): wire the VAE of the SD2.1 checkpoint"
            )
        check_latent_channels(latents.shape[1])
        return LatentPosterior(self.model.model.latent_format.process_in(latents), None)

    def run(self, noisy_latents: torch.Tensor, timestep: int, capture: UNetCapture) -> torch.Tensor | None:
        patcher = self._patchers[capture.attention_grids]
        base = patcher.model
        dtype = base.manual_cast_dtype or base.get_dtype()
        memory = capture_memory(*noisy_latents.shape[-2:], capture.attention_grids, dtype.itemsize)
        latents = noisy_latents.shape[0]
        comfy.model_management.load_models_gpu(
            [patcher], memory_required=memory.total(latents), minimum_memory_required=memory.total(1)
        )
        free = comfy.model_management.get_free_memory(patcher.load_device)
        per_call = min(memory.latents_fitting(free, latents), self._latents_after_oom or latents)

        def call(part: torch.Tensor, part_capture: UNetCapture) -> torch.Tensor | None:
            return self._call(patcher, dtype, part, timestep, part_capture)

        output, reached = run_split(call, noisy_latents, capture, per_call, comfy.model_management.soft_empty_cache)
        if reached < per_call:  # an out-of-memory error: later passes start at the size that fitted
            self._latents_after_oom = reached
        return output

    def _call(self, patcher, dtype: torch.dtype, latents: torch.Tensor, timestep: int, capture: UNetCapture):
        """One U-Net call over ``latents`` ``[n, 4, h, w]``, filling ``capture``; None once the pass stopped early."""
        device = patcher.load_device
        batch = latents.shape[0]
        transformer_options = patcher.model_options["transformer_options"].copy()
        self._current = capture
        try:
            return patcher.model.diffusion_model(
                latents.to(device, dtype),
                torch.full((batch,), float(timestep), device=device),
                context=self.conditioning.to(device, dtype).expand(batch, -1, -1),
                transformer_options=transformer_options,
            )
        except StopUNet:
            return None
        finally:
            self._current = None
