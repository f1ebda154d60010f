"""Rounding float64 data to values a dtype represents exactly, without the backends.

Inputs are drawn in float64 and rounded once, so the oracle sees exactly what the
implementation under test receives. What matters is that the result is exactly representable
(backends then convert it without change); bfloat16 rounds through float32 (nearest, ties to
even, at each step), float16 is numpy's direct rounding.
"""

from __future__ import annotations

import numpy as np

__all__ = ["largest_finite", "representable"]


def _bfloat16(x: np.ndarray) -> np.ndarray:
    bits = np.asarray(x, dtype=np.float32).view(np.uint32).astype(np.uint64)
    rounded = (bits + 0x7FFF + ((bits >> 16) & 1)) >> 16 << 16
    return rounded.astype(np.uint32).view(np.float32).astype(np.float64)


def representable(x: np.ndarray, dtype: str) -> np.ndarray:
    """``x`` rounded to the nearest value of ``dtype``, as float64."""
    x = np.asarray(x, dtype=np.float64)
    if dtype == "float64":
        return x.copy()
    if dtype == "float32":
        return x.astype(np.float32).astype(np.float64)
    if dtype == "float16":
        return x.astype(np.float16).astype(np.float64)
    if dtype == "bfloat16":
        return _bfloat16(x)
    raise ValueError(f"`dtype` must be one of float64, float32, bfloat16, float16, got {dtype!r}")


#: bfloat16 keeps float32's exponent and 8 significant bits: (2 - 2^-7) 2^127.
_BFLOAT16_MAX = (2 - 2**-7) * 2.0**127


def largest_finite(dtype: str) -> float:
    """The largest finite value of ``dtype`` (float64, float32, bfloat16 or float16)."""
    if dtype == "bfloat16":
        return _BFLOAT16_MAX
    if dtype in ("float64", "float32", "float16"):
        return float(np.finfo(dtype).max)
    raise ValueError(f"`dtype` must be one of float64, float32, bfloat16, float16, got {dtype!r}")
