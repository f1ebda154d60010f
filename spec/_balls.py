"""Ball arithmetic for the oracle: certified enclosures with python-flint's ``arb``.

Every value is a ball (midpoint, radius) guaranteed to contain the exact result; inputs are
exact (a float is a dyadic rational), so every radius comes from the working precision alone
and says how far the midpoint may be from the exact value. The formulas are the spec's own
SymPy expressions: a logit formula such as ``scale * q_i * (k_j + a_c).T`` is expanded into
terms (``scale * q_i k_j^T``, ``scale * q_i a_c^T``), and each bilinear term is evaluated as one
``arb_mat`` product of the two operand tables, gathered onto the pairs by the operands' row
indices (:class:`~relpos.spec._pairs.Rows`). Scalar constants (an irrational scale, ALiBi's
slopes, the sinusoid) are SymPy numbers evaluated in balls (:func:`number`).
"""

from __future__ import annotations

from collections.abc import Callable
from fractions import Fraction
from typing import Any

import flint
import numpy as np
import sympy as sp
from sympy.printing.pycode import PythonCodePrinter

__all__ = [
    "ELEMENTWISE",
    "PRECISION",
    "arb",
    "compile_expression",
    "compile_matrix_expression",
    "lift",
    "matrix",
    "midpoints",
    "number",
    "radii",
    "table",
]

#: Working precision of ball evaluation, in bits: about 38 decimal digits, twenty orders of
#: magnitude below any float64 tolerance (the radii say what is certain; they are reported).
PRECISION = 128

arb = flint.arb


def _rational(p: int, q: int) -> Any:
    return arb(flint.fmpq(p, q))


class _BallPrinter(PythonCodePrinter):
    """Prints rationals exactly (as balls of the fraction) and every function as flint's."""

    def _print_Rational(self, expr: sp.Rational) -> str:
        return f"_rational({expr.p}, {expr.q})"

    def _print_Integer(self, expr: sp.Integer) -> str:
        return f"_rational({expr.p}, 1)"

    def _print_Half(self, expr: sp.Rational) -> str:
        return self._print_Rational(expr)

    def _print_Pi(self, expr: sp.Expr) -> str:
        return "arb.pi()"

    def _print_Exp1(self, expr: sp.Expr) -> str:
        return "arb(1).exp()"

    def _print_Pow(self, expr: sp.Pow, rational: bool = False) -> str:
        base, exp = expr.args
        if exp == sp.Rational(1, 2):
            return f"_sqrt({self._print(base)})"
        if exp == sp.Rational(-1, 2):
            return f"_rsqrt({self._print(base)})"
        return f"({self._print(base)}) ** ({self._print(exp)})"

    def _print_Function(self, expr: sp.Function) -> str:
        name = type(expr).__name__
        if name in ELEMENTWISE and len(expr.args) == 1:
            return f"_{name}({self._print(expr.args[0])})"
        return super()._print_Function(expr)


#: Elementwise over object arrays of balls, and plain method calls on a single ball.
ELEMENTWISE = {
    name: np.frompyfunc(getattr(arb, name), 1, 1)
    for name in ("sin", "cos", "exp", "log", "sqrt", "rsqrt")
}
for _name in ELEMENTWISE:
    setattr(
        _BallPrinter,
        f"_print_{_name}",
        lambda self, expr: self._print_Function(expr),
    )

_NAMESPACE = {"_rational": _rational, "arb": arb, **{f"_{n}": f for n, f in ELEMENTWISE.items()}}


def compile_expression(args: tuple[sp.Symbol, ...], expr: sp.Expr) -> Callable[..., Any]:
    """A SymPy scalar expression as a function of balls, or of object arrays of balls
    (evaluated elementwise, its constants built once)."""
    return sp.lambdify(args, expr, modules=[_NAMESPACE], printer=_BallPrinter, docstring_limit=0)


class _MatrixPrinter(_BallPrinter):
    """Prints a SymPy matrix expression as ``arb_mat`` arithmetic: products, transposes and
    sums of whole matrices (a row-vector symbol may stand for a table of such rows)."""

    def _print_MatMul(self, expr: sp.MatMul) -> str:
        return "*".join(f"({self._print(a)})" for a in expr.args)

    def _print_MatAdd(self, expr: sp.MatAdd) -> str:
        return " + ".join(f"({self._print(a)})" for a in expr.args)

    def _print_Transpose(self, expr: sp.Transpose) -> str:
        return f"({self._print(expr.arg)}).transpose()"


def compile_matrix_expression(args: tuple[sp.Basic, ...], expr: sp.Basic) -> Callable[..., Any]:
    """A SymPy matrix expression (MatMul, MatAdd, Transpose of symbols) as a function of
    ``arb_mat`` arguments: ``R_D * W_R.T`` on a table of rows R and a matrix W is R W^T."""
    return sp.lambdify(args, expr, modules=[_NAMESPACE], printer=_MatrixPrinter, docstring_limit=0)


def number(value: Any) -> Any:
    """An exact SymPy number, an int or a Fraction as a ball at :data:`PRECISION`."""
    with flint.ctx.workprec(PRECISION):
        if isinstance(value, Fraction):
            return _rational(value.numerator, value.denominator)
        if isinstance(value, int):
            return _rational(value, 1)
        return compile_expression((), sp.sympify(value))()


_ARB = np.frompyfunc(lambda x: arb(x), 1, 1)


_FRACTION_BALL = np.frompyfunc(lambda x: _rational(x.numerator, x.denominator), 1, 1)


def lift(array: Any) -> np.ndarray:
    """An input tensor as an object array of balls: exact for floats (dyadic: radius 0), the
    enclosure of the exact rational for Fractions, integers and decimal strings."""
    values = np.asarray(array)
    out = np.empty(values.shape, dtype=object)
    if not values.size:
        return out
    if values.dtype.kind == "f":
        out[...] = _ARB(values.astype(np.float64))
    else:
        from relpos.spec._arith import to_fraction_array

        out[...] = _FRACTION_BALL(to_fraction_array(values))
    return out


def matrix(array: np.ndarray) -> Any:
    """A 2-D object array of balls as an ``arb_mat``."""
    rows, cols = array.shape
    return flint.arb_mat(rows, cols, list(array.ravel()))


def table(mat: Any) -> np.ndarray:
    """An ``arb_mat`` as a 2-D object array of balls."""
    out = np.empty(mat.nrows() * mat.ncols(), dtype=object)
    out[:] = mat.entries()
    return out.reshape(mat.nrows(), mat.ncols())


def midpoints(array: np.ndarray) -> np.ndarray:
    """The midpoints of an object array of balls (or plain numbers, such as -inf for masked
    scores), rounded to float64."""
    return np.frompyfunc(float, 1, 1)(array).astype(np.float64)


def _radius(x: Any) -> float:
    return float(x.rad()) * (1 + 2.0**-50) if isinstance(x, arb) else 0.0


def radii(array: np.ndarray) -> np.ndarray:
    """The radii of an object array of balls, rounded up to float64 (0 for plain numbers)."""
    return np.frompyfunc(_radius, 1, 1)(array).astype(np.float64)
