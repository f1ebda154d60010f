"""Proof helpers: symbolic differences that must simplify to exactly zero, and exhaustive exact
integer checks over every size up to a bound."""

from __future__ import annotations

from collections.abc import Callable, Iterable
from fractions import Fraction
from typing import Any

import mpmath
import sympy as sp

__all__ = ["MAX_SIZE", "all_of", "exhaustive", "rounded_log_ratio", "sizes", "symbolic_zero"]

#: Exhaustive index identities are checked for every size up to this bound.
MAX_SIZE = 8


def symbolic_zero(difference: Any, what: str) -> tuple[bool, str, str]:
    """Proved when ``difference`` (scalar or matrix expression) simplifies to exactly 0."""
    expr = difference.doit() if hasattr(difference, "doit") else difference
    if isinstance(expr, sp.MatrixBase):  # an explicit matrix: every entry must vanish
        expr = expr.applyfunc(lambda e: sp.simplify(sp.expand(e)))
        zero = all(e == 0 for e in expr)
    elif isinstance(expr, sp.MatrixExpr):
        expr = sp.expand(expr)
        zero = isinstance(expr, sp.ZeroMatrix) or expr == 0
        if not zero and isinstance(expr, sp.MatrixBase):
            zero = all(sp.simplify(e) == 0 for e in expr)
    else:
        expr = sp.simplify(sp.expand(expr))
        zero = expr == 0
    detail = f"{what}: difference simplifies to 0" if zero else f"{what}: difference = {expr}"
    return bool(zero), "symbolic", detail


def exhaustive(
    cases: Iterable[tuple[Any, ...]],
    check: Callable[..., str | None],
    what: str,
) -> tuple[bool, str, str]:
    """Proved when ``check(*case)`` returns None for every case; otherwise the first
    counterexample is reported."""
    count = 0
    for case in cases:
        problem = check(*case)
        if problem is not None:
            return False, "exhaustive", f"{what}: fails at {case}: {problem}"
        count += 1
    return True, "exhaustive", f"{what}: holds for all {count} cases"


def all_of(*results: tuple[bool, str, str]) -> tuple[bool, str, str]:
    """Several symbolic proofs as one: proved when every one is."""
    return all(r[0] for r in results), "symbolic", "; ".join(r[2] for r in results)


def rounded_log_ratio(a: Fraction, b: Fraction, factor: int, up: bool) -> int:
    """floor (or, with ``up``, ceil) of log(a) / log(b) * factor, exactly: mpmath at 60 digits
    decides unless the value lies within 1e-40 of an integer, where SymPy decides
    symbolically (log 2 / log 16 * 8 is exactly 2)."""
    with mpmath.workdps(60):
        value = mpmath.log(mpmath.mpf(a.numerator) / a.denominator)
        value = value / mpmath.log(mpmath.mpf(b.numerator) / b.denominator) * factor
        if abs(value - mpmath.nint(value)) > mpmath.mpf(10) ** -40:
            return int(mpmath.ceil(value) if up else mpmath.floor(value))
    ratio = sp.log(sp.Rational(a)) / sp.log(sp.Rational(b)) * factor
    exact = sp.expand_log(ratio, force=True)
    return int(sp.ceiling(exact) if up else sp.floor(exact))


def sizes(max_size: int = MAX_SIZE) -> Iterable[tuple[int, int]]:
    """Every (qlen, mlen) with 1 <= qlen <= max_size and 0 <= mlen <= max_size."""
    for qlen in range(1, max_size + 1):
        for mlen in range(0, max_size + 1):
            yield qlen, mlen
