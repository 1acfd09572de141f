"""Shared fixtures: tiny random SD2-architecture models."""

from __future__ import annotations

import pytest
import torch

from icm_model.random_models import TINY_DECODER, random_backbone, random_decoder


@pytest.fixture(scope="session")
def tiny_backbone():
    return random_backbone("tiny", seed=0)


@pytest.fixture(scope="session")
def tiny_decoder():
    return random_decoder(TINY_DECODER, seed=0)


@pytest.fixture
def reference_pair() -> tuple[torch.Tensor, torch.Tensor]:
    """A 96x160 reference image and a mask marking a 48x64 rectangle of it."""
    image = torch.rand(1, 3, 96, 160, generator=torch.Generator().manual_seed(1))
    mask = torch.zeros(1, 96, 160)
    mask[:, 24:72, 48:112] = 1.0
    return image, mask
