"""Ensemble feature extraction from a frozen SD2.1 U-Net, behind one small backbone interface."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Protocol

import torch

from ..validation import InputError
from .capture import HIGH, LOW, UNetCapture

LATENT_CHANNELS = 4
VAE_DOWNSCALE = 8


@dataclass
class LatentPosterior:
    """Scaled VAE posterior of B images: ``mean``, ``std`` ``[B, 4, h, w]``; ``std`` is None for mode-only VAEs."""

    mean: torch.Tensor
    std: torch.Tensor | None


class Backbone(Protocol):
    """A frozen SD2.x U-Net with its VAE and empty-prompt conditioning, able to run capture passes."""

    def encode(self, images: torch.Tensor) -> LatentPosterior:
        """Posterior of ``images`` ``[B, 3, S, S]`` in [0, 1], already multiplied by the latent scale factor."""
        ...

    def alphas_cumprod(self) -> torch.Tensor:
        """The noise schedule's cumulative alpha products ``[1000]`` (fp64 or fp32)."""
        ...

    def run(self, noisy_latents: torch.Tensor, timestep: int, capture: UNetCapture) -> None:
        """Runs the U-Net on ``[N, 4, h, w]`` at ``timestep`` with the empty prompt, filling ``capture``.

        The pass stops right after the last layer that ``capture`` needs. It calls ``capture.block_done()`` after
        every U-Net block (where a cancel may stop it).
        """
        ...

    def blocks_per_pass(self, grids: tuple[str, ...]) -> int:
        """How many times an early-stopped :meth:`run` of a capture with these ``attention_grids`` calls
        ``capture.block_done()`` (progress planning)."""
        ...


@dataclass(frozen=True)
class EnsembleNoise:
    """The E random draws shared by every image encoded with this ensemble.

    Attributes:
        posterior: ``[E, 4, h, w]`` standard normal noise of the VAE posterior sample (ignored by mode-only VAEs).
        diffusion: ``[E, 4, h, w]`` standard normal diffusion noise.
    """

    posterior: torch.Tensor
    diffusion: torch.Tensor

    @property
    def size(self) -> int:
        return self.diffusion.shape[0]

    @classmethod
    def draw(cls, generator: torch.Generator, size: int, latent_size: int) -> EnsembleNoise:
        """Draws the posterior noise first, then the diffusion noise (the official order), on the CPU."""
        shape = (size, LATENT_CHANNELS, latent_size, latent_size)
        posterior = torch.randn(shape, generator=generator)
        return cls(posterior, torch.randn(shape, generator=generator))

    def rows(self, start: int, count: int) -> tuple[torch.Tensor, torch.Tensor]:
        """Posterior and diffusion noise ``[count * E, 4, h, w]`` of images ``start .. start + count - 1`` (row
        ``i * E + k``: image ``i``, copy ``k``): the shared draws, repeated for each image."""
        return self.posterior.repeat(count, 1, 1, 1), self.diffusion.repeat(count, 1, 1, 1)


@dataclass(frozen=True)
class PerImageNoise(EnsembleNoise):
    """Draws of their own for every image, as the official training takes fresh noise per image and forward.

    Attributes:
        posterior, diffusion: ``[B * E, 4, h, w]``, row ``b * E + k`` = image ``b``, copy ``k``.
        ensemble: E.
    """

    ensemble: int = 1

    def __post_init__(self) -> None:
        if self.ensemble < 1 or self.diffusion.shape[0] % self.ensemble or self.posterior.shape != self.diffusion.shape:
            raise ValueError(
                f"per-image noise needs posterior and diffusion draws of one shape [B*E, 4, h, w] with E = "
                f"{self.ensemble}, got {list(self.posterior.shape)} and {list(self.diffusion.shape)}"
            )

    @property
    def size(self) -> int:
        return self.ensemble

    @property
    def images(self) -> int:
        return self.diffusion.shape[0] // self.ensemble

    @classmethod
    def draw_for(
        cls, images: int, size: int, latent_size: int, generator: torch.Generator | None = None
    ) -> PerImageNoise:
        """Fresh draws for ``images`` images: posterior noise first, then diffusion noise (the official order);
        from the global RNG when ``generator`` is None, as the official training does."""
        shape = (images * size, LATENT_CHANNELS, latent_size, latent_size)
        posterior = torch.randn(shape, generator=generator)
        return cls(posterior, torch.randn(shape, generator=generator), size)

    def rows(self, start: int, count: int) -> tuple[torch.Tensor, torch.Tensor]:
        if start + count > self.images:
            raise ValueError(
                f"per-image noise holds {self.images} images, asked for images {start}..{start + count - 1}"
            )
        rows = slice(start * self.ensemble, (start + count) * self.ensemble)
        return self.posterior[rows], self.diffusion[rows]


