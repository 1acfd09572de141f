"""Test-only ComfyUI nodes that look inside the ComfyUI process for tests/test_comfyui_memory.py.

Never part of the pack: the test harness copies this folder into the test server's own ``custom_nodes`` beside the
pack. The nodes report what they see in their ``ui`` text (JSON), read back from the prompt's history:

- ICMTestLiveModels: after ``gc.collect()``, how many U-Nets, VAEs, IconMatting decoders and ModelPatchers are
  alive, and which objects of the pack refer to a live U-Net;
- ICMTestDeviceBudget: a clone of the MODEL whose U-Net logs every call's batch and raises CUDA's out-of-memory
  error above ``oom_above`` latents; ``free_memory_mb`` makes ``get_free_memory`` report that little;
- ICMTestVramMode: ComfyUI's ``--lowvram`` / ``--novram`` loading forced on the CPU device (``load_models_gpu``
  sees a device that is not the CPU, that VRAM state and a small free memory), logging what it loaded how;
- ICMTestReport: the logs of the two above (after their MODEL ran), and undoes both;
- ICMTestTensorStats: a content hash and sampled values of an IMAGE and a MASK.
"""

import gc
import hashlib
import json

import comfy.model_management as mm
import torch

PACK = "iconmatting"
WATCHED = ("UNetModel", "AutoencoderKL", "InContextDecoder", "ModelPatcher")
_original = {name: getattr(mm, name) for name in ("get_free_memory", "load_models_gpu", "is_device_cpu")}
_log = {"calls": [], "loads": []}


class _Any(str):
    def __ne__(self, other):
        return False


ANY = _Any("*")


def _restore():
    for name, value in _original.items():
        setattr(mm, name, value)


def _reports_free(free):
    """A get_free_memory that reports ``free`` bytes."""
    return lambda dev=None, torch_free_too=False: (free, free) if torch_free_too else free


def _pack_referrers(target, depth=6, limit=20000):
    """Objects of the pack (instances of its classes, its functions, its modules' globals) on a referrer path to
    ``target``, within ``depth`` steps."""
    found, seen, frontier = [], {id(target)}, [target]
    for _ in range(depth):
        following = []
        for obj in frontier:
            for referrer in gc.get_referrers(obj):
                if id(referrer) in seen or referrer is frontier or referrer is following or len(seen) > limit:
                    continue
                seen.add(id(referrer))
                module = getattr(type(referrer), "__module__", "") or ""
                if type(referrer).__name__ == "function":
                    module = referrer.__module__ or ""
                if isinstance(referrer, dict) and PACK in str(referrer.get("__name__", "")):
                    module = referrer["__name__"]
                if PACK in module.lower():
                    found.append(f"{module}.{type(referrer).__qualname__}")
                following.append(referrer)
        frontier = following
    return sorted(set(found))


def _always(*args, **kwargs):
    return float("nan")  # runs on every prompt (and so does everything downstream)


class ICMTestLiveModels:
    CATEGORY = "icm_test"
    RETURN_TYPES = ()
    OUTPUT_NODE = True
    FUNCTION = "probe"

    @classmethod
    def INPUT_TYPES(cls):  # noqa: N802 (ComfyUI's name)
        return {"required": {"label": ("STRING", {"default": ""})}, "optional": {"after": (ANY,)}}

    def probe(self, label, after=None):
        del after
        gc.collect()
        counts = dict.fromkeys(WATCHED, 0)
        unets = []
        for obj in gc.get_objects():
            name = type(obj).__name__
            if name in counts:
                counts[name] += 1
                if name == "UNetModel":
                    unets.append(obj)
        referrers = sorted({r for unet in unets for r in _pack_referrers(unet)})
        del unets
        report = {"label": label, "counts": counts, "pack_referrers": referrers}
        return {"ui": {"text": [json.dumps(report)]}}


