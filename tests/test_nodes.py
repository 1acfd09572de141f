"""The ComfyUI nodes, run against the ComfyUI test doubles with a tiny random SD2-architecture U-Net."""

from __future__ import annotations

import inspect

import pytest
import torch
from comfy_env import pack_module
from helpers import MODEL_NAME

from icm_model.random_models import random_unet_vae


@pytest.fixture
def reference_inputs():
    image = torch.rand(1, 96, 160, 3, generator=torch.Generator().manual_seed(1))
    mask = torch.zeros(1, 96, 160)
    mask[:, 24:72, 48:112] = 1.0
    return image, mask


@pytest.fixture
def targets():
    return torch.rand(3, 70, 90, 3, generator=torch.Generator().manual_seed(2))


def _encode(nodes, icm, comfy_sd2, image, mask, prompt_type="mask", seed=0, ensemble=4):
    model, vae, clip = comfy_sd2
    out = nodes["EncodeReferenceContext"]().encode(
        icm, model, vae, image, mask, prompt_type, 200, ensemble, seed, clip=clip
    )
    return out["result"][0], out["ui"]["text"][0]


def _unet_output(model) -> torch.Tensor:
    x = torch.randn(2, 4, 16, 16, generator=torch.Generator().manual_seed(9))
    context = torch.randn(2, 77, 32, generator=torch.Generator().manual_seed(10))
    with torch.no_grad():
        return model.model.diffusion_model(
            x,
            torch.full((2,), 200.0),
            context=context,
            transformer_options=model.model_options["transformer_options"].copy(),
        )


# --- schemas -------------------------------------------------------------------------------------------------------


def _check_input(name: str, spec: tuple) -> None:
    kind, options = spec[0], (spec[1] if len(spec) > 1 else {})
    assert isinstance(kind, (str, list)), name
    if isinstance(kind, list):
        assert kind and options.get("default", kind[0]) in kind, name
    elif kind in ("INT", "FLOAT"):
        assert options["min"] <= options["default"] <= options["max"], name
    elif kind == "STRING":
        assert isinstance(options.get("default", ""), str), name


def test_node_schemas(pack, nodes, icm):
    assert set(nodes) == set(pack.NODE_DISPLAY_NAME_MAPPINGS)
    for node_id, cls in nodes.items():
        inputs = cls.INPUT_TYPES()
        assert set(inputs) <= {"required", "optional", "hidden"} and "required" in inputs, node_id
        names = [n for group in ("required", "optional") for n in inputs.get(group, {})]
        for group in ("required", "optional"):
            for name, spec in inputs.get(group, {}).items():
                _check_input(f"{node_id}.{name}", spec)
        assert isinstance(cls.RETURN_TYPES, tuple) and all(isinstance(t, str) for t in cls.RETURN_TYPES), node_id
        assert len(getattr(cls, "RETURN_NAMES", cls.RETURN_TYPES)) == len(cls.RETURN_TYPES), node_id
        if hasattr(cls, "OUTPUT_TOOLTIPS"):
            assert len(cls.OUTPUT_TOOLTIPS) == len(cls.RETURN_TYPES), node_id
        parameters = inspect.signature(getattr(cls, cls.FUNCTION)).parameters
        assert set(names) <= set(parameters), node_id
        required = {n for n, p in parameters.items() if p.default is inspect.Parameter.empty and n != "self"}
        assert required <= set(inputs["required"]), node_id
        assert cls.CATEGORY == "IconMatting" and cls.DESCRIPTION, node_id


SEARCH_TERMS = {"remove background", "background removal", "cutout", "alpha matte", "matting"}


def node_info_search_aliases(cls) -> list[str]:
    """What newer ComfyUI's server.py node_info sends in /object_info: ``getattr(cls, "SEARCH_ALIASES", [])``."""
    return getattr(cls, "SEARCH_ALIASES", [])


