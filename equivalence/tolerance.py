"""The tolerance model: how far a correct floating-point evaluation may be from the oracle.

Every bound is per element, built from magnitudes the oracle computes
(:func:`relpos.spec.magnitudes`) times a unit roundoff and a stated constant; nothing scales with
array size and no test holds a literal tolerance.

Notation: ``u`` is the unit roundoff of the dtype (2^-53, 2^-24, 2^-8, 2^-11 for float64,
float32, bfloat16, float16); ``u_acc`` that of the accumulation dtype (float32 for the half
types, whose matmuls and softmax accumulate in float32; the dtype itself otherwise);
``n = d_head``.

Logits. A logit sums at most ``n`` products per dot product, at most four dot products
(content, position, segment, key-query terms) and one scale. With inputs exact in the dtype,
the standard bound for a sum of products (Higham, Accuracy and Stability of Numerical
Algorithms, 2nd ed., eq. 3.5) gives |fl(e) - e| <= gamma_{n+4} M with M the sum of the
magnitudes of every product (the oracle evaluates the formula on absolute values:
``magnitudes()["scores"]``). Intermediates may be rounded to the dtype (a relative-key term
stored before it is added, the scaled logit): at most ``C_ROUND`` such roundings, each
<= u M. Hence::

    tol_e = ((n + 4) * u_acc + C_ROUND * u) * M                             (E1)

For the sinusoid of Transformer-XL the oracle's magnitude of R(D)_k is |R(D)_k| + |D f_k|,
since rounding the argument D f_k by one ulp moves the sine by up to |D f_k| u. RoPE rotates
both q and k, so its magnitude is first order in the two angles' rounding: the logit of |q|
and |k| rotated by |cos| and |sin|, plus what |p theta_t| adds on the query's side, plus what
it adds on the key's (spreading both at once would grow with the square of the position,
and at position 500 allowed 360 times more). Angles come from integer positions at float32
or better in every dtype (the spec's convention), so the part of the magnitude that the
angles' spread adds, M_phase (``magnitudes()["scores_phase"]``), is scaled by the unit
roundoff of the accumulation dtype: the angle p theta_t is off by |ln theta_t| u_acc (the
rounded exponent of base^(-2t/r)) plus a few roundings (the power, the product with p), at
most ``C_PHASE`` u_acc for bases up to e^20. A half type's own rounding then moves cos and
sin by u relative to their values, which the rest of the magnitude carries::

    tol_e = ((n + 4) * u_acc + C_ROUND * u) * (M - M_phase) + C_PHASE * u_acc * M_phase   (E1')

An angle built from positions rounded to the half type (257 for 256 in bfloat16) is then
outside the bound.

Probabilities. A perturbation de of a row's logits moves alpha_ij by at most
alpha_ij (exp(2 max_k |de_ik|) - 1) (the ratio of exponentials of two perturbed logits moves
by at most exp(2 max|de|)). Evaluating exp, the row sum over at most klen terms and the
division adds (klen + 3) u_acc alpha_ij, and storing in the dtype u alpha_ij; underflow adds an
absolute ``tiny`` (the dtype's smallest normal)::

    tol_a = alpha * (expm1(2 E_i) + (klen + 3) * u_acc + u) + tiny,  E_i = max_j tol_e_ij  (E2)

Outputs. o_i = sum_j alpha_ij V_ij with V_ij = v_j + a^V (one rounding): the probability error
contributes sum_j tol_a_ij |V_ij| and the summation gamma_{klen + 2} sum_j alpha_ij |V_ij|
(``magnitudes()["out"]``); one final rounding to the dtype::

    tol_o = (expm1(2 E_i) + (klen + 3) * u_acc + u) * A_i
            + ((klen + 2) * u_acc + C_ROUND * u) * A_i + tiny * sum_j |V_ij|          (E3)

with A_i = sum_j alpha_ij |V_ij|. ``SAFETY`` multiplies every bound to absorb the
first-order terms dropped above; it is a stated constant, not a fit.

Gradients. Back-propagation (or forward mode) computes each gradient element as a sum of
products of partial derivatives along every computational path from the input to the loss
sum(w * out). Its rounding error is bounded by gamma_N times the sum of the absolute values
of those products, G (:func:`relpos.spec.gradient_magnitudes` computes it exactly, with duals that
take every chain-rule coefficient by absolute value). N is the longest accumulation: a shared
table's gradient sums over every (b, h, i, j), plus the dot products and the encoding's own
dimensions (P rows or d_model); at most ``C_ROUND_GRAD`` intermediates are rounded to the
dtype along a path::

    tol_g = SAFETY * ((bsz n_head qlen klen + d_head + extra) * u_acc + C_ROUND_GRAD * u
                      + expm1(2 E)) * G                                           (E4)

where E is the largest logit error bound of E1: as in E2, a logit error de moves every
probability, and so every product through it, by a relative exp(2 de) - 1 (this term rules
when logits are large, e.g. of order 1e3 in float64).

Underflow. One backend flushes subnormal results to zero (XLA on CPU does), another not. A
flushed intermediate is an absolute error of at most ``tiny_acc`` (the smallest normal of the
accumulation dtype), which the rest of its path multiplies: a probability of 1e-39 in
float32 becomes 0, and the bracket of the softmax backward, the other operand of the logit
and the scale carry that error into the gradient. G cannot bound it, since every path
through that probability carries its factor 1e-39. :func:`relpos.spec.underflow_sensitivities`
gives S, the sum of those multipliers over every place a flush can happen, and the final
results may flush or round to a subnormal of the dtype itself::

    tol_g += SAFETY * (N * tiny + tiny_acc * S)                                    (E5)

For inputs of order one, tiny_acc * S is about 1e-34 in float32: it matters only for a
gradient that flows through probabilities below the smallest normal.

Limits. With logits of order 1e3 a half type's logit error E reaches units, exp(2 E) - 1 is
enormous, and the bounds on probabilities, outputs and gradients say only that nothing
became NaN or infinite; that is the honest statement for those dtypes at those magnitudes.

Tightness (checked by tests/meta): in float64 the bounds are near 1e-14 relative for
unit-sized inputs, so a float32 sinusoid (error near 1e-7) or a 1e-6 relative error in an
output fails.
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np

__all__ = [
    "C_ROUND",
    "C_ROUND_GRAD",
    "DTYPES",
    "SAFETY",
    "Bounds",
    "DtypeModel",
    "bounds",
    "gradient_bounds",
    "scaling",
    "suggested",
]

#: Roundings of intermediates to the working dtype that an evaluation may perform.
C_ROUND = 8
#: Multiplies every bound (covers the second-order terms dropped in E1-E4).
SAFETY = 2.0
#: Roundings of intermediates to the working dtype along one gradient path.
C_ROUND_GRAD = 16
#: Roundings of a RoPE angle in units of u_acc: |ln theta_t| <= ln(base) <= 20 from the
#: rounded exponent, and 4 for the power, the reciprocal, the position's product and cos/sin.
C_PHASE = 24
#: exp(2 E) - 1 is evaluated with 2 E clipped here: beyond it (a half type with logits of
#: order 1e3) the bound already exceeds any value and saturates instead of overflowing.
MAX_EXPONENT = 600.0


@dataclass(frozen=True)
class DtypeModel:
    """Unit roundoffs and the smallest normals of a dtype and its accumulation dtype."""

    name: str
    u: float
    u_acc: float
    tiny: float
    tiny_acc: float


_TINY64, _TINY32 = float(np.finfo(np.float64).tiny), float(np.finfo(np.float32).tiny)
DTYPES: dict[str, DtypeModel] = {
    "float64": DtypeModel("float64", 2.0**-53, 2.0**-53, _TINY64, _TINY64),
    "float32": DtypeModel("float32", 2.0**-24, 2.0**-24, _TINY32, _TINY32),
    "bfloat16": DtypeModel("bfloat16", 2.0**-8, 2.0**-24, 2.0**-126, _TINY32),
    "float16": DtypeModel("float16", 2.0**-11, 2.0**-24, 2.0**-14, _TINY32),
}


@dataclass(frozen=True)
class Bounds:
    """Per-element allowed absolute errors, shaped like the oracle's outputs."""

    scores: np.ndarray
    probs: np.ndarray
    out: np.ndarray


