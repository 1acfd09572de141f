"""In-context matting (IconMatting, CVPR 2024) in plain PyTorch; nothing here imports ComfyUI.

The pieces, in the paper's vocabulary: :mod:`.similarity` (RoI query, inter- and intra-similarity), :mod:`.head`
(the matting head), :mod:`.decoder` (both, as the checkpoint holds them), :mod:`.capture` and :mod:`.features` (the
frozen SD2.1 U-Net as a feature extractor), :mod:`.pipeline` (reference encoded once, targets matted), and
:mod:`.checkpoint`. The diffusers backbone lives in :mod:`.diffusers_backbone` (imported on demand: it needs diffusers).
"""

from .checkpoint import load_decoder
from .config import DecoderConfig
from .decoder import InContextDecoder
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