def test_every_input_and_output_has_a_tooltip(nodes):
    for node_id, cls in nodes.items():
        inputs = cls.INPUT_TYPES()
        for group in ("required", "optional"):
            for name, spec in inputs.get(group, {}).items():
                assert len(spec) > 1 and spec[1].get("tooltip"), f"{node_id}.{name} has no tooltip"
        tooltips = cls.OUTPUT_TOOLTIPS
        assert len(tooltips) == len(cls.RETURN_TYPES) and all(tooltips), node_id
        assert "SAM3" not in cls.DESCRIPTION, node_id  # ComfyUI 0.3.64 has no SAM3 nodes


def test_search_aliases(nodes):
    for node_id, cls in nodes.items():
        aliases = node_info_search_aliases(cls)
        assert aliases and all(isinstance(a, str) and a for a in aliases), node_id
    for node_id in ("EncodeReferenceContext", "MattingHead", "VideoInContextMatte"):
        assert set(node_info_search_aliases(nodes[node_id])) >= SEARCH_TERMS, node_id
    assert "rotoscope" in node_info_search_aliases(nodes["VideoInContextMatte"])


def test_model_folder_lists_checkpoints_only(pack, icm):
    import folder_paths

    folder = folder_paths.folder_names_and_paths["icon_matting"][0][0]
    with open(f"{folder}/readme.txt", "w") as file:
        file.write("not a model")
    assert folder_paths.get_filename_list("icon_matting") == [MODEL_NAME]
    assert folder.endswith("icon_matting") and folder.startswith(folder_paths.models_dir)


def test_loader_caches_and_uses_model_management(nodes, icm):
    import comfy.model_management

    assert nodes["LoadIconMattingModel"]().load(MODEL_NAME)[0] is icm
    comfy.model_management.loaded_log.clear()
    assert icm.load() is icm.decoder
    assert comfy.model_management.loaded_log == [[icm.patcher]]


def test_loader_refuses_code_and_foreign_files(pack, nodes, tmp_path):
    import folder_paths

    folder = folder_paths.folder_names_and_paths["icon_matting"][0][0]
    marker = tmp_path / "ran.txt"

    class Payload:
        def __reduce__(self):
            return (open, (str(marker), "w"))

    torch.save({"state_dict": {}, "x": Payload()}, f"{folder}/evil.ckpt")
    with pytest.raises(ValueError, match="NOT loaded"):
        nodes["LoadIconMattingModel"]().load("evil.ckpt")
    assert not marker.exists()
    torch.save({"state_dict": {"model.diffusion_model.out.2.weight": torch.zeros(4)}}, f"{folder}/sd.ckpt")
    with pytest.raises(ValueError, match="not an IconMatting checkpoint"):
        nodes["LoadIconMattingModel"]().load("sd.ckpt")
    with open(f"{folder}/truncated.safetensors", "wb") as file:
        file.write(b"\x10\x00\x00\x00\x00\x00\x00\x00{not json")
    with pytest.raises(ValueError, match="truncated.safetensors is not a readable checkpoint"):
        nodes["LoadIconMattingModel"]().load("truncated.safetensors")


# --- the ComfyUI path equals the diffusers path ----------------------------------------------------------------------


def test_comfy_capture_equals_diffusers_capture(pack, comfy_sd2):
    # The pack's own copy of icm_model (imported relatively, as inside ComfyUI), so that StopUNet is its class.
    features = pack_module("icm_model.backbone.features")
    ComfyBackbone = pack_module("nodes.comfy_backbone").ComfyBackbone  # noqa: N806
    EnsembleFeatureExtractor, EnsembleNoise = features.EnsembleFeatureExtractor, features.EnsembleNoise  # noqa: N806

    model, vae, clip = comfy_sd2
    comfy = ComfyBackbone(model, vae, clip.embedding)
    diffusers = pack_module("icm_model.random_models").random_backbone("tiny", seed=0)
    images = torch.rand(2, 3, 128, 128, generator=torch.Generator().manual_seed(4))
    noise = EnsembleNoise.draw(torch.Generator().manual_seed(5), 2, 16)
    mode_noise = EnsembleNoise(torch.zeros_like(noise.posterior), noise.diffusion)  # ComfyUI's VAE gives the mode
    ours = EnsembleFeatureExtractor(comfy).targets(images, noise)
    reference = EnsembleFeatureExtractor(diffusers).targets(images, mode_noise)
    torch.testing.assert_close(ours.correspondence, reference.correspondence, rtol=1e-4, atol=1e-4)
    for i in range(2):
        torch.testing.assert_close(ours.features[i], reference.features[i], rtol=1e-4, atol=1e-4)
        torch.testing.assert_close(ours.attention[i], reference.attention[i], rtol=1e-4, atol=1e-6)
    torch.testing.assert_close(
        EnsembleFeatureExtractor(comfy).correspondence(images, noise),
        EnsembleFeatureExtractor(diffusers).correspondence(images, mode_noise), rtol=1e-4, atol=1e-4,
    )  # fmt: skip