def _model(dtype: str) -> DtypeModel:
    if dtype not in DTYPES:
        raise ValueError(f"`dtype` must be one of {', '.join(DTYPES)}, got {dtype!r}")
    return DTYPES[dtype]


def bounds(
    dtype: str,
    *,
    probs: np.ndarray,
    mask: np.ndarray,
    magnitude_scores: np.ndarray,
    magnitude_out: np.ndarray,
    abs_values_sum: np.ndarray | None = None,
    oracle_radius: Bounds | None = None,
    magnitude_phase: np.ndarray | None = None,
) -> Bounds:
    """E1-E3 for one evaluation (E1' where ``magnitude_phase`` is given).

    ``probs`` (float64) and ``mask`` come from the oracle, the magnitudes from
    :func:`relpos.spec.magnitudes`; ``abs_values_sum`` is sum_j |V_ij| per output element (for the
    underflow term; defaults to ``magnitude_out``). ``oracle_radius`` is how far the oracle's
    float64 expected values may be from the exact ones (:meth:`relpos.spec.Evaluation.radius`:
    a ball's certified radius plus the rounding to float64); it is added to every bound, so no
    bound assumes the oracle exact.
    """
    m = _model(dtype)
    n = magnitude_out.shape[-1]  # d_head
    klen = probs.shape[-1]
    if magnitude_phase is None:
        tol_e = SAFETY * ((n + 4) * m.u_acc + C_ROUND * m.u) * magnitude_scores
    else:
        plain = np.maximum(magnitude_scores - magnitude_phase, 0.0)
        tol_e = SAFETY * (
            ((n + 4) * m.u_acc + C_ROUND * m.u) * plain + C_PHASE * m.u_acc * magnitude_phase
        )
    worst = np.where(mask, tol_e, 0.0).max(axis=-1, initial=0.0)  # E_i per row
    growth = np.expm1(np.minimum(2 * worst, MAX_EXPONENT))[..., None]
    per_prob = growth + (klen + 3) * m.u_acc + m.u
    tol_a = SAFETY * (probs * per_prob + m.tiny)
    tol_a = np.where(mask, tol_a, 0.0)
    summation = (klen + 2) * m.u_acc + C_ROUND * m.u
    under = magnitude_out if abs_values_sum is None else abs_values_sum
    tol_o = SAFETY * ((per_prob + summation) * magnitude_out + m.tiny * under)
    tol_e = np.where(mask, tol_e, 0.0)
    if oracle_radius is not None:
        tol_e = tol_e + np.where(mask, oracle_radius.scores, 0.0)
        tol_a = tol_a + oracle_radius.probs
        tol_o = tol_o + oracle_radius.out
    return Bounds(tol_e, tol_a, tol_o)


