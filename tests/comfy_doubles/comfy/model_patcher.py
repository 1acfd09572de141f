"""Double of comfy.model_patcher.ModelPatcher: clones share the model and deep-copy model_options."""

import copy


def set_model_options_patch_replace(model_options, patch, name, block_name, number, transformer_index=None):
    to = model_options["transformer_options"].copy()
    if "patches_replace" not in to:
        to["patches_replace"] = {}
    else:
        to["patches_replace"] = to["patches_replace"].copy()
    if name not in to["patches_replace"]:
        to["patches_replace"][name] = {}
    else:
        to["patches_replace"][name] = to["patches_replace"][name].copy()
    block = (block_name, number, transformer_index) if transformer_index is not None else (block_name, number)
    to["patches_replace"][name][block] = patch
    model_options["transformer_options"] = to
    return model_options


class ModelPatcher:
    def __init__(self, model, load_device, offload_device, size=0, weight_inplace_update=False):
        self.size = size
        self.model = model
        self.load_device = load_device
        self.offload_device = offload_device
        self.weight_inplace_update = weight_inplace_update
        self.model_options = {"transformer_options": {}}
        self.patches = {}
        self.backup = {}
        self.parent = None

    def clone(self):
        n = self.__class__(self.model, self.load_device, self.offload_device, self.size, self.weight_inplace_update)
        n.patches = {k: v[:] for k, v in self.patches.items()}
        n.backup = self.backup
        n.model_options = copy.deepcopy(self.model_options)
        n.parent = self
        return n

    def add_patches(self, patches, strength_patch=1.0, strength_model=1.0):
        """Weight patches (LoRA) on keys of the model's state dict; applied when loaded (not in this double)."""
        keys = self.model.state_dict().keys()
        for key in [k for k in patches if k in keys]:
            self.patches.setdefault(key, []).append((strength_patch, patches[key], strength_model, None, None))
        return [k for k in patches if k in keys]

    def is_clone(self, other):
        return hasattr(other, "model") and self.model is other.model

    def set_model_patch(self, patch, name):
        to = self.model_options["transformer_options"]
        if "patches" not in to:
            to["patches"] = {}
        to["patches"][name] = to["patches"].get(name, []) + [patch]

    def set_model_patch_replace(self, patch, name, block_name, number, transformer_index=None):
        self.model_options = set_model_options_patch_replace(
            self.model_options, patch, name, block_name, number, transformer_index=transformer_index
        )

    def set_model_attn1_replace(self, patch, block_name, number, transformer_index=None):
        self.set_model_patch_replace(patch, "attn1", block_name, number, transformer_index)

    def set_model_input_block_patch(self, patch):
        self.set_model_patch(patch, "input_block_patch")

    def set_model_output_block_patch(self, patch):
        self.set_model_patch(patch, "output_block_patch")