def test_comfy_latents_are_float32_whatever_the_vae_returns(pack, comfy_sd2):
    """Newer ComfyUI's VAE.encode returns vae_output_dtype() (float16 with --fp16-intermediates), 0.3.64 float32."""
    ComfyBackbone = pack_module("nodes.comfy_backbone").ComfyBackbone  # noqa: N806
    model, vae, clip = comfy_sd2
    backbone = ComfyBackbone(model, vae, clip.embedding)
    images = torch.rand(1, 3, 64, 64, generator=torch.Generator().manual_seed(7))
    full = backbone.encode(images).mean
    vae.output_dtype = torch.float16
    try:
        half = backbone.encode(images).mean
    finally:
        vae.output_dtype = torch.float32
    assert full.dtype == half.dtype == torch.float32
    torch.testing.assert_close(half, full, rtol=1e-2, atol=1e-2)


def test_comfy_capture_layers_and_early_stop(pack, comfy_sd2):
    ComfyBackbone = pack_module("nodes.comfy_backbone").ComfyBackbone  # noqa: N806
    capture_module = pack_module("icm_model.backbone.capture")
    UNetCapture, LOW, HIGH = capture_module.UNetCapture, capture_module.LOW, capture_module.HIGH  # noqa: N806

    model, vae, clip = comfy_sd2
    backbone = ComfyBackbone(model, vae, clip.embedding)
    latents = torch.randn(2, 4, 16, 16, generator=torch.Generator().manual_seed(6))
    blocks = []
    unet = model.model.diffusion_model.unet
    hooks = [m.register_forward_pre_hook(lambda _m, _a, n=n: blocks.append(n)) for n, m in unet.named_modules()]
    try:
        capture = UNetCapture(with_attention=True)
        assert backbone.run(latents, 200, capture) is None
        assert capture.attention_layers == {LOW: 5, HIGH: 5} and set(capture.up_features) == {0, 1}
        assert "up_blocks.2.attentions.2.transformer_blocks.0.attn1" in blocks
        assert not any(
            n.startswith(("up_blocks.3", "conv_out")) or n.endswith("2.attentions.2.transformer_blocks.0.ff")
            for n in blocks
        )
        blocks.clear()
        reference = UNetCapture(with_attention=False)
        backbone.run(latents, 200, reference)
        assert set(reference.up_features) == {1} and not reference.attention_layers
        assert not any(n.startswith(("up_blocks.2", "up_blocks.3")) for n in blocks)
    finally:
        for hook in hooks:
            hook.remove()
    full = backbone.run(latents, 200, UNetCapture(with_attention=True, stop_early=False))
    assert full is not None and full.shape == latents.shape


# --- end to end ------------------------------------------------------------------------------------------------------


def test_image_nodes_end_to_end(nodes, icm, comfy_sd2, reference_inputs, targets):
    reference, summary = _encode(nodes, icm, comfy_sd2, *reference_inputs)
    assert summary.startswith("1 reference(s), 4 query tokens")
    guidance, inter, intra = nodes["InContextSimilarity"]().compute(reference, targets, 4, 0)
    assert len(guidance) == 3 and inter.shape == intra.shape == (3, 70, 90, 3)
    assert float(inter.min()) >= 0 and float(inter.max()) <= 1
    alpha, foreground, rgba = nodes["MattingHead"]().matte(icm, guidance, targets)
    assert alpha.shape == (3, 70, 90) and float(alpha.min()) >= 0 and float(alpha.max()) <= 1
    torch.testing.assert_close(foreground, rgba[..., :3] * alpha.unsqueeze(-1))
    assert torch.equal(rgba[..., 3], alpha) and not torch.equal(rgba[..., :3], targets)  # estimated colours
    plain = nodes["MattingHead"]().matte(icm, guidance, targets, "multiply", "bilinear")
    torch.testing.assert_close(plain[1], targets * alpha.unsqueeze(-1))  # targets are smaller than the canvas
    assert torch.equal(plain[2][..., :3], targets)
    again = nodes["MattingHead"]().matte(
        icm, nodes["InContextSimilarity"]().compute(reference, targets, 4, 0)[0], targets
    )[0]
    assert torch.equal(alpha, again)