def gradient_bounds(
    dtype: str,
    magnitudes: Mapping[str, np.ndarray],
    dims: Mapping[str, int],
    forward: Bounds,
    underflow: Mapping[str, np.ndarray] | None = None,
) -> dict[str, np.ndarray]:
    """E4 and E5 for every input, from :func:`relpos.spec.gradient_magnitudes`, the problem's
    dims, the forward bounds of the same input (for E, the largest logit error bound) and
    :func:`relpos.spec.underflow_sensitivities` (without them, E5 keeps only N * tiny)."""
    m = _model(dtype)
    core = ("bsz", "n_head", "qlen", "klen", "mlen", "d_head")
    extra = sum(v for k, v in dims.items() if k not in core)
    n = dims["bsz"] * dims["n_head"] * dims["qlen"] * dims["klen"] + dims["d_head"] + extra
    worst_logit = float(np.max(forward.scores, initial=0.0))
    growth = math.expm1(min(2 * worst_logit, MAX_EXPONENT))
    factor = SAFETY * (n * m.u_acc + C_ROUND_GRAD * m.u + growth)
    out = {}
    for name, g in magnitudes.items():
        floor: float | np.ndarray = n * m.tiny
        if underflow is not None and name in underflow:
            floor = floor + m.tiny_acc * np.asarray(underflow[name], dtype=np.float64)
        out[name] = factor * np.asarray(g, dtype=np.float64) + SAFETY * floor
    return out


def suggested(dtype: str, b: Bounds) -> dict[str, float]:
    """One absolute tolerance per quantity (the largest per-element bound), as written into
    golden vectors; per-element bounds are tighter and what the suite uses."""
    _model(dtype)
    return {
        name: float(np.max(getattr(b, name), initial=0.0)) for name in ("scores", "probs", "out")
    }


def scaling(
    encoding: str, args: Mapping[str, object], evaluation: Any
) -> tuple[dict[str, np.ndarray], Bounds]:
    """What the bounds of an oracle evaluation scale and add: the magnitudes, in float64 (sums
    of n nonnegative terms, within n 2^-53 relative: far below the bounds' own constants;
    exact magnitudes would cost two more exact evaluations per draw) and the evaluation's own
    radius."""
    from relpos.spec import magnitudes

    mags = magnitudes(encoding, "float64", **args)
    radius = Bounds(*(evaluation.radius(name) for name in ("scores", "probs", "out")))
    return mags, radius


def for_evaluation(
    dtypes: Sequence[str], encoding: str, args: Mapping[str, object], evaluation: Any
) -> dict[str, Bounds]:
    """E1-E3 per dtype for an oracle evaluation of ``encoding`` on ``args``, with the
    evaluation's own radius added."""
    mags, radius = scaling(encoding, args, evaluation)
    return {
        dtype: bounds(
            dtype,
            probs=evaluation.as_float64("probs"),
            mask=evaluation.mask,
            magnitude_scores=mags["scores"],
            magnitude_out=mags["out"],
            oracle_radius=radius,
            magnitude_phase=mags.get("scores_phase"),
        )
        for dtype in dtypes
    }


def suggested_for_vectors(
    encoding: object, args: Mapping[str, object], evaluation: object
) -> dict[str, dict[str, float]]:
    """The ``tolerance`` entry of a golden vector file: per dtype, per quantity."""
    name = encoding.name  # type: ignore[attr-defined]
    per_dtype = for_evaluation(tuple(DTYPES), name, args, evaluation)
    return {dtype: suggested(dtype, b) for dtype, b in per_dtype.items()}
