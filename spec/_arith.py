"""The oracle's arithmetic: exact rationals, high-precision reals and forward-mode duals.

Every float is a dyadic rational, so converting an input to :class:`fractions.Fraction` is
exact; sums and products of inputs (the logits of Shaw's encoding) then stay exact. Whatever is
transcendental (the sinusoid, an irrational scale, the softmax) is evaluated in mpmath at
:data:`DPS` significant digits. Gradients use :class:`Dual`, forward-mode differentiation over
the same code path: each dual carries its value and its sparse derivative with respect to every
input element.

The same encoding code runs in several modes (a :class:`Mode`): ``exact`` (values), ``dual``
(values and derivatives, :class:`Dual`; with :class:`AbsDual` the derivatives become sums of
absolute path products, the magnitude a gradient's rounding error scales with), ``abs`` (every
input and constant replaced by its absolute value, which turns the formula into the magnitude
bound that the tolerance model scales), and ``float`` / ``abs_float``, the same in float64 numpy
arrays for inputs too large for exact arithmetic (magnitudes only, never expected values).
``ball`` holds certified enclosures (python-flint ``arb``, :mod:`relpos.spec._balls`): exact
inputs, every rounding inside each ball's radius.
"""

from __future__ import annotations

from collections.abc import Mapping
from fractions import Fraction
from typing import Any, Literal

import flint
import mpmath
import numpy as np
import sympy as sp

__all__ = ["DPS", "FLOAT_MODES", "AbsDual", "Dual", "Mode", "array", "to_fraction_array", "to_mpf"]

#: Working precision of the oracle, in significant decimal digits.
DPS = 60

Mode = Literal["exact", "dual", "abs", "float", "abs_float", "ball"]

#: Modes evaluated in float64 numpy arrays (fast, approximate): for magnitudes of large inputs.
FLOAT_MODES = ("float", "abs_float")

Key = tuple[str, int]


def to_mpf(x: Any) -> Any:
    """Convert an int, Fraction, float or mpf to mpf at the working precision (exact for
    dyadic rationals, which is every value that came from a float)."""
    if isinstance(x, Fraction):
        return mpmath.mpf(x.numerator) / x.denominator
    if isinstance(x, Dual):
        return x
    return mpmath.mpf(x)


class Dual:
    """A value with its derivatives: ``value`` (mpf) and ``tangent`` mapping an input element
    (tensor name, flat index) to d value / d element. Sparse, so a logit carries only the few
    inputs it depends on."""

    __slots__ = ("tangent", "value")

    def __init__(self, value: Any, tangent: Mapping[Key, Any] | None = None) -> None:
        self.value = to_mpf(value)
        self.tangent: dict[Key, Any] = dict(tangent) if tangent else {}

    def _lift(self, other: Any) -> Dual:
        return other if isinstance(other, Dual) else type(self)(other)

    def _combine(
        self, a: Mapping[Key, Any], ca: Any, b: Mapping[Key, Any], cb: Any
    ) -> dict[Key, Any]:
        ca, cb = self._coefficient(ca), self._coefficient(cb)
        out = {key: ca * d for key, d in a.items()}
        for key, d in b.items():
            out[key] = out[key] + cb * d if key in out else cb * d
        return out

    @staticmethod
    def _coefficient(c: Any) -> Any:
        return c

    def __add__(self, other: Any) -> Dual:
        o = self._lift(other)
        return type(self)(self.value + o.value, self._combine(self.tangent, 1, o.tangent, 1))

    __radd__ = __add__

    def __neg__(self) -> Dual:
        return type(self)(
            -self.value, {key: self._coefficient(-1) * d for key, d in self.tangent.items()}
        )

    def __sub__(self, other: Any) -> Dual:
        return self + (-self._lift(other))

    def __rsub__(self, other: Any) -> Dual:
        return self._lift(other) - self

    def __mul__(self, other: Any) -> Dual:
        o = self._lift(other)
        return type(self)(
            self.value * o.value, self._combine(self.tangent, o.value, o.tangent, self.value)
        )

    __rmul__ = __mul__

    def __truediv__(self, other: Any) -> Dual:
        o = self._lift(other)
        inv = 1 / o.value
        value = self.value * inv
        return type(self)(value, self._combine(self.tangent, inv, o.tangent, -value * inv))

    def __rtruediv__(self, other: Any) -> Dual:
        return self._lift(other) / self

    def exp(self) -> Dual:
        e = mpmath.exp(self.value)
        return type(self)(e, {key: e * d for key, d in self.tangent.items()})

    def __repr__(self) -> str:
        return f"{type(self).__name__}({mpmath.nstr(self.value, 12)}, {len(self.tangent)} partials)"