def test_conditioning_input_equals_clip_input(nodes, icm, comfy_sd2, reference_inputs):
    model, vae, clip = comfy_sd2
    via_clip, _ = _encode(nodes, icm, comfy_sd2, *reference_inputs)
    conditioning = clip.encode_from_tokens_scheduled(clip.tokenize(""))
    via_conditioning = nodes["EncodeReferenceContext"]().encode(
        icm, model, vae, *reference_inputs, "mask", 200, 4, 0, empty_conditioning=conditioning
    )["result"][0]
    assert torch.equal(via_clip.context.query, via_conditioning.context.query)
    with pytest.raises(ValueError, match="connect the CLIP"):
        nodes["EncodeReferenceContext"]().encode(icm, model, vae, *reference_inputs, "mask", 200, 4, 0)


def test_points_prompt(nodes, icm, comfy_sd2, reference_inputs):
    image, _ = reference_inputs
    points = '[{"x": 56, "y": 40}, {"x": 100, "y": 50}]'
    (mask,) = nodes["IconMattingPointsToMask"]().draw(image, points, 3, '[{"x": 100, "y": 50}]')
    assert mask.shape == (1, 96, 160) and mask[0, 40, 56] == 1 and mask[0, 50, 100] == 0
    with pytest.raises(ValueError, match="covers no whole"):
        _encode(nodes, icm, comfy_sd2, image, mask, "mask")
    reference, summary = _encode(nodes, icm, comfy_sd2, image, mask, "points")
    assert "1 query tokens" in summary
    with pytest.raises(ValueError, match="positive_points: not valid JSON"):
        nodes["IconMattingPointsToMask"]().draw(image, "[{x: 1}]", 3)
    with pytest.raises(ValueError, match="positive_points has no points"):
        nodes["IconMattingPointsToMask"]().draw(image, "[]", 3)


def test_box_prompt_and_combined_references(nodes, icm, comfy_sd2, reference_inputs):
    image, mask = reference_inputs
    (box,) = nodes["IconMattingBoxToMask"]().draw(image, 48, 24, 64, 48)
    assert torch.equal(box, mask)
    first, _ = _encode(nodes, icm, comfy_sd2, image, box, "box")
    wide = torch.rand(1, 120, 300, 3)
    second, _ = _encode(
        nodes, icm, comfy_sd2, wide, nodes["IconMattingBoxToMask"]().draw(wide, 0, 0, 150, 120)[0], "box"
    )
    combined = nodes["IconMattingCombineReferences"]().combine(first, second)
    assert combined["result"][0].context.query.shape[0] == first.context.query.shape[0] + second.context.query.shape[0]
    assert combined["ui"]["text"][0].startswith("2 reference(s)")


def test_loadimage_empty_mask_gets_a_hint(nodes, icm, comfy_sd2, reference_inputs):
    image, _ = reference_inputs
    with pytest.raises(ValueError, match="reference_mask is LoadImage's empty 64x64 MASK"):
        _encode(nodes, icm, comfy_sd2, image, torch.zeros(1, 64, 64))


