"""A diffusers SD2-architecture U-Net driven in ComfyUI's LDM block order, honouring ComfyUI's patch protocol.

Mirrors comfy/ldm/modules/diffusionmodules/openaimodel.py UNetModel._forward (block numbering, the skip stack,
``input_block_patch`` after each input block, ``output_block_patch`` before each output block concatenates its skip)
and comfy/ldm/modules/attention.py BasicTransformerBlock.forward (the attn1 replace lookup by
``(block[0], block[1], block_index)`` falling back to ``block``; q/k/v projected by to_q/to_k/to_v; extra_options
with ``n_heads``, ``dim_head``, ``attn_precision``; to_out applied to the patch's output).
"""

import torch
import torch.nn.functional as F


class _PatchProtocolProcessor:
    def __init__(self, owner):
        self.owner = owner

    def __call__(self, attn, hidden_states, encoder_hidden_states=None, attention_mask=None, temb=None, **kwargs):
        options = self.owner.transformer_options
        is_self_attention = encoder_hidden_states is None
        replace = options.get("patches_replace", {}).get("attn1", {}) if is_self_attention else {}
        block = options.get("block")
        key = (block[0], block[1], options.get("block_index", 0)) if block is not None else None
        if key not in replace:
            key = block
        context = hidden_states if encoder_hidden_states is None else encoder_hidden_states
        q, k, v = attn.to_q(hidden_states), attn.to_k(context), attn.to_v(context)
        if key in replace:
            extra = {name: value for name, value in options.items() if name not in ("patches", "patches_replace")}
            extra.update(n_heads=attn.heads, dim_head=q.shape[-1] // attn.heads, attn_precision=torch.float32)
            out = replace[key](q, k, v, extra)
        else:
            batch, tokens, inner = q.shape
            heads = attn.heads
            split = [x.view(batch, -1, heads, inner // heads).transpose(1, 2) for x in (q, k, v)]
            out = F.scaled_dot_product_attention(*split).transpose(1, 2).reshape(batch, tokens, inner)
        return attn.to_out[1](attn.to_out[0](out))


class LDMUNet(torch.nn.Module):
    """``forward(x, timesteps, context, y=None, control=None, transformer_options={})`` like comfy's UNetModel."""

    def __init__(self, unet):
        super().__init__()
        self.unet = unet.eval()
        self.transformer_options: dict = {}
        self.unet.set_attn_processor(_PatchProtocolProcessor(self))

    @property
    def dtype(self):
        return self.unet.dtype

    def _transformer(self, transformer, h, context):
        self.transformer_options["block_index"] = 0
        return transformer(h, encoder_hidden_states=context).sample

    def forward(self, x, timesteps=None, context=None, y=None, control=None, transformer_options=None, **kwargs):
        transformer_options = {} if transformer_options is None else transformer_options
        transformer_options["original_shape"] = list(x.shape)
        transformer_options["transformer_index"] = 0
        self.transformer_options = transformer_options
        patches = transformer_options.get("patches", {})
        unet = self.unet
        emb = unet.time_embedding(unet.time_proj(timesteps).to(x.dtype))
        hs = []

        def input_block_done(h):  # after input block ``index``: input_block_patch, then the skip
            for patch in patches.get("input_block_patch", []):
                h = patch(h, transformer_options)
            hs.append(h)
            return h

        transformer_options["block"] = ("input", 0)
        h = input_block_done(unet.conv_in(x))
        index = 1
        for down in unet.down_blocks:
            for i, resnet in enumerate(down.resnets):
                transformer_options["block"] = ("input", index)
                h = resnet(h, emb)
                if getattr(down, "attentions", None):
                    h = self._transformer(down.attentions[i], h, context)
                h = input_block_done(h)
                index += 1
            if down.downsamplers:
                transformer_options["block"] = ("input", index)
                h = input_block_done(down.downsamplers[0](h))
                index += 1
        transformer_options["block"] = ("middle", 0)
        mid = unet.mid_block
        h = mid.resnets[0](h, emb)
        for attention, resnet in zip(mid.attentions, mid.resnets[1:], strict=True):
            h = resnet(self._transformer(attention, h, context), emb)
        index = 0
        for up in unet.up_blocks:
            for i, resnet in enumerate(up.resnets):
                transformer_options["block"] = ("output", index)
                hsp = hs.pop()
                for patch in patches.get("output_block_patch", []):
                    h, hsp = patch(h, hsp, transformer_options)
                h = resnet(torch.cat([h, hsp], dim=1), emb)
                if getattr(up, "attentions", None):
                    h = self._transformer(up.attentions[i], h, context)
                if i == len(up.resnets) - 1 and up.upsamplers:
                    h = up.upsamplers[0](h)
                index += 1
        return unet.conv_out(unet.conv_act(unet.conv_norm_out(h)))