def seeded_noise(seed: int, size: int, latent_size: int) -> tuple[EnsembleNoise, EnsembleNoise]:
    """Reference and target ensembles from one seed: the same seed gives the same alpha on every run.

    Every target of a run shares the target ensemble, so a target's alpha does not depend on its batch or on the
    chunking of a video.
    """
    if size < 1:
        raise InputError(f"ensemble size must be at least 1, got {size}")
    generator = torch.Generator().manual_seed(seed)
    return EnsembleNoise.draw(generator, size, latent_size), EnsembleNoise.draw(generator, size, latent_size)


@dataclass
class TargetFeatures:
    """Frozen-U-Net features of B target images, averaged over the noise ensemble.

    Attributes:
        correspondence: ``[B, C, h, w]`` feature matched against the reference (up-block 1 output, high grid).
        features: matting features ``([B, C0, r0, r0], [B, C1, r1, r1])``: up-block 0 and up-block 1 outputs.
        attention: self-attention ``([B, r0, r0, r0*r0], [B, r1, r1, r1*r1])`` on the low and high grids, averaged
            over heads and layers; rows sum to 1.
    """

    correspondence: torch.Tensor
    features: tuple[torch.Tensor, torch.Tensor]
    attention: tuple[torch.Tensor, torch.Tensor]

    def __len__(self) -> int:
        return self.correspondence.shape[0]

    def to(self, device: torch.device | str) -> TargetFeatures:
        """The features on ``device``; a correspondence feature that is the high matting feature stays shared."""
        high = self.features[1].to(device)
        correspondence = high if self.correspondence is self.features[1] else self.correspondence.to(device)
        return TargetFeatures(
            correspondence,
            (self.features[0].to(device), high),
            (self.attention[0].to(device), self.attention[1].to(device)),
        )


