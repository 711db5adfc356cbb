"""Small helpers shared across the harness: JSON-safe values, integer validation, NA tests.

One copy of each; the rest of the package imports them from here. This module imports
only the standard library, NumPy and the harness's own errors.
"""

from __future__ import annotations

import math
from pathlib import Path
from typing import Any

import numpy as np

from harness.errors import ConfigError


def json_float(value) -> float | str:
    """A float as JSON can hold it: finite values as they are, NaN and inf as strings."""
    value = float(value)
    return value if math.isfinite(value) else str(value)


def jsonable(obj: Any) -> Any:
    """``obj`` with NumPy and pandas scalars made plain and non-finite floats as strings.

    Dicts (keys as strings), lists, tuples and arrays are converted recursively; paths
    and anything else unknown become their ``str``.
    """
    if isinstance(obj, dict):
        return {str(k): jsonable(v) for k, v in obj.items()}
    if isinstance(obj, (list, tuple)):
        return [jsonable(v) for v in obj]
    if isinstance(obj, np.ndarray):
        return [jsonable(v) for v in obj.tolist()]
    if isinstance(obj, np.generic):
        obj = obj.item()
    if isinstance(obj, float):
        return json_float(obj)
    if obj is None or isinstance(obj, (str, int, bool)):
        return obj
    if isna(obj):  # pandas.NA, NaT
        return None
    if isinstance(obj, Path):
        return str(obj)
    return str(obj)


def isna(value) -> bool:
    """True for None, float NaN, and pandas' missing markers (NA, NaT)."""
    if value is None:
        return True
    if isinstance(value, (float, np.floating)):
        return bool(math.isnan(value))
    try:
        import pandas as pd
    except ImportError:  # pragma: no cover - pandas is a dependency
        return False
    try:
        return bool(pd.isna(value))
    except (TypeError, ValueError):  # an array or another container is not "missing"
        return False


def check_int(name: str, value, minimum: int, maximum: int | None = None, what: str = "", *,
              error: type[Exception] = ConfigError, one_rule: bool = False) -> int:
    """``value`` as an int, or an ``error`` naming ``name``, the rule and the value.

    The one integer validator of the harness. Booleans are refused (``True`` is not a
    count). ``what`` is appended to the range in the message, e.g. ``" (the number of
    samples)"``. By default a non-integer and an integer out of range get a message
    each (```epochs` must be an integer, got 2.5``; ```epochs` must be >= 1, got 0``);
    ``one_rule=True`` states both in one (```--folds` must be an integer >= 2, got
    1``), as the command-line flags and the data-set sizes do.
    """
    is_int = not isinstance(value, bool) and isinstance(value, (int, np.integer))
    in_range = is_int and value >= minimum and (maximum is None or value <= maximum)
    if in_range:
        return int(value)
    bound = f"between {minimum} and {maximum}{what}" if maximum is not None \
        else f">= {minimum}"
    if one_rule:
        raise error(f"`{name}` must be an integer {bound}, got {value!r}")
    if not is_int:
        raise error(f"`{name}` must be an integer, got {value!r}")
    raise error(f"`{name}` must be {bound}, got {value}")
