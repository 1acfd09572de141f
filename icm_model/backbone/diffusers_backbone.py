"""The backbone on a diffusers SD2.x U-Net and VAE, for standalone use and tests."""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import torch
from diffusers import AutoencoderKL, DDIMScheduler, UNet2DConditionModel
from diffusers.models.attention_processor import Attention

from ..validation import InputError
from .capture import HIGH, LOW, StopUNet, UNetCapture
from .features import LatentPosterior
from .sd_single_file import SD2_SCHEDULER, load_single_file


def _load_folder(folder: Path) -> tuple[UNet2DConditionModel, AutoencoderKL, torch.Tensor, torch.Tensor]:
    """U-Net, VAE, empty-prompt embedding and noise schedule of a diffusers-format SD2.1 folder."""
    from transformers import CLIPTextModel, CLIPTokenizer

    if not (folder / "unet").is_dir():
        raise InputError(f"{folder} is neither an SD2.1 checkpoint file nor a diffusers folder (no unet/ inside)")
    scheduler = DDIMScheduler.from_pretrained(folder / "scheduler")
    if scheduler.config.prediction_type != "v_prediction":
        raise InputError(
            f"{folder} is an {scheduler.config.prediction_type}-prediction model (SD 1.x or SD2-base): "
            "IconMatting needs Stable Diffusion 2.1 768-v"
        )
    tokenizer = CLIPTokenizer.from_pretrained(folder / "tokenizer")
    text_encoder = CLIPTextModel.from_pretrained(folder / "text_encoder")
    tokens = tokenizer("", padding="max_length", max_length=tokenizer.model_max_length, return_tensors="pt")
    with torch.no_grad():
        prompt_embeds = text_encoder(tokens.input_ids)[0]
    unet = UNet2DConditionModel.from_pretrained(folder / "unet")
    vae = AutoencoderKL.from_pretrained(folder / "vae")
    return unet, vae, prompt_embeds, scheduler.alphas_cumprod


class _CaptureProcessor:
    """Attention processor of one self-attention layer on a capture grid: explicit probabilities, recorded."""

    def __init__(self, capture: UNetCapture, grid: str, stop_after: bool) -> None:
        self.capture, self.grid, self.stop_after = capture, grid, stop_after

    def __call__(
        self,
        attn: Attention,
        hidden_states: torch.Tensor,
        encoder_hidden_states=None,
        attention_mask=None,
        temb=None,
        **kwargs,
    ) -> torch.Tensor:
        if encoder_hidden_states is not None or attention_mask is not None or hidden_states.ndim != 3:
            raise RuntimeError("capture processors only serve the self-attention of SD transformer blocks")
        q, k, v = attn.to_q(hidden_states), attn.to_k(hidden_states), attn.to_v(hidden_states)
        out = attn.to_out[1](attn.to_out[0](self.capture.attend(q, k, v, attn.heads, self.grid)))
        if self.stop_after:
            raise StopUNet
        return out


def _self_attentions(block: torch.nn.Module) -> list[Attention]:
    return [tb.attn1 for transformer in getattr(block, "attentions", []) for tb in transformer.transformer_blocks]


def _resnets(blocks: list[torch.nn.Module]) -> list[torch.nn.Module]:
    return [resnet for block in blocks for resnet in block.resnets]


