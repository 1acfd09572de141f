"""The ComfyUI nodes of the pack: the only code that imports ComfyUI."""

from .compositing_nodes import IconMattingComposite
from .example_inputs import copy_example_inputs
from .matting_nodes import IconMattingApplyAlpha, InContextSimilarity, MattingHead
from .metrics_nodes import IconMattingMetrics
from .model_nodes import LoadIconMattingModel, register_model_folder
from .prompt_nodes import IconMattingCorrection, IconMattingReferencePrompt
from .reference_nodes import (
    EncodeReferenceContext,
    IconMattingBoxToMask,
    IconMattingCombineReferences,
    IconMattingPointsToMask,
)
from .training_nodes import IconMattingFineTune
from .video_batch_nodes import IconMattingVideoBatchManager
from .video_nodes import VideoInContextMatte

register_model_folder()
copy_example_inputs()

# Node ids are saved in users' workflows: never rename one.
NODE_CLASS_MAPPINGS = {
    "LoadIconMattingModel": LoadIconMattingModel,
    "EncodeReferenceContext": EncodeReferenceContext,
    "InContextSimilarity": InContextSimilarity,
    "MattingHead": MattingHead,
    "VideoInContextMatte": VideoInContextMatte,
    "IconMattingCombineReferences": IconMattingCombineReferences,
    "IconMattingPointsToMask": IconMattingPointsToMask,
    "IconMattingBoxToMask": IconMattingBoxToMask,
    "IconMattingApplyAlpha": IconMattingApplyAlpha,
    "IconMattingMetrics": IconMattingMetrics,
    "IconMattingComposite": IconMattingComposite,
    "IconMattingReferencePrompt": IconMattingReferencePrompt,
    "IconMattingCorrection": IconMattingCorrection,
    "IconMattingVideoBatchManager": IconMattingVideoBatchManager,
    "IconMattingFineTune": IconMattingFineTune,
}
NODE_DISPLAY_NAME_MAPPINGS = {
    "LoadIconMattingModel": "Load IconMatting Model",
    "EncodeReferenceContext": "Encode Reference Context (IconMatting)",
    "InContextSimilarity": "In-Context Similarity (IconMatting)",
    "MattingHead": "Matting Head (IconMatting)",
    "VideoInContextMatte": "Video In-Context Matte (IconMatting)",
    "IconMattingCombineReferences": "Combine References (IconMatting)",
    "IconMattingPointsToMask": "Points to Reference Mask (IconMatting)",
    "IconMattingBoxToMask": "Box to Reference Mask (IconMatting)",
    "IconMattingApplyAlpha": "Apply Alpha (IconMatting)",
    "IconMattingMetrics": "Matting Metrics (IconMatting)",
    "IconMattingComposite": "Composite over Background (IconMatting)",
    "IconMattingReferencePrompt": "Reference Prompt (IconMatting)",
    "IconMattingCorrection": "Correct Target (IconMatting)",
    "IconMattingVideoBatchManager": "Video Batch Manager (IconMatting)",
    "IconMattingFineTune": "Fine-tune IconMatting Head",
}
