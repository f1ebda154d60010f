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

    def __call__(self, *values: int) -> int:
        return int(self._fn(*values))

    def grid(self, qlen: int, klen: int, *params: int) -> np.ndarray:
        """The (qlen, klen) integer array of the expression at every (i, j)."""
        out = np.empty((qlen, klen), dtype=np.int64)
        for a in range(qlen):
            for b in range(klen):
                out[a, b] = self(a, b, *params)
        return out
