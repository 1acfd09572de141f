"""Capture correctness on a tiny random SD2-architecture diffusers U-Net."""

from __future__ import annotations

import pytest
import torch

from icm_model.backbone.capture import HIGH, LOW, UNetCapture
from icm_model.backbone.diffusers_backbone import DiffusersBackbone
from icm_model.backbone.features import EnsembleFeatureExtractor, EnsembleNoise

TIMESTEP = 200


@pytest.fixture
def latents() -> torch.Tensor:
    return torch.randn(3, 4, 16, 16, generator=torch.Generator().manual_seed(5))


def _plain_run(backbone: DiffusersBackbone, latents: torch.Tensor, hooks: dict) -> torch.Tensor:
    """An uninstrumented U-Net pass with forward hooks ``{module: fn(module, args, kwargs, output)}``."""
    handles = [module.register_forward_hook(fn, with_kwargs=True) for module, fn in hooks.items()]
    try:
        with torch.no_grad():
            context = backbone.prompt_embeds.expand(latents.shape[0], -1, -1)
            return backbone.unet(latents, TIMESTEP, encoder_hidden_states=context).sample
    finally:
        for handle in handles:
            handle.remove()


def _explicit_attention(backbone: DiffusersBackbone, latents: torch.Tensor) -> dict[int, torch.Tensor]:
    """Token count -> mean over self-attention layers of the per-head softmax(q k^T d^-0.5), averaged over heads."""
    maps: dict[int, list[torch.Tensor]] = {}

    def record(attn, args, kwargs, _output):
        hidden = args[0] if args else kwargs["hidden_states"]
        batch, tokens, _ = hidden.shape
        q = attn.to_q(hidden).view(batch, tokens, attn.heads, -1).transpose(1, 2)
        k = attn.to_k(hidden).view(batch, tokens, attn.heads, -1).transpose(1, 2)
        probs = torch.softmax(q @ k.transpose(-1, -2) * q.shape[-1] ** -0.5, dim=-1)
        maps.setdefault(tokens, []).append(probs.mean(dim=1))

    self_attentions = [m.attn1 for m in backbone.unet.modules() if hasattr(m, "attn1")]
    _plain_run(backbone, latents, {attn: record for attn in self_attentions})
    return {tokens: torch.stack(layers).mean(dim=0) for tokens, layers in maps.items()}


def test_attention_equals_explicit_softmax(tiny_backbone, latents):
    capture = UNetCapture(with_attention=True)
    tiny_backbone.run(latents, TIMESTEP, capture)
    explicit = _explicit_attention(tiny_backbone, latents)
    assert capture.attention_layers == {LOW: 5, HIGH: 5}
    for grid, tokens in ((LOW, 16), (HIGH, 64)):
        ours = capture.attention(grid)
        assert ours.shape == (3, tokens, tokens)
        torch.testing.assert_close(ours.sum(-1), torch.ones(3, tokens))
        torch.testing.assert_close(ours, explicit[tokens], rtol=1e-4, atol=1e-6)
    # The other grids (16x16 tokens, the 2x2 mid block) are not captured.
    assert set(explicit) == {256, 64, 16, 4}


def test_ensemble_mean_of_attention(tiny_backbone):
    """Per image, the attention maps are the mean over its E noise copies (not grouped across images)."""
    images = torch.rand(2, 3, 128, 128, generator=torch.Generator().manual_seed(2))
    noise = EnsembleNoise.draw(torch.Generator().manual_seed(3), 2, 16)
    both = EnsembleFeatureExtractor(tiny_backbone, max_batch=4).targets(images, noise)
    for i in range(2):
        alone = EnsembleFeatureExtractor(tiny_backbone, max_batch=2).targets(images[i : i + 1], noise)
        torch.testing.assert_close(both.attention[1][i : i + 1], alone.attention[1], rtol=1e-4, atol=1e-6)
        torch.testing.assert_close(both.features[0][i : i + 1], alone.features[0], rtol=1e-4, atol=1e-5)


def test_output_unchanged_when_capture_runs_to_the_end(tiny_backbone, latents):
    plain = _plain_run(tiny_backbone, latents, {})
    captured = tiny_backbone.run(latents, TIMESTEP, UNetCapture(with_attention=True, stop_early=False))
    torch.testing.assert_close(captured, plain, rtol=1e-4, atol=1e-5)


@pytest.mark.parametrize("with_attention", [True, False])
def test_features_equal_uninstrumented_up_blocks(tiny_backbone, latents, with_attention):
    outputs = {}
    hooks = {tiny_backbone.unet.up_blocks[i]: (lambda m, a, k, o, i=i: outputs.__setitem__(i, o)) for i in (0, 1)}
    _plain_run(tiny_backbone, latents, hooks)
    capture = UNetCapture(with_attention=with_attention)
    tiny_backbone.run(latents, TIMESTEP, capture)
    assert set(capture.up_features) == ({0, 1} if with_attention else {1})
    for i, feature in capture.up_features.items():
        torch.testing.assert_close(feature, outputs[i], rtol=1e-4, atol=1e-5)


def _modules_run(backbone: DiffusersBackbone, latents: torch.Tensor, capture: UNetCapture) -> set[str]:
    ran: set[str] = set()
    handles = [
        module.register_forward_pre_hook(lambda _m, _a, name=name: ran.add(name))
        for name, module in backbone.unet.named_modules()
        if name
    ]
    try:
        backbone.run(latents, TIMESTEP, capture)
    finally:
        for handle in handles:
            handle.remove()
    return ran


def test_early_stop_after_last_high_grid_attention(tiny_backbone, latents):
    ran = _modules_run(tiny_backbone, latents, UNetCapture(with_attention=True))
    last = "up_blocks.2.attentions.2.transformer_blocks.0"
    assert f"{last}.attn1" in ran
    for skipped in (
        f"{last}.attn2",
        f"{last}.ff",
        "up_blocks.2.upsamplers",
        "up_blocks.3",
        "conv_norm_out",
        "conv_out",
    ):
        assert skipped not in ran
    assert "up_blocks.1.attentions.2" in ran


def test_early_stop_after_up_block_1_for_the_reference(tiny_backbone, latents):
    ran = _modules_run(tiny_backbone, latents, UNetCapture(with_attention=False))
    assert "up_blocks.1.upsamplers.0" in ran
    assert not any(name.startswith(("up_blocks.2", "up_blocks.3", "conv_out")) for name in ran)


def test_capture_leaves_the_unet_as_it_was(tiny_backbone, latents):
    before = {name: type(p) for name, p in tiny_backbone.unet.attn_processors.items()}
    tiny_backbone.run(latents, TIMESTEP, UNetCapture(with_attention=True))
    assert {name: type(p) for name, p in tiny_backbone.unet.attn_processors.items()} == before
    assert not any(m._forward_hooks for m in tiny_backbone.unet.modules())


@pytest.mark.parametrize(("with_attention", "reference_attention"), [(False, False), (False, True), (True, False)])
def test_blocks_per_pass_is_what_a_pass_ticks(tiny_backbone, latents, with_attention, reference_attention):
    ticks = []
    capture = UNetCapture(with_attention, reference_attention=reference_attention, on_block=lambda: ticks.append(1))
    tiny_backbone.run(latents, TIMESTEP, capture)
    assert len(ticks) == tiny_backbone.blocks_per_pass(capture.attention_grids) >= 10
