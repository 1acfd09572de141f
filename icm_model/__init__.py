"""In-context matting (IconMatting, CVPR 2024) in plain PyTorch; nothing here imports ComfyUI.

The folders follow the paper's pipeline: :mod:`.prompts` (marks on the reference -> RoI tokens), :mod:`.backbone`
(the frozen SD2.1 U-Net as feature extractor), :mod:`.decoder` (inter-/intra-similarity and the matting head, as the
checkpoint holds them), :mod:`.compositing` (foreground colours, full-resolution edges) and :mod:`.evaluation`
(metrics). :mod:`.pipeline` ties them together: the reference encoded once, any number of targets matted. The
diffusers backbone (:mod:`.backbone.diffusers_backbone`) is imported on demand: it needs diffusers.
"""

from .decoder.checkpoint import load_decoder
from .decoder.config import DecoderConfig
from .decoder.model import InContextDecoder
from .pipeline import InContextMatting, ReferenceContext, encode_reference, predict_alpha, target_guidance

__all__ = [
    "DecoderConfig",
    "InContextDecoder",
    "InContextMatting",
    "ReferenceContext",
    "encode_reference",
    "load_decoder",
    "predict_alpha",
    "target_guidance",
]
