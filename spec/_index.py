"""Exact integer index arithmetic: SymPy index expressions of two positions, on whole grids."""

from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import Any

import numpy as np
import sympy as sp

from relpos.spec._conventions import default_positions

__all__ = ["IndexFunction"]


class IndexFunction:
    """An integer-valued SymPy expression of a query's and a key's absolute positions (the
    first two arguments, P_i and P_j) and of integer parameters, evaluated in Python integers.

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

    def grid(self, q_pos: np.ndarray, k_pos: np.ndarray, *params: int) -> np.ndarray:
        """The (B, qlen, klen) integer array of the expression at every pair of positions:
        ``q_pos`` (B, qlen) and ``k_pos`` (B, klen) (B may be 1 on either side)."""
        q_pos, k_pos = np.asarray(q_pos, np.int64), np.asarray(k_pos, np.int64)
        shape = (max(q_pos.shape[0], k_pos.shape[0]), q_pos.shape[1], k_pos.shape[1])
        out = np.broadcast_to(self._grid(q_pos[:, :, None], k_pos[:, None, :], *params), shape)
        # numpy's Piecewise (select) returns floats: small integers, exact in float64.
        if out.dtype.kind == "f" and not (np.isfinite(out).all() and (out == np.round(out)).all()):
            raise TypeError(f"{self.expr} is not an integer expression on the grid")
        return out.astype(np.int64)

    def layout(self, qlen: int, klen: int, *params: int) -> np.ndarray:
        """The (qlen, klen) grid at the default positions (query i at klen - qlen + i, key j
        at j)."""
        return self.grid(*default_positions(qlen, klen), *params)[0]