class DiffusersBackbone:
    """SD2.x through diffusers: ``UNet2DConditionModel`` + ``AutoencoderKL`` + the empty-prompt embedding.

    Args:
        unet: an SD2-architecture U-Net (4 levels; levels 1 and 2 carry the high and low token grids).
        vae: its VAE; the posterior is sampled, as in the official code.
        prompt_embeds: empty-prompt text embedding ``[1, 77, D]``.
        alphas_cumprod: the training noise schedule ``[1000]``.
    """

    def __init__(
        self, unet: UNet2DConditionModel, vae: AutoencoderKL, prompt_embeds: torch.Tensor, alphas_cumprod: torch.Tensor
    ) -> None:
        if len(unet.down_blocks) != 4 or len(unet.up_blocks) != 4:
            raise ValueError("the U-Net must have the SD2 layout of 4 down and 4 up blocks")
        self.unet, self.vae = unet.eval().requires_grad_(False), vae.eval().requires_grad_(False)
        self.prompt_embeds = prompt_embeds
        self._alphas_cumprod = alphas_cumprod
        # Level l runs on a grid of latent/2**l tokens: level 2 is the low grid, level 1 the high one.
        grid_of_level = {2: LOW, 1: HIGH}
        self._capture_layers = [
            (attn, grid_of_level[level])
            for level, block in [*enumerate(unet.down_blocks), *((3 - i, b) for i, b in enumerate(unet.up_blocks))]
            if level in grid_of_level
            for attn in _self_attentions(block)
        ]
        self._resnets = _resnets([*unet.down_blocks, unet.mid_block, *unet.up_blocks])

    @classmethod
    def from_pretrained(
        cls, location: str | Path, device: str | torch.device = "cpu", dtype: torch.dtype = torch.float32
    ) -> DiffusersBackbone:
        """Loads SD2.1 768-v from its single-file checkpoint (``.safetensors``/``.ckpt``, the file ComfyUI uses) or a
        diffusers-format folder (``unet/``, ``vae/``, ``scheduler/``, ``text_encoder/``, ``tokenizer/``).

        The text encoder (needs ``transformers``) runs once for the empty prompt and is dropped.
        """
        location = Path(location)
        try:
            import transformers  # noqa: F401
        except ImportError as error:
            raise ImportError(
                "the standalone backbone needs `transformers` for the empty prompt: pip install transformers"
            ) from error
        if location.is_file():
            unet, vae, prompt_embeds = load_single_file(location)
            alphas_cumprod = DDIMScheduler(**SD2_SCHEDULER).alphas_cumprod
        else:
            unet, vae, prompt_embeds, alphas_cumprod = _load_folder(location)
        return cls(unet.to(device, dtype), vae.to(device, dtype), prompt_embeds.to(device, dtype), alphas_cumprod)

    @property
    def device(self) -> torch.device:
        return self.unet.device

    def alphas_cumprod(self) -> torch.Tensor:
        return self._alphas_cumprod

    def blocks_per_pass(self, grids: tuple[str, ...]) -> int:
        """Progress ticks come after every resnet. Without attention grids the pass stops after up-block 1, else at
        the last capture layer of ``grids``, which follows the resnet of the same index in its block."""
        unet = self.unet
        if not grids:
            return len(_resnets([*unet.down_blocks, unet.mid_block, *unet.up_blocks[:2]]))
        last = [attn for attn, grid in self._capture_layers if grid in grids][-1]
        ticks = 0
        for block in [*unet.down_blocks, unet.mid_block, *unet.up_blocks]:
            for index in range(len(block.resnets)):
                ticks += 1
                transformers = getattr(block, "attentions", None) or []
                if index < len(transformers) and any(tb.attn1 is last for tb in transformers[index].transformer_blocks):
                    return ticks
        raise RuntimeError("the last capture layer is in no U-Net block")

    @torch.no_grad()
    def encode(self, images: torch.Tensor) -> LatentPosterior:
        posterior = self.vae.encode((images * 2 - 1).to(self.device, self.vae.dtype)).latent_dist
        scale = self.vae.config.scaling_factor
        return LatentPosterior(posterior.mean * scale, posterior.std * scale)

    @contextmanager
    def _instrumented(self, capture: UNetCapture) -> Iterator[None]:
        """Capture processors and up-block hooks installed for one pass, removed afterwards."""
        layers = [(attn, grid) for attn, grid in self._capture_layers if grid in capture.attention_grids]
        originals = [attn.processor for attn, _ in layers]
        for i, (attn, grid) in enumerate(layers):
            attn.set_processor(_CaptureProcessor(capture, grid, capture.stop_early and i == len(layers) - 1))
        hooks = [
            self.unet.up_blocks[i].register_forward_hook(
                lambda _module, _args, output, i=i: capture.record_up_block(i, output)
            )
            for i in (0, 1)
        ]
        hooks += [resnet.register_forward_hook(lambda *_: capture.block_done()) for resnet in self._resnets]
        try:
            yield
        finally:
            for hook in hooks:
                hook.remove()
            for (attn, _), processor in zip(layers, originals, strict=True):
                attn.set_processor(processor)

    @torch.no_grad()
    def run(self, noisy_latents: torch.Tensor, timestep: int, capture: UNetCapture) -> torch.Tensor | None:
        """One capture pass; returns the U-Net output when it ran to the end (``capture.stop_early`` False)."""
        context = self.prompt_embeds.expand(noisy_latents.shape[0], -1, -1)
        with self._instrumented(capture):
            try:
                return self.unet(noisy_latents.to(self.unet.dtype), timestep, encoder_hidden_states=context).sample
            except StopUNet:
                return None
