"""Memory manners without a ComfyUI: the capture pass's memory model against measured allocations, passes split to
fit free memory and after out-of-memory errors, and caches that hold no model and key on content (the identities
themselves: tests/test_identity.py).

The same manners inside a real ComfyUI: tests/test_comfyui_memory.py.
"""

from __future__ import annotations

import gc
import weakref

import pytest
import torch
from comfy_env import pack_module
from torch.utils._python_dispatch import TorchDispatchMode
from torch.utils._pytree import tree_flatten

from icm_model.backbone.capture import HIGH, LOW, UNetCapture
from icm_model.backbone.memory import SD21, UNetLayout, capture_memory
from icm_model.backbone.split_pass import run_split

TINY = UNetLayout(channels=(32, 64, 64, 64), heads=(2, 4, 4, 4))
"""icm_model.random_models' tiny U-Net."""
MB = 1 << 20


class LiveBytes(TorchDispatchMode):
    """Peak bytes of the tensor storages created under the mode while any tensor still refers to them."""

    def __init__(self) -> None:
        super().__init__()
        self.live = self.peak = 0
        self.tensors: dict[int, int] = {}  # storage address -> tensors referring to it

    def _release(self, key: int, nbytes: int) -> None:
        self.tensors[key] -= 1
        if not self.tensors[key]:
            del self.tensors[key]
            self.live -= nbytes

    def __torch_dispatch__(self, func, types, args=(), kwargs=None):
        out = func(*args, **(kwargs or {}))
        for tensor in tree_flatten(out)[0]:
            if isinstance(tensor, torch.Tensor):
                storage = tensor.untyped_storage()
                key = storage.data_ptr()
                if key not in self.tensors:
                    self.tensors[key] = 0
                    self.live += storage.nbytes()
                    self.peak = max(self.peak, self.live)
                self.tensors[key] += 1
                weakref.finalize(tensor, self._release, key, storage.nbytes())
        return out


def _kept_bytes(capture: UNetCapture) -> int:
    kept = [*capture.up_features.values(), *capture.attention_sums.values()]
    return sum(t.numel() * t.element_size() for t in kept)


# --- the memory model ------------------------------------------------------------------------------------------------


