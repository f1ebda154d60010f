"""A drawn check input, reproducible from a few integers.

A :class:`Draw` names everything about one input (encoding, dimensions, options, which
optional tensors, layouts, the mask, the kind of values, a seed, the kind of positions) and
regenerates the numpy arguments deterministically, rounded to the dtype under test. Its
``repr`` is valid Python, so a failure's repro is a copy-pasteable snippet.
"""

from __future__ import annotations

import ast
import math
from collections.abc import Mapping
from dataclasses import dataclass, field, fields
from typing import Any

import numpy as np

from relpos.equivalence.dtypes import largest_finite, representable
from relpos.spec import get_encoding
from relpos.spec._cases import build_arguments, make_mask, make_positions

__all__ = ["LIMIT_FRACTION", "MASK_KINDS", "VALUE_KINDS", "Draw"]

#: Mask kinds (spec golden kinds plus two more broadcast shapes).
MASK_KINDS = (
    "none",
    "causal",
    "padding",
    "random",
    "fully_masked_row",
    "broadcast",
    "random_2d",
    "keys",
)
#: dyadic: multiples of 1/8 in [-2, 2] (exact in every dtype); normal: standard normal;
#: large: normal times 40 (logits of order 1e3 to 1e4); limit: normal times one factor for
#: every float input, chosen so that the largest |logit| of the draw is a fraction in
#: :data:`LIMIT_FRACTION` (from the seed) of float16's largest finite value. A dtype that
#: holds those scores must give them finite, while the products before a scale below the
#: fraction (1/sqrt(d_head) for d_head >= 4) pass float16's range.
VALUE_KINDS = ("dyadic", "normal", "large", "limit")
_SCALE = {"dyadic": 1.0, "normal": 1.0, "large": 40.0, "limit": 1.0}
LIMIT_FRACTION = (0.55, 0.95)


@dataclass(frozen=True)
class Draw:
    """One check input. ``dims`` holds bsz, n_head, qlen, mlen, d_head and the encoding's free
    dimensions; ``options`` every option; ``include`` the optional tensors present;
    ``layouts`` a layout index per tensor with several."""

    encoding: str
    dims: Mapping[str, int]
    options: Mapping[str, Any]
    include: tuple[str, ...] = ()
    layouts: Mapping[str, int] = field(default_factory=dict)
    mask: str = "none"
    values: str = "normal"
    seed: int = 0
    #: One of the position kinds of :mod:`relpos.spec._cases` ("default": no position ids).
    positions: str = "default"

    @property
    def klen(self) -> int:
        return self.dims["qlen"] + self.dims["mlen"]

    def arguments(self, dtype: str = "float64") -> dict[str, Any]:
        """Every argument as numpy arrays (floats exactly representable in ``dtype``)."""
        rng = np.random.default_rng(self.seed)
        enc = get_encoding(self.encoding)
        args = build_arguments(
            enc,
            self.dims,
            self.options,
            self.include,
            self.layouts,
            lambda dims: _mask(self.mask, dims, rng),
            lambda shape: self._floats(rng, shape),
            rng,
        )
        ids = make_positions(self.positions, self.dims["bsz"], self.dims["qlen"], self.klen, rng)
        if ids is not None:
            args["q_pos"], args["k_pos"] = ids
        floats = {t.name for t in enc.tensors if t.kind == "float" and t.name in args}
        factor = 1.0
        if self.values == "limit":
            target = rng.uniform(*LIMIT_FRACTION) * largest_finite("float16")
            key = repr(self)
            if key not in _FACTORS:
                _FACTORS[key] = _limit_factor(self.encoding, args, floats, target)
                if len(_FACTORS) > 256:
                    del _FACTORS[next(iter(_FACTORS))]
            factor = _FACTORS[key]
        return {
            name: representable(factor * value, dtype) if name in floats else value
            for name, value in args.items()
        }

    def _floats(self, rng: np.random.Generator, shape: tuple[int, ...]) -> np.ndarray:
        if self.values == "dyadic":
            return rng.integers(-16, 17, size=shape) / 8
        return rng.standard_normal(shape) * _SCALE[self.values]

    def __repr__(self) -> str:
        fields = ", ".join(
            f"{name}={getattr(self, name)!r}"
            for name in (
                "encoding",
                "dims",
                "options",
                "include",
                "layouts",
                "mask",
                "values",
                "seed",
            )
        )
        if self.positions != "default":  # absent from the repr of the default layout
            fields += f", positions={self.positions!r}"
        return f"Draw({fields})"

    @classmethod
    def parse(cls, text: str) -> Draw:
        """The draw whose ``repr`` is ``text``: a call ``Draw(...)`` with literal keyword
        arguments only (read with :func:`ast.literal_eval`, never executed)."""
        try:
            call = ast.parse(text.strip(), mode="eval").body
        except SyntaxError as exc:
            raise ValueError(f"not a Draw(...) repr: {exc.msg}") from exc
        if not (
            isinstance(call, ast.Call)
            and isinstance(call.func, ast.Name)
            and call.func.id == "Draw"
            and not call.args
        ):
            raise ValueError("not a Draw(...) repr: expected Draw(name=value, ...)")
        known = {f.name for f in fields(cls)}
        kwargs: dict[str, Any] = {}
        for keyword in call.keywords:
            if keyword.arg not in known:
                raise ValueError(
                    f"Draw has no field {keyword.arg!r}: it has {', '.join(sorted(known))}"
                )
            try:
                kwargs[keyword.arg] = ast.literal_eval(keyword.value)
            except ValueError as exc:
                raise ValueError(f"Draw field {keyword.arg} is not a literal") from exc
        if "encoding" not in kwargs or "dims" not in kwargs or "options" not in kwargs:
            raise ValueError("a Draw needs encoding, dims and options")
        kwargs["include"] = tuple(kwargs.get("include", ()))
        return cls(**kwargs)


