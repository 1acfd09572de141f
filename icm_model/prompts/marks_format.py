"""The constants of the ``marks`` JSON (docs/MARKS.md), read from the one file the editor imports too.

``web/js/editor/marks_format.json`` is served with the frontend extension and read here, so the node and the editor
share its version, keys, limits and tolerances.
"""

from __future__ import annotations

import json
from pathlib import Path

FORMAT_FILE = Path(__file__).resolve().parents[2] / "web" / "js" / "editor" / "marks_format.json"
FORMAT: dict = json.loads(FORMAT_FILE.read_text(encoding="utf-8"))

MARKS_VERSION: int = FORMAT["version"]
KEYS: dict[str, list[str]] = FORMAT["keys"]
MAX_DEPTH: int = FORMAT["max_depth"]
"""Lists and objects nested deeper than this are refused before parsing (marks JSON has 5 levels)."""
EDGE_TOLERANCE: float = FORMAT["edge_tolerance_px"]
"""Marks this close to the image (pixels) are on it: they are snapped onto its edge (float rounding of rescaling)."""
ASPECT_ROUNDING: float = FORMAT["aspect_rounding_px"]
"""Two sizes have the same aspect ratio when each side of the larger image's picture, resized to the smaller, is
within this many pixels of the smaller (rounding of a resize)."""
FINGERPRINT_GRID: int = FORMAT["fingerprint"]["grid"]
MAX_MEAN_DIFFERENCE: float = FORMAT["fingerprint"]["max_mean_difference"]
MIN_CORRELATION: float = FORMAT["fingerprint"]["min_correlation"]
EXAMPLES: dict[str, str] = FORMAT["examples"]
DECIMALS: int = FORMAT["decimals"]
"""Decimals of a pixel coordinate written to marks JSON."""