class _ModelProbe:
    """A probe node that takes a MODEL, changes how ComfyUI runs it, and passes it on (run every time)."""

    CATEGORY = "icm_test"
    IS_CHANGED = _always
    RETURN_TYPES = ("MODEL",)
    FUNCTION = "apply"
    SETTINGS: dict = {}
    """Its inputs besides ``model``."""

    @classmethod
    def INPUT_TYPES(cls):  # noqa: N802 (ComfyUI's name)
        return {"required": {"model": ("MODEL",), **cls.SETTINGS}}


class ICMTestDeviceBudget(_ModelProbe):
    SETTINGS = {"oom_above": ("INT", {"default": 0, "min": 0}), "free_memory_mb": ("INT", {"default": 0, "min": 0})}

    def apply(self, model, oom_above, free_memory_mb):
        _log["calls"].clear()

        def first_block(h, transformer_options):
            if transformer_options["block"][1] == 0:
                _log["calls"].append(h.shape[0])
                if oom_above and h.shape[0] > oom_above:
                    raise torch.cuda.OutOfMemoryError("simulated: the test's device budget")
            return h

        clone = model.clone()
        clone.set_model_input_block_patch(first_block)
        if free_memory_mb:
            mm.get_free_memory = _reports_free(free_memory_mb << 20)
        return (clone,)


class ICMTestVramMode(_ModelProbe):
    SETTINGS = {"mode": (["lowvram", "novram"],)}

    def apply(self, model, mode):
        _log["loads"].clear()
        state = mm.VRAMState.LOW_VRAM if mode == "lowvram" else mm.VRAMState.NO_VRAM
        load = _original["load_models_gpu"]

        def forced(models, *args, **kwargs):
            saved = mm.vram_state
            mm.vram_state, mm.is_device_cpu = state, (lambda device: False)
            mm.get_free_memory = _reports_free(64 << 20)
            try:
                return load(models, *args, **kwargs)
            finally:
                mm.vram_state = saved
                mm.is_device_cpu, mm.get_free_memory = _original["is_device_cpu"], _original["get_free_memory"]
                for patcher in models:
                    inner = patcher.model
                    _log["loads"].append(
                        {
                            "model": type(inner).__name__,
                            "lowvram": bool(getattr(inner, "model_lowvram", False)),
                            "lowvram_patches": int(getattr(inner, "lowvram_patch_counter", 0)),
                            "loaded": int(getattr(inner, "model_loaded_weight_memory", 0)),
                            "size": int(patcher.model_size()),
                        }
                    )

        mm.load_models_gpu = forced
        return (model,)


class ICMTestReport:
    CATEGORY = "icm_test"
    IS_CHANGED = _always
    RETURN_TYPES = ()
    OUTPUT_NODE = True
    FUNCTION = "report"

    @classmethod
    def INPUT_TYPES(cls):  # noqa: N802 (ComfyUI's name)
        return {"required": {"after": (ANY,)}}

    def report(self, after):
        del after
        _restore()
        report = {key: list(value) for key, value in _log.items()}
        for value in _log.values():
            value.clear()
        return {"ui": {"text": [json.dumps(report)]}}


class ICMTestTensorStats:
    CATEGORY = "icm_test"
    IS_CHANGED = _always
    RETURN_TYPES = ()
    OUTPUT_NODE = True
    FUNCTION = "stats"

    @classmethod
    def INPUT_TYPES(cls):  # noqa: N802 (ComfyUI's name)
        return {"required": {"image": ("IMAGE",), "mask": ("MASK",)}}

    def stats(self, image, mask):
        report = {}
        for name, tensor in (("image", image), ("mask", mask)):
            flat = tensor.detach().float().cpu().contiguous().reshape(-1)
            index = torch.linspace(0, flat.numel() - 1, 4096).long()
            report[name] = {
                "sha": hashlib.sha1(flat.numpy().tobytes()).hexdigest(),
                "shape": list(tensor.shape),
                "values": flat[index].tolist(),
            }
        return {"ui": {"text": [json.dumps(report)]}}


NODE_CLASS_MAPPINGS = {
    cls.__name__: cls for cls in (ICMTestLiveModels, ICMTestDeviceBudget, ICMTestVramMode, ICMTestReport,
                                  ICMTestTensorStats)
}  # fmt: skip