def images_per_call(max_batch: int, ensemble: int) -> int:
    """Images whose ensemble copies fit one U-Net call of at most ``max_batch`` latents (at least one)."""
    return max(1, max_batch // ensemble)


def extraction_steps(
    backbone: Backbone, images: int, ensemble: int, max_batch: int, with_attention: bool, reference_attention=False
) -> int:
    """The on_step calls of :class:`EnsembleFeatureExtractor` for ``images`` images: per U-Net call, the VAE encode
    and every block of the (early-stopped) pass."""
    calls = -(-images // images_per_call(max_batch, ensemble))
    grids = UNetCapture(with_attention, reference_attention=reference_attention).attention_grids
    return calls * (1 + backbone.blocks_per_pass(grids))


class EnsembleFeatureExtractor:
    """Runs the noise ensemble of each image through a backbone as one batched U-Net pass and averages it.

    Args:
        backbone: the frozen U-Net.
        timestep: diffusion timestep t (200 in the paper).
        max_batch: most latents per U-Net call; images are grouped so that ``images * E <= max_batch`` (at least
            one image per call).
        on_step: progress, called with 1 after each VAE encode and each U-Net block (:func:`extraction_steps` plans
            the total); it may raise to cancel, inside a U-Net pass too.
    """

    def __init__(
        self,
        backbone: Backbone,
        timestep: int = 200,
        max_batch: int = 8,
        on_step: Callable[[int], None] | None = None,
    ) -> None:
        schedule = backbone.alphas_cumprod()
        if not 0 <= timestep < schedule.shape[0]:
            raise InputError(f"timestep must be in 0..{schedule.shape[0] - 1}, got {timestep}")
        self.backbone = backbone
        self.timestep = timestep
        self.alpha_bar = float(schedule[timestep])
        self.max_batch = max_batch
        self.on_step = on_step

    def _step(self) -> None:
        if self.on_step is not None:
            self.on_step(1)

    def _passes(self, images: torch.Tensor, noise: EnsembleNoise, with_attention: bool, reference_attention=False):
        """Yields ``(capture, n_images)`` per U-Net call over groups of images ``[B, 3, S, S]`` in [0, 1]."""
        per_call = images_per_call(self.max_batch, noise.size)
        for start in range(0, images.shape[0], per_call):
            group = images[start : start + per_call]
            posterior = self.backbone.encode(group)
            self._step()
            device = posterior.mean.device
            posterior_noise, eps = (x.to(device) for x in noise.rows(start, group.shape[0]))
            latents = posterior.mean.float().repeat_interleave(noise.size, dim=0)
            if posterior.std is not None:
                latents = latents + posterior.std.float().repeat_interleave(noise.size, dim=0) * posterior_noise
            noisy = self.alpha_bar**0.5 * latents + (1 - self.alpha_bar) ** 0.5 * eps
            capture = UNetCapture(with_attention, reference_attention=reference_attention, on_block=self._step)
            self.backbone.run(noisy, self.timestep, capture)
            yield capture, group.shape[0]

    @staticmethod
    def _ensemble_mean(x: torch.Tensor, images: int) -> torch.Tensor:
        return x.float().view(images, -1, *x.shape[1:]).mean(dim=1)

    def correspondence(self, images: torch.Tensor, noise: EnsembleNoise) -> torch.Tensor:
        """Up-block 1 features ``[B, C, r1, r1]`` (fp32) of reference images ``[B, 3, S, S]`` in [0, 1]."""
        return torch.cat(
            [self._ensemble_mean(c.up_features[1], n) for c, n in self._passes(images, noise, with_attention=False)]
        )

    def correspondence_and_attention(self, images: torch.Tensor, noise: EnsembleNoise):
        """Up-block 1 features ``[B, C, r1, r1]`` and the self-attention on that grid ``[B, r1*r1, r1*r1]`` (fp32,
        rows sum to 1) of reference images ``[B, 3, S, S]`` in [0, 1], for the reference-prompt extension."""
        features, attention = [], []
        for capture, n in self._passes(images, noise, with_attention=False, reference_attention=True):
            features.append(self._ensemble_mean(capture.up_features[1], n))
            attention.append(self._ensemble_mean(capture.attention(HIGH), n))
        return torch.cat(features), torch.cat(attention)

    def targets(self, images: torch.Tensor, noise: EnsembleNoise) -> TargetFeatures:
        """Correspondence feature, matting features and attention maps (fp32) of images ``[B, 3, S, S]`` in [0, 1]."""
        parts = []
        for capture, n in self._passes(images, noise, with_attention=True):
            low, high = (self._ensemble_mean(capture.up_features[i], n) for i in (0, 1))
            attention = []
            for grid, feature in ((LOW, low), (HIGH, high)):
                side = feature.shape[-1]
                attention.append(self._ensemble_mean(capture.attention(grid), n).view(n, side, side, side * side))
            parts.append(TargetFeatures(high, (low, high), (attention[0], attention[1])))
        high = torch.cat([p.features[1] for p in parts])  # also the correspondence feature: one tensor, not two
        return TargetFeatures(
            high,
            (torch.cat([p.features[0] for p in parts]), high),
            (torch.cat([p.attention[0] for p in parts]), torch.cat([p.attention[1] for p in parts])),
        )