def test_apply_alpha(nodes):
    image, alpha = torch.rand(2, 8, 9, 3), torch.rand(2, 8, 9)
    foreground, rgba = nodes["IconMattingApplyAlpha"]().apply(image, alpha)
    torch.testing.assert_close(foreground, rgba[..., :3] * alpha.unsqueeze(-1))
    assert rgba.shape == (2, 8, 9, 4) and torch.equal(rgba[..., 3], alpha)
    foreground, rgba = nodes["IconMattingApplyAlpha"]().apply(image, alpha, "multiply")
    torch.testing.assert_close(foreground, image * alpha.unsqueeze(-1))
    assert torch.equal(rgba[..., :3], image)
    with pytest.raises(ValueError, match="does not fit image"):
        nodes["IconMattingApplyAlpha"]().apply(image, alpha[..., :5])


def test_head_refuses_other_images(nodes, icm, comfy_sd2, reference_inputs, targets):
    reference, _ = _encode(nodes, icm, comfy_sd2, *reference_inputs)
    guidance = nodes["InContextSimilarity"]().compute(reference, targets, 4, 0)[0]
    with pytest.raises(ValueError, match="target_image has 2 images but the guidance is for 3"):
        nodes["MattingHead"]().matte(icm, guidance, targets[:2])


# --- video -----------------------------------------------------------------------------------------------------------


def test_video_in_chunks(nodes, icm, comfy_sd2, monkeypatch):
    model, vae, clip = comfy_sd2
    frames = torch.rand(5, 64, 80, 3, generator=torch.Generator().manual_seed(3))
    mask = torch.zeros(1, 64, 80)
    mask[:, 8:56, 16:64] = 1
    unet = model.model.diffusion_model
    batches = []
    original = type(unet).forward
    monkeypatch.setattr(
        type(unet), "forward", lambda self, x, *a, **k: batches.append(x.shape[0]) or original(self, x, *a, **k)
    )
    video = nodes["VideoInContextMatte"]()
    one = video.matte(icm, model, vae, frames, mask, 2, "mask", 1, 200, 2, 0, clip=clip)["result"][0]
    three = video.matte(icm, model, vae, frames, mask, 2, "mask", 3, 200, 2, 0, clip=clip)["result"][0]
    assert one.shape == (5, 64, 80)
    torch.testing.assert_close(one, three, rtol=1e-4, atol=1e-5)
    assert max(batches) <= 8
    # The marked frame as the target: its own matte is what the reference frame + mask give.
    separate = video.matte(
        icm, model, vae, frames[2:3], mask, 0, "mask", 1, 200, 2, 0, clip=clip, reference_image=frames[2:3]
    )["result"][0]
    torch.testing.assert_close(separate[0], one[2], rtol=1e-4, atol=1e-5)
    with pytest.raises(ValueError, match="reference_frame 7 is not a frame"):
        video.matte(icm, model, vae, frames, mask, 7, "mask", 2, 200, 2, 0, clip=clip)
    with pytest.raises(ValueError, match="reference_mask has 2 masks"):
        video.matte(icm, model, vae, frames, mask.expand(2, -1, -1), 0, "mask", 2, 200, 2, 0, clip=clip)


# --- the user's MODEL ------------------------------------------------------------------------------------------------


# ComfyUI 0.3.64's InterruptProcessingException is an Exception, newer ComfyUI's a BaseException: cleanup must not
# depend on either (finally, never except Exception).
@pytest.mark.parametrize("interrupt_base", [Exception, BaseException], ids=["Exception", "BaseException"])
def test_user_model_unchanged_after_runs_and_interruption(
    nodes, icm, comfy_sd2, reference_inputs, targets, interrupt_base, monkeypatch
):
    import comfy.model_management
    import comfy.utils

    interrupt = type("InterruptProcessingException", (interrupt_base,), {})
    monkeypatch.setattr(comfy.model_management, "InterruptProcessingException", interrupt)

    model = comfy_sd2[0]
    before, options = _unet_output(model), repr(model.model_options)
    reference, _ = _encode(nodes, icm, comfy_sd2, *reference_inputs)
    nodes["InContextSimilarity"]().compute(reference, targets, 4, 0)
    assert torch.equal(_unet_output(model), before) and repr(model.model_options) == options

    updates, blocks = [], []

    def cancel_inside_the_pass(value, total, preview, node_id=None):
        updates.append((value, total))
        if value == 6:  # the VAE encode and input blocks 0-4 done: cancel before input block 5
            comfy.model_management.interrupt_current_processing()

    unet = model.model.diffusion_model.unet
    hooks = [m.register_forward_pre_hook(lambda _m, _a, n=n: blocks.append(n)) for n, m in unet.named_modules()]
    comfy.utils.set_progress_bar_global_hook(cancel_inside_the_pass)
    try:
        with pytest.raises(comfy.model_management.InterruptProcessingException):
            nodes["InContextSimilarity"]().compute(reference, targets, 4, 0)
    finally:
        comfy.utils.set_progress_bar_global_hook(None)
        for hook in hooks:
            hook.remove()
    assert updates == [(value, 46) for value in range(1, 7)]  # 2 chunks of 1 + 21 blocks + 1 (similarity)
    assert "down_blocks.1.resnets.0" in blocks and "down_blocks.1.resnets.1" not in blocks  # input blocks 4 and 5
    assert reference.backbone._current is None and not comfy.model_management.processing_interrupted()
    assert torch.equal(_unet_output(model), before) and repr(model.model_options) == options


