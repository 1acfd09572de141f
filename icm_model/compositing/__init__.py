"""After the matte: foreground colour estimation, edge-aware upsampling of alpha, compositing over new backgrounds."""

from .composite import BACKGROUND_FITS, composite, composite_over, fit_background, parse_colour
from .cutout import cut_out
from .foreground import (
    FOREGROUND_METHODS,
    estimate_foreground,
    estimate_foreground_blur_fusion,
    estimate_foreground_multilevel,
)
from .inputs import ALPHA_MARGIN, checked_alpha
from .upsample import UPSAMPLING_METHODS, guided_upsample

__all__ = [
    "ALPHA_MARGIN",
    "BACKGROUND_FITS",
    "FOREGROUND_METHODS",
    "UPSAMPLING_METHODS",
    "checked_alpha",
    "composite",
    "composite_over",
    "cut_out",
    "estimate_foreground",
    "estimate_foreground_blur_fusion",
    "estimate_foreground_multilevel",
    "fit_background",
    "guided_upsample",
    "parse_colour",
]