def test_sd21_figures_at_768():
    """The stated model, part by part, for SD2.1 fp16 at 768x768 (96x96 latents; grids 96, 48, 24, 12)."""
    t0, t1, t2, t3 = 96 * 96, 48 * 48, 24 * 24, 12 * 12
    skips = 3 * 320 * t0 + (320 * t1 + 2 * 640 * t1) + (640 * t2 + 2 * 1280 * t2) + (1280 * t3 + 2 * 1280 * t3)
    activations = (skips + 20 * 320 * t0) * 2
    target = capture_memory(96, 96, (LOW, HIGH))
    assert target.fixed == (2 * 10 * t1**2 + 3 * t1 * 640) * 4  # 10 heads x 2304^2 scores + probabilities, fp32
    assert target.kept_per_latent == (t1**2 + t2**2) * 4 + (1280 * t2 + 1280 * t1) * 2
    assert target.per_latent == activations + target.kept_per_latent + t1**2 * 4
    reference = capture_memory(96, 96, ())
    assert reference.fixed == 0 and reference.per_latent == activations + 1280 * t1 * 2
    assert (target.fixed // MB, target.per_latent // MB) == (421, 189)  # the README's figures
    assert [target.total(n) // MB for n in (1, 2, 4)] == [611, 801, 1180]


@pytest.mark.parametrize("grids", [(LOW, HIGH), (HIGH,), ()])
def test_kept_part_is_exactly_what_the_capture_holds(tiny_backbone, grids):
    latents = torch.randn(3, 4, 32, 32, generator=torch.Generator().manual_seed(0))
    capture = UNetCapture(LOW in grids, reference_attention=grids == (HIGH,))
    assert capture.attention_grids == grids
    with torch.no_grad():
        tiny_backbone.run(latents, 200, capture)
    assert _kept_bytes(capture) == 3 * capture_memory(32, 32, grids, 4, TINY).kept_per_latent


@pytest.mark.parametrize("latents", [1, 3])
@pytest.mark.parametrize("side", [16, 32])
@pytest.mark.parametrize("with_attention", [True, False])
def test_model_bounds_the_measured_peak(tiny_backbone, latents, side, with_attention):
    """An upper bound of the tensors a pass allocates, and not a loose one (at most twice them)."""
    noisy = torch.randn(latents, 4, side, side, generator=torch.Generator().manual_seed(0))
    capture = UNetCapture(with_attention)
    with torch.no_grad(), LiveBytes() as measured:
        tiny_backbone.run(noisy, 200, capture)
    estimate = capture_memory(side, side, capture.attention_grids, 4, TINY).total(latents)
    assert measured.peak <= estimate <= 2 * measured.peak, (measured.peak, estimate)


def test_latents_fitting():
    memory = capture_memory(96, 96, (LOW, HIGH), layout=SD21)
    assert memory.latents_fitting(memory.total(3), 8) == 3
    assert memory.latents_fitting(memory.total(3) - 1, 8) == 2
    assert memory.latents_fitting(memory.total(20), 8) == 8
    assert memory.latents_fitting(0, 8) == 1  # one latent is tried anyway (and may fall back no further)


# --- split passes ----------------------------------------------------------------------------------------------------


class _OOMAbove:
    """A U-Net call of the tiny backbone that raises CUDA's out-of-memory error above ``limit`` latents."""

    def __init__(self, backbone, limit: int) -> None:
        self.backbone, self.limit, self.calls = backbone, limit, []

    def __call__(self, latents: torch.Tensor, capture: UNetCapture):
        self.calls.append(latents.shape[0])
        if latents.shape[0] > self.limit:
            capture.block_done()  # it got into the pass before failing: that progress is taken back
            raise torch.cuda.OutOfMemoryError("simulated")
        return self.backbone.run(latents, 200, capture)


@pytest.mark.parametrize(("per_call", "limit", "calls"), [(5, 5, [5]), (2, 5, [2, 2, 1]), (5, 2, [5, 2, 2, 1])])
def test_split_pass_equals_one_pass(tiny_backbone, per_call, limit, calls):
    noisy = torch.randn(5, 4, 16, 16, generator=torch.Generator().manual_seed(0))
    whole, ticks, emptied = UNetCapture(True), [], []
    with torch.no_grad():
        tiny_backbone.run(noisy, 200, whole)
        split = UNetCapture(True, on_block=lambda: ticks.append(1))
        run = _OOMAbove(tiny_backbone, limit)
        output, reached = run_split(run, noisy, split, per_call, on_oom=lambda: emptied.append(1))
    assert output is None and run.calls == calls and reached == min(per_call, limit if limit < 5 else 5)
    assert len(emptied) == (limit < per_call)
    assert len(ticks) == tiny_backbone.blocks_per_pass((LOW, HIGH))  # one tick per block, as one pass
    assert split.attention_layers == whole.attention_layers
    for mine, theirs in [(split.up_features, whole.up_features), (split.attention_sums, whole.attention_sums)]:
        assert mine.keys() == theirs.keys()
        for key in mine:
            torch.testing.assert_close(mine[key], theirs[key], rtol=1e-4, atol=1e-5)


def test_one_latent_that_does_not_fit_raises(tiny_backbone):
    noisy = torch.randn(2, 4, 16, 16)
    with pytest.raises(torch.cuda.OutOfMemoryError, match="simulated"):
        run_split(_OOMAbove(tiny_backbone, 0), noisy, UNetCapture(True), 2)


def test_other_errors_are_not_retried(tiny_backbone):
    calls = []

    def fails(latents, capture):
        calls.append(latents.shape[0])
        raise RuntimeError("not memory")

    with pytest.raises(RuntimeError, match="not memory"):
        run_split(fails, torch.randn(4, 4, 16, 16), UNetCapture(True), 4)
    assert calls == [4]


# --- the nodes on a small device (ComfyUI doubles) -------------------------------------------------------------------


@pytest.fixture
def device_budget(monkeypatch):
    """Sets what the double's get_free_memory reports; logs load_models_gpu's memory estimates."""
    import comfy.model_management as mm

    mm.memory_log.clear()

    def set_free(free: int) -> None:
        monkeypatch.setattr(mm, "free_memory_bytes", free)

    return set_free


def _with_oom_above(model, limit: int | None, calls: list[int]):
    """A clone of ``model`` whose U-Net records each call's batch and raises out-of-memory above ``limit``."""

    def first_block(h, transformer_options):
        if transformer_options["block"][1] == 0:
            calls.append(h.shape[0])
            if limit is not None and h.shape[0] > limit:
                raise torch.cuda.OutOfMemoryError("simulated")
        return h

    clone = model.clone()
    clone.set_model_input_block_patch(first_block)
    return clone


def _alpha(nodes, icm, model, vae, clip, ensemble):
    image = torch.rand(1, 96, 128, 3, generator=torch.Generator().manual_seed(1))
    mask = torch.zeros(1, 96, 128)
    mask[:, 24:72, 32:96] = 1.0
    targets = torch.rand(2, 70, 90, 3, generator=torch.Generator().manual_seed(2))
    reference = nodes["EncodeReferenceContext"]().encode(icm, model, vae, image, mask, "mask", 200, ensemble, 0,
                                                         clip=clip)["result"][0]  # fmt: skip
    guidance = nodes["InContextSimilarity"]().compute(reference, targets, ensemble, 0)[0]
    return nodes["MattingHead"]().matte(icm, guidance, targets)[0]


def test_batches_follow_free_memory_and_shrink_on_oom(nodes, icm, comfy_sd2, device_budget):
    """The nodes give load_models_gpu the pass's estimate; the U-Net calls fit the free memory; an out-of-memory
    error halves the calls instead of failing; the alpha is the same every time."""
    import comfy.model_management as mm

    model, vae, clip = comfy_sd2
    calls: list[int] = []
    plain = _alpha(nodes, icm, _with_oom_above(model, None, calls), vae, clip, 4)
    assert calls == [4, 8]  # the reference's 4 ensemble latents, then 2 targets x 4 in one call
    reference, target = (capture_memory(16, 16, grids, 4) for grids in ((), (LOW, HIGH)))  # 128 px canvas, fp32
    passes = [(reference.total(4), reference.total(1)), (target.total(8), target.total(1))]
    assert [estimate for estimate in mm.memory_log if estimate[0]] == passes  # (the decoder's loads: no estimate)

    calls.clear()
    device_budget(target.total(3))
    small = _alpha(nodes, icm, _with_oom_above(model, None, calls), vae, clip, 4)
    assert reference.latents_fitting(target.total(3), 4) == 3
    assert calls == [3, 1, 3, 3, 2]  # reference 3 + 1, targets 3 + 3 + 2
    torch.testing.assert_close(small, plain, rtol=1e-4, atol=1e-5)

    calls.clear()
    device_budget(1 << 40)
    squeezed = _alpha(nodes, icm, _with_oom_above(model, 2, calls), vae, clip, 4)
    assert calls == [4, 2, 2, 2, 2, 2, 2]  # after the first error, every later pass starts at 2 latents
    torch.testing.assert_close(squeezed, plain, rtol=1e-4, atol=1e-5)


# --- identities by content and caches that hold no model -------------------------------------------------------------


def _reachable(root, limit: int = 200_000) -> list:
    """Every object reachable from ``root`` through gc referents (modules and classes not followed)."""
    seen, stack, found = set(), [root], []
    while stack and len(seen) < limit:
        obj = stack.pop()
        if id(obj) in seen or isinstance(obj, type) or type(obj).__name__ == "module":
            continue
        seen.add(id(obj))
        found.append(obj)
        stack.extend(gc.get_referents(obj))
    return found


def test_video_cache_holds_content_only_and_keys_on_content(nodes, icm, comfy_sd2, monkeypatch):
    from comfy.sd import VAE
    from comfy_env import comfy_model

    from icm_model.random_models import random_unet_vae

    video_nodes = pack_module("nodes.video_nodes")
    model, vae, clip = comfy_sd2
    frames = torch.rand(4, 64, 80, 3, generator=torch.Generator().manual_seed(3))
    mask = torch.zeros(1, 64, 80)
    mask[:, 16:48, 20:60] = 1.0
    manager = nodes["IconMattingVideoBatchManager"]()

    def run(model, vae, unique_id):
        batch, selected, _, _ = manager.next_batch(2, 0, frames, unique_id=unique_id)["result"]
        out = nodes["VideoInContextMatte"]().matte(icm, model, vae, selected, mask, 0, "mask", 2, 200, 1, 0, clip=clip,
                                                   batch=batch)  # fmt: skip
        return out["ui"]["text"][0]

    run(model, vae, "content")
    reachable = _reachable(video_nodes._clips)
    assert not [o for o in reachable if isinstance(o, torch.nn.Module)]  # no U-Net, VAE, CLIP or decoder
    assert not [o for o in reachable if type(o).__name__ in ("ModelPatcher", "VAE", "CLIP", "IconMattingModel")]
    assert all(t.device == torch.device("cpu") for t in reachable if isinstance(t, torch.Tensor))
    # the same checkpoint loaded again (new objects, new id()s) continues the clip
    unet, autoencoder = random_unet_vae("tiny", seed=0)
    assert "kept from frame 1" in run(comfy_model(unet), VAE(autoencoder), "content")
    # another SD model is another clip: the reference frame is not in its second batch, so it must say so
    run(model, vae, "other")
    with pytest.raises(ValueError, match="no earlier batch of this video encoded it"):
        run(comfy_model(random_unet_vae("tiny", seed=1)[0]), vae, "other")


def test_decoder_cache_is_weak(nodes, icm):
    """Loader nodes naming one file share one decoder while it is held, and the pack does not hold it."""
    from helpers import MODEL_NAME

    loader = nodes["LoadIconMattingModel"]()
    first = loader.load(MODEL_NAME)[0]
    assert loader.load(MODEL_NAME)[0] is first is icm and len(first.fingerprint) == 16
    model_nodes = pack_module("nodes.model_nodes")
    gone = weakref.ref(model_nodes.load_icon_matting_model(model_nodes.folder_paths.get_full_path_or_raise(
        model_nodes.MODEL_FOLDER, MODEL_NAME)))  # fmt: skip
    assert gone() is icm
    fresh = model_nodes.IconMattingModel(icm.decoder, "x")  # a model nobody else holds: freed when dropped
    dead = weakref.ref(fresh)
    del fresh
    gc.collect()
    assert dead() is None