def _progress_of(run) -> tuple[list[tuple[int, int]], list[bool]]:
    """The progress updates ``(value, total)`` of ``run()``, and whether each came from inside a U-Net pass."""
    import comfy.utils

    updates, inside = [], []
    unet_pass = pack_module("nodes.comfy_backbone").ComfyBackbone.run.__code__

    def hook(value, total, preview, node_id=None):
        updates.append((value, total))
        frame = inspect.currentframe()
        while frame is not None and frame.f_code is not unet_pass:
            frame = frame.f_back
        inside.append(frame is not None)

    comfy.utils.set_progress_bar_global_hook(hook)
    try:
        run()
    finally:
        comfy.utils.set_progress_bar_global_hook(None)
    return updates, inside


def _planned(updates: list[tuple[int, int]]) -> None:
    """One bar that moves one step at a time and is full only at its last update."""
    total = updates[0][1]
    assert updates == [(value, total) for value in range(1, total + 1)]


def test_progress_moves_within_passes_and_is_full_only_at_the_end(nodes, icm, comfy_sd2, reference_inputs, targets):
    encoded = []
    updates, inside = _progress_of(lambda: encoded.append(_encode(nodes, icm, comfy_sd2, *reference_inputs)[0]))
    _planned(updates)
    assert len(updates) == 1 + 19 and sum(inside) == 19  # the VAE encode, then 12 input + 7 output blocks
    result = []
    updates, inside = _progress_of(
        lambda: result.append(nodes["InContextSimilarity"]().compute(encoded[0], targets[:1], 2, 0)[0])
    )
    _planned(updates)  # one target: the bar moves 23 times, 21 of them inside the U-Net pass
    assert len(updates) == 1 + 21 + 1 and sum(inside) == 21 and not inside[-1]
    updates, _ = _progress_of(lambda: nodes["MattingHead"]().matte(icm, result[0], targets[:1]))
    assert updates == [(1, 1)]


# --- wrong models ----------------------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("family", "model_type", "message"),
    [
        ("SD15", "EPS", r"SD15 \(EPS\), not Stable Diffusion 2.x"),
        ("SDXL", "EPS", r"SDXL \(EPS\), not Stable Diffusion 2.x"),
        ("SD21UnclipH", "V_PREDICTION", "not Stable Diffusion 2.x"),
        ("SD20", "EPS", "SD2-base"),
        ("Flux", "FLUX", r"Flux \(FLUX\)"),
    ],
)
def test_wrong_model_family(pack, nodes, icm, comfy_sd2, reference_inputs, family, model_type, message):
    from comfy_env import comfy_model

    _, vae, clip = comfy_sd2
    wrong = comfy_model(random_unet_vae("tiny", seed=0)[0], family, model_type)
    with pytest.raises(ValueError, match=message) as info:
        nodes["EncodeReferenceContext"]().encode(icm, wrong, vae, *reference_inputs, "mask", 200, 4, 0, clip=clip)
    assert "Stable Diffusion 2.1 768-v" in str(info.value)