#: The factor of each "limit" draw (by its repr), computed once.
_FACTORS: dict[str, float] = {}


def _limit_factor(encoding: str, args: Mapping[str, Any], floats: set[str], target: float) -> float:
    """The factor c for every float input that brings the largest |logit| to about
    ``target``, and never above 0.97 of float16's largest finite value (so rounding the
    inputs keeps every score in range) unless the logits' part that no input scales is
    beyond it already. The logits are polynomials in c (degree 2 for
    q k^T, 1 for a bias table, 3 through a projection), so c follows a secant on log c."""
    from relpos.spec import float_logits

    def peak(c: float) -> float:
        scaled = {n: c * v if n in floats else v for n, v in args.items()}
        return float(np.abs(float_logits(encoding, **scaled)).max(initial=0.0))

    c0, p0 = 1.0, peak(1.0)
    if p0 == 0.0:
        return 1.0  # no logit depends on the inputs
    c1 = math.sqrt(target / p0)
    p1 = peak(c1)
    for _ in range(6):
        if abs(math.log(p1 / target)) < 0.02 or p1 == p0:
            break
        degree = min(max(math.log(p1 / p0) / math.log(c1 / c0), 0.5), 4.0)
        c0, p0 = c1, p1
        c1 = c1 * (target / p1) ** (1 / degree)
        p1 = peak(c1)
    cap = 0.97 * largest_finite("float16")
    if p1 > cap and peak(0.0) >= cap:
        # A part of the logits that no input scales (an ALiBi bias at distances of 2^17)
        # is beyond float16 already: no factor brings every score in range, and the one
        # found aims the scaled part at the target.
        return c1
    while p1 > cap:  # ends: the peak tends to peak(0) < cap as the factor falls
        c1 *= 0.95
        p1 = peak(c1)
    return c1


def _mask(kind: str, dims: Mapping[str, int], rng: np.random.Generator) -> np.ndarray | None:
    bsz, n_head, qlen, klen = dims["bsz"], dims["n_head"], dims["qlen"], dims["klen"]
    if kind == "random_2d":
        return rng.random((qlen, klen)) < 0.7
    if kind == "keys":
        keys = rng.random(klen) < 0.7
        keys[rng.integers(klen)] = True
        return keys
    return make_mask(kind, bsz, n_head, qlen, klen, rng)
