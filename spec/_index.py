"""Exact integer index arithmetic: SymPy index expressions evaluated on (i, j) grids."""

from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import Any

import numpy as np
import sympy as sp

__all__ = ["IndexFunction"]


class IndexFunction:
    """An integer-valued SymPy expression of (i, j, ...), evaluated in Python integers.

    Min and Max map to Python's min and max, so the arithmetic is exact for every size.
    """

    def __init__(self, expr: sp.Expr, args: Sequence[sp.Symbol]) -> None:
        self.expr = expr
        self.args = tuple(args)
        self._fn: Callable[..., Any] = sp.lambdify(
            self.args, expr, modules=[{"Min": min, "Max": max}, "math"], docstring_limit=0
        )
        # The same expression on whole int64 grids (Min, Max, Abs, Piecewise stay exact).
        self._grid: Callable[..., Any] = sp.lambdify(self.args, expr, "numpy", docstring_limit=0)

    def __call__(self, *values: int) -> int:
        return int(self._fn(*values))

    def grid(self, qlen: int, klen: int, *params: int) -> np.ndarray:
        """The (qlen, klen) integer array of the expression at every (i, j)."""
        i, j = np.meshgrid(np.arange(qlen), np.arange(klen), indexing="ij")
        out = np.broadcast_to(self._grid(i, j, *params), (qlen, klen))
        # numpy's Piecewise (select) returns floats: small integers, exact in float64.
        if out.dtype.kind == "f" and not (np.isfinite(out).all() and (out == np.round(out)).all()):
            raise TypeError(f"{self.expr} is not an integer expression on the grid")
        return out.astype(np.int64)