def test_not_a_model_at_all(nodes, icm, comfy_sd2, reference_inputs):
    _, vae, clip = comfy_sd2
    with pytest.raises(ValueError, match="not a diffusion model"):
        nodes["EncodeReferenceContext"]().encode(icm, vae, vae, *reference_inputs, "mask", 200, 4, 0, clip=clip)


# --- bad input ------------------------------------------------------------------------------------------------------


def test_empty_batches(nodes, icm, comfy_sd2, reference_inputs, targets):
    model, vae, clip = comfy_sd2
    reference, _ = _encode(nodes, icm, comfy_sd2, *reference_inputs)
    with pytest.raises(ValueError, match=r"target_image is an empty IMAGE batch \(shape \[0, 70, 90, 3\]\)"):
        nodes["InContextSimilarity"]().compute(reference, targets[:0], 4, 0)
    with pytest.raises(ValueError, match="reference_image is an empty IMAGE batch"):
        _encode(nodes, icm, comfy_sd2, reference_inputs[0][:0], reference_inputs[1])
    with pytest.raises(ValueError, match="reference_mask is empty"):
        _encode(nodes, icm, comfy_sd2, reference_inputs[0], reference_inputs[1][:0])
    with pytest.raises(ValueError, match="frames is an empty IMAGE batch"):
        nodes["VideoInContextMatte"]().matte(
            icm, model, vae, targets[:0], reference_inputs[1], 0, "mask", 2, 200, 1, 0, clip=clip,
            reference_image=reference_inputs[0],
        )  # fmt: skip


def test_vae_of_another_family(nodes, icm, comfy_sd2, reference_inputs):
    from comfy.sd import VAE
    from diffusers import AutoencoderKL

    from icm_model.random_models import VAE_CONFIGS

    model, _, clip = comfy_sd2
    flux_like = VAE(AutoencoderKL(**{**VAE_CONFIGS["tiny"], "latent_channels": 16}))
    with pytest.raises(
        ValueError, match="the VAE input makes 16-channel latents.*wire the VAE of the SD2.1 checkpoint"
    ):
        nodes["EncodeReferenceContext"]().encode(icm, model, flux_like, *reference_inputs, "mask", 200, 1, 0, clip=clip)
    del flux_like.latent_channels  # a VAE object that does not say: the latents themselves are checked
    with pytest.raises(ValueError, match="the VAE input makes 16-channel latents"):
        nodes["EncodeReferenceContext"]().encode(icm, model, flux_like, *reference_inputs, "mask", 200, 1, 0, clip=clip)


def test_head_refuses_other_images_of_the_same_size(nodes, icm, comfy_sd2, reference_inputs, targets):
    reference, _ = _encode(nodes, icm, comfy_sd2, *reference_inputs, ensemble=1)
    guidance = nodes["InContextSimilarity"]().compute(reference, targets, 1, 0)[0]
    others = targets.clone()
    others[2] = targets[2].flip(0)
    with pytest.raises(ValueError, match="target_image #2 is not the image the guidance was computed from"):
        nodes["MattingHead"]().matte(icm, guidance, others)
    rgba = torch.cat([targets, torch.ones_like(targets[..., :1])], dim=-1)  # RGBA IMAGE: alpha channel ignored
    alpha, foreground, _ = nodes["MattingHead"]().matte(icm, guidance, rgba)
    assert torch.equal(alpha, nodes["MattingHead"]().matte(icm, guidance, targets)[0]) and foreground.shape[-1] == 3


def test_prompts_outside_the_image(nodes, reference_inputs):
    image, _ = reference_inputs
    points, box = nodes["IconMattingPointsToMask"](), nodes["IconMattingBoxToMask"]()
    with pytest.raises(ValueError, match=r"positive_points all lie outside the 160x96 reference_image"):
        points.draw(image, '[{"x": 300, "y": 40}, {"x": 20, "y": 200}]', 12)
    with pytest.raises(ValueError, match="positive_points are all within 0..1: they look like normalized"):
        points.draw(image, '[{"x": 0.5, "y": 0.25}]', 12)
    with pytest.raises(ValueError, match="negative_points cut away every pixel"):
        points.draw(image, '[{"x": 50, "y": 40}]', 5, '[{"x": 50, "y": 40}]')
    with pytest.raises(ValueError, match=r"the box \(x 200, y 10, width 50, height 50\) covers no pixel of the 160x96"):
        box.draw(image, 200, 10, 50, 50)
    with pytest.raises(ValueError, match="width and height of at least 1"):
        box.draw(image, 10, 10, 0, 50)
    assert points.draw(image, '[{"x": 165, "y": 40}]', 12)[0].any()  # a disc reaching into the image is fine