class AbsDual(Dual):
    """A dual whose derivatives are sums of absolute values of the chain-rule products.

    Values are exact as in :class:`Dual`; every coefficient of the chain rule enters by its
    absolute value, so no cancellation happens: the tangent with respect to x is the sum over
    all computational paths from x of |product of partial derivatives|. That is the magnitude
    that bounds the rounding error of a floating-point gradient (forward or reverse mode
    evaluate the same products).
    """

    __slots__ = ()

    @staticmethod
    def _coefficient(c: Any) -> Any:
        return abs(c)


_FRACTION = np.frompyfunc(Fraction, 1, 1)


def to_fraction_array(array: Any) -> np.ndarray:
    """An object array of exact Fractions from floats (exact: floats are dyadic), ints,
    Fractions, or decimal strings."""
    arr = np.asarray(array)
    if arr.dtype == object or arr.dtype.kind in "US":
        return np.asarray(_FRACTION(arr.astype(object)), dtype=object)
    if arr.dtype.kind not in "fiub":
        raise TypeError(f"cannot convert dtype {arr.dtype} to exact rationals")
    return np.asarray(_FRACTION(arr.astype(np.float64).astype(object)), dtype=object)


def lift(name: str, array: Any, mode: Mode, dual: type[Dual] = Dual) -> np.ndarray:
    """An input tensor in ``mode``: Fractions (exact), their absolute values (abs), duals
    seeded with d x[n] / d x[n] = 1 (dual, of class ``dual``), or float64 arrays (float,
    abs_float)."""
    if mode in FLOAT_MODES:
        values = np.asarray(array, dtype=np.float64)
        return np.abs(values) if mode == "abs_float" else values
    if mode == "ball":
        from relpos.spec import _balls

        return _balls.lift(array)
    exact = to_fraction_array(array)
    if mode == "exact":
        return exact
    if mode == "abs":
        return np.asarray(np.frompyfunc(abs, 1, 1)(exact), dtype=object).reshape(exact.shape)
    flat = [dual(x, {(name, n): mpmath.mpf(1)}) for n, x in enumerate(exact.ravel())]
    out = np.empty(len(flat), dtype=object)
    out[:] = flat
    return out.reshape(exact.shape)


def constant(value: Any, mode: Mode) -> Any:
    """A constant of the formula (a sinusoid entry, a scale) in ``mode``. In ball mode it must
    be exact (an int, a Fraction or a SymPy number, evaluated as a certified ball); an mpf
    computed elsewhere carries no enclosure and is refused."""
    if mode == "ball":
        from relpos.spec import _balls

        if isinstance(value, int):  # exact at any precision
            return _balls.arb(value)
        if isinstance(value, mpmath.mpf):
            raise TypeError("ball mode needs exact constants (int, Fraction, SymPy), got an mpf")
        return _balls.number(value)
    if isinstance(value, sp.Basic):
        value = (
            Fraction(int(value.p), int(value.q))
            if value.is_Rational
            else mpmath.mpf(str(sp.N(value, DPS + 10)))
        )
    if mode in FLOAT_MODES:
        value = float(value)
        return abs(value) if mode == "abs_float" else value
    value = value if isinstance(value, Fraction | int) else to_mpf(value)
    return abs(value) if mode == "abs" else value


def array(values: Any, mode: Mode) -> np.ndarray:
    """Nested constants as an array of ``mode``: float64 in the float modes, else object."""
    return np.array(values, dtype=np.float64 if mode in FLOAT_MODES else object)


def exp(x: Any) -> Any:
    return x.exp() if isinstance(x, Dual) else mpmath.exp(to_mpf(x))


def value_of(x: Any) -> Any:
    """The mpf value of an exact, mpf or dual scalar (a ball: its midpoint)."""
    if isinstance(x, Dual):
        return x.value
    if isinstance(x, flint.arb):
        man, exp = x.mid().man_exp()
        return mpmath.mpf((int(man), int(exp)))
    return to_mpf(x)
