"""Evaluating a SymPy matrix formula on every (b, h, i, j) pair at once.

A formula such as ``scale * q_i * (k_j + a_c).T`` is written with MatrixSymbols of symbolic
size (``d_head``). For concrete sizes it is expanded into explicit entries and lambdified once
(cached); each MatrixSymbol argument is then passed as an object array whose two leading axes
are the matrix's rows and columns and whose trailing axes run over the pairs, so one call
evaluates the formula for all pairs with Python arithmetic on the elements: exact for
Fractions, forward-mode for duals.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from fractions import Fraction
from typing import Any

import numpy as np
import sympy as sp
from sympy.printing.pycode import PythonCodePrinter

__all__ = ["PairFormula", "as_rows", "gather_rows"]


class PairFormula:
    """A scalar or matrix SymPy expression, evaluated elementwise over trailing pair axes."""

    def __init__(self, expr: sp.Basic, args: Sequence[sp.Basic], *, vector: bool = False) -> None:
        """``vector``: the formula is a row vector whose entries are returned as a list (even
        with one entry); otherwise it is a scalar (a 1 x 1 matrix expression or a scalar)."""
        self.expr = expr
        self.args = tuple(args)
        self.vector = vector
        self._compiled: dict[tuple[tuple[str, int], ...], Callable[..., Any]] = {}

    def __call__(self, sizes: Mapping[str, int], *operands: Any) -> Any:
        key = tuple(sorted((name, int(value)) for name, value in sizes.items()))
        fn = self._compiled.get(key)
        if fn is None:
            fn = self._compiled[key] = self._compile(dict(key))
        return fn(*operands)

    def _compile(self, sizes: Mapping[str, int]) -> Callable[..., Any]:
        subs = {size_symbol(name): value for name, value in sizes.items()}
        # Concrete sizes, and plain identifiers (lambdify would dummify "a^K_c", which breaks
        # matrix indexing).
        rename = {
            a: (
                sp.MatrixSymbol(f"arg{n}", *a.subs(subs).shape)
                if isinstance(a, sp.MatrixSymbol)
                else sp.Symbol(f"arg{n}")
            )
            for n, a in enumerate(self.args)
        }
        expr = self.expr.subs(subs).xreplace({a.subs(subs): r for a, r in rename.items()})
        args = list(rename.values())
        if isinstance(expr, sp.MatrixExpr):
            explicit = expr.as_explicit()
            # A vector result is the list of its entries, a scalar result the single entry.
            expr = list(explicit) if self.vector else explicit[0, 0]
        return sp.lambdify(
            args,
            expr,
            modules=[{"Fraction": Fraction}],
            printer=_ExactPrinter,
            docstring_limit=0,
        )


class _ExactPrinter(PythonCodePrinter):
    """Prints rational constants as Fractions, so no constant becomes a float."""

    def _print_Rational(self, expr: sp.Rational) -> str:
        return f"Fraction({expr.p}, {expr.q})"

    def _print_Half(self, expr: sp.Rational) -> str:
        return self._print_Rational(expr)


#: Size symbols are declared with these assumptions everywhere, so substitution finds them.
_SIZE_ASSUMPTIONS = {"integer": True, "positive": True}


def size_symbol(name: str) -> sp.Symbol:
    """A dimension symbol (positive integer), the one :class:`PairFormula` substitutes."""
    return sp.Symbol(name, **_SIZE_ASSUMPTIONS)


def as_rows(array: np.ndarray, pair_shape: tuple[int, ...]) -> np.ndarray:
    """A (..., n) array of row vectors, broadcast to ``pair_shape`` and laid out as a
    (1, n, *pair_shape) matrix operand (a view: no copy)."""
    n = array.shape[-1]
    full = np.broadcast_to(array, (*pair_shape, n))
    return np.moveaxis(full, -1, 0)[None]


def gather_rows(table: np.ndarray, index: np.ndarray, per_head: bool) -> np.ndarray:
    """Rows of a relative table picked by a (qlen, klen) integer index: shape
    (1, 1, qlen, klen, n) for a shared (P, n) table, (1, n_head, qlen, klen, n) per head."""
    if per_head:
        return table[:, index][None]
    return table[index][None, None]
