"""Reading JSON typed or pasted by a user (marks, KJNodes points) strictly, with errors that name the input.

As in a browser's ``JSON.parse`` every number is a float (a huge one is infinite, refused where numbers are read),
``NaN`` and ``Infinity`` are not JSON, and nesting deeper than any marks JSON is refused before parsing (Python's parser
would run out of stack).
"""

from __future__ import annotations

import json
import math
import re

import numpy as np

from .marks_format import MAX_DEPTH

_STRING = re.compile(r'"[^"\\]*(?:\\.[^"\\]*)*"?', re.DOTALL)
"""A JSON string literal (or an unterminated one, to the end of the text): brackets inside it do not nest."""
_OPEN, _CLOSE = np.frombuffer(b"[{", np.uint8), np.frombuffer(b"]}", np.uint8)


def nesting_depth(text: str) -> int:
    """How deep lists and objects nest in ``text`` (outside string literals); 0 for a bare value."""
    skeleton = np.frombuffer(_STRING.sub("", text).encode(), np.uint8)
    steps = np.isin(skeleton, _OPEN).astype(np.int64) - np.isin(skeleton, _CLOSE)
    return int(np.cumsum(steps).max(initial=0))


def _not_json(constant: str):
    raise ValueError(f"{constant} is not a JSON number")


def load_json(text: str, name: str, example: str):
    """The value of the JSON ``text`` of input ``name`` (numbers as floats).

    Raises:
        ValueError: naming ``name``, for nesting deeper than ``MAX_DEPTH`` or text that is not JSON.
    """
    if nesting_depth(text) > MAX_DEPTH:
        raise ValueError(
            f"{name}: lists and objects nested more than {MAX_DEPTH} deep are not marks JSON: clear the widget, or "
            f"write e.g. {example}"
        )
    try:
        return json.loads(text, parse_int=float, parse_constant=_not_json)
    except ValueError as error:
        where = f" at line {error.lineno} column {error.colno}" if isinstance(error, json.JSONDecodeError) else ""
        message = error.msg if isinstance(error, json.JSONDecodeError) else str(error)
        raise ValueError(f"{name}: not valid JSON ({message}{where}); expected e.g. {example}") from error


def is_number(value) -> bool:
    """Whether a parsed JSON value is a finite number (not a boolean)."""
    return isinstance(value, float) and math.isfinite(value)


MISSING = object()
"""A key that is absent (shown as "nothing" in errors)."""


def _as_in_javascript(value):
    """A parsed JSON value as ``JSON.stringify`` sees it: whole floats as integers, non-finite ones as null."""
    if isinstance(value, float):
        return (int(value) if value.is_integer() and abs(value) < 1e16 else value) if math.isfinite(value) else None
    if isinstance(value, list):
        return [_as_in_javascript(v) for v in value]
    if isinstance(value, dict):
        return {k: _as_in_javascript(v) for k, v in value.items()}
    return value


def shown(value) -> str:
    """A parsed JSON value as an error shows it, as the editor does (``String`` of a number, ``JSON.stringify`` of
    anything else), cut at 80 characters."""
    if value is MISSING:
        return "nothing"
    if isinstance(value, float) and not math.isfinite(value):
        return repr(value).replace("inf", "Infinity")
    text = json.dumps(_as_in_javascript(value), separators=(",", ":"))
    return text if len(text) <= 80 else text[:77] + "..."
