"""After the matte: foreground colour estimation, edge-aware upsampling of alpha, compositing over new backgrounds."""

from .composite import BACKGROUND_FITS, composite, fit_background, parse_colour
from .foreground import (
    FOREGROUND_METHODS,
    estimate_foreground,
    estimate_foreground_blur_fusion,
    estimate_foreground_multilevel,
)
from .upsample import UPSAMPLING_METHODS, guided_upsample

__all__ = [
    "BACKGROUND_FITS",
    "FOREGROUND_METHODS",
    "UPSAMPLING_METHODS",
    "composite",
    "estimate_foreground",
    "estimate_foreground_blur_fusion",
    "estimate_foreground_multilevel",
    "fit_background",
    "guided_upsample",
    "parse_colour",
]