def test_thin_mask_names_the_prompt_types(nodes, icm, comfy_sd2, reference_inputs):
    image, _ = reference_inputs
    thin = torch.zeros(1, 96, 160)
    thin[:, 40:44, 20:140] = 1
    with pytest.raises(ValueError, match="use prompt_type points or scribble"):
        _encode(nodes, icm, comfy_sd2, image, thin, "mask", ensemble=1)
    # The band (y 40..44, x 20..140) lies in canvas row 3 (y 57.6..60.8) and spans columns 1..6 (x 16..112) exactly.
    reference = _encode(nodes, icm, comfy_sd2, image, thin, "scribble", ensemble=1)[0]
    assert reference.context.token_masks[0].nonzero().tolist() == [[3, j] for j in range(1, 7)]


def test_combined_references_of_other_models(nodes, icm, comfy_sd2, reference_inputs):
    from comfy_env import comfy_model

    model, vae, clip = comfy_sd2
    first, _ = _encode(nodes, icm, comfy_sd2, *reference_inputs, ensemble=1)
    other_sd = (comfy_model(random_unet_vae("tiny", seed=1)[0]), vae, clip)
    second, _ = _encode(nodes, icm, other_sd, *reference_inputs, ensemble=1)
    with pytest.raises(ValueError, match="reference_b was encoded with another SD model than reference_a"):
        nodes["IconMattingCombineReferences"]().combine(first, second)
    later = nodes["EncodeReferenceContext"]().encode(icm, model, vae, *reference_inputs, "mask", 100, 1, 0, clip=clip)
    with pytest.raises(ValueError, match="reference_b does not fit reference_a: cannot combine .* timestep 100"):
        nodes["IconMattingCombineReferences"]().combine(first, later["result"][0])


def test_video_mask_of_another_size(nodes, icm, comfy_sd2):
    model, vae, clip = comfy_sd2
    frames = torch.rand(2, 64, 80, 3)
    with pytest.raises(ValueError, match=r"reference_mask is 80x60 but frames are 80x64"):
        nodes["VideoInContextMatte"]().matte(icm, model, vae, frames, torch.ones(1, 60, 80), 0, "mask", 2, 200, 1, 0,
                                             clip=clip)  # fmt: skip


def test_loader_errors_never_advise_unsafe_loading(pack, nodes, tmp_path):
    import folder_paths

    folder = folder_paths.folder_names_and_paths["icon_matting"][0][0]

    class Payload:
        def __reduce__(self):
            return (print, ("ran",))

    torch.save({"state_dict": {}, "x": Payload()}, f"{folder}/unsafe.ckpt")
    with pytest.raises(ValueError, match="NOT loaded") as info:
        nodes["LoadIconMattingModel"]().load("unsafe.ckpt")
    assert not [word for word in ("weights_only", "safe_globals", "allowlist") if word in str(info.value)]


@pytest.mark.parametrize(("with_attention", "reference_attention"), [(False, False), (False, True), (True, False)])
def test_comfy_blocks_per_pass_is_what_a_pass_ticks(pack, comfy_sd2, with_attention, reference_attention):
    model, vae, clip = comfy_sd2
    backbone = pack_module("nodes.comfy_backbone").ComfyBackbone(model, vae, clip.embedding)
    ticks = []
    capture = pack_module("icm_model.backbone.capture").UNetCapture(
        with_attention, reference_attention=reference_attention, on_block=lambda: ticks.append(1)
    )
    backbone.run(torch.randn(1, 4, 16, 16), 200, capture)
    assert len(ticks) == backbone.blocks_per_pass(capture.attention_grids) == (21 if capture.attention_grids else 19)
