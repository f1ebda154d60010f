"""The tolerance model: how far a correct floating-point evaluation may be from the oracle.

Every bound is per element, built from magnitudes the oracle computes (:func:`spec.magnitudes`)
times a unit roundoff and a stated constant; nothing scales with array size and no test holds
a literal tolerance.

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
since rounding the argument D f_k by one ulp moves the sine by up to |D f_k| u.

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

Tightness (checked by tests/meta): in float64 the bounds are near 1e-14 relative for
unit-sized inputs, so a float32 sinusoid (error near 1e-7) or a 1e-6 relative error in an
output fails.
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from dataclasses import dataclass

import numpy as np

__all__ = [
    "C_ROUND",
    "DTYPES",
    "SAFETY",
    "Bounds",
    "DtypeModel",
    "bounds",
    "suggested",
]

#: Roundings of intermediates to the working dtype that an evaluation may perform.
C_ROUND = 8
#: Multiplies every bound (covers the second-order terms dropped in E1-E3).
SAFETY = 2.0


@dataclass(frozen=True)
class DtypeModel:
    """Unit roundoffs and the smallest normal of a dtype and its accumulation dtype."""

    name: str
    u: float
    u_acc: float
    tiny: float


DTYPES: dict[str, DtypeModel] = {
    "float64": DtypeModel("float64", 2.0**-53, 2.0**-53, float(np.finfo(np.float64).tiny)),
    "float32": DtypeModel("float32", 2.0**-24, 2.0**-24, float(np.finfo(np.float32).tiny)),
    "bfloat16": DtypeModel("bfloat16", 2.0**-8, 2.0**-24, 2.0**-126),
    "float16": DtypeModel("float16", 2.0**-11, 2.0**-24, 2.0**-14),
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
) -> Bounds:
    """E1-E3 for one evaluation.

    ``probs`` (float64) and ``mask`` come from the oracle, the magnitudes from
    :func:`spec.magnitudes`; ``abs_values_sum`` is sum_j |V_ij| per output element (for the
    underflow term; defaults to ``magnitude_out``).
    """
    m = _model(dtype)
    n = magnitude_out.shape[-1]  # d_head
    klen = probs.shape[-1]
    tol_e = SAFETY * ((n + 4) * m.u_acc + C_ROUND * m.u) * magnitude_scores
    worst = np.where(mask, tol_e, 0.0).max(axis=-1, initial=0.0)  # E_i per row
    growth = np.expm1(2 * worst)[..., None]
    per_prob = growth + (klen + 3) * m.u_acc + m.u
    tol_a = SAFETY * (probs * per_prob + m.tiny)
    tol_a = np.where(mask, tol_a, 0.0)
    summation = (klen + 2) * m.u_acc + C_ROUND * m.u
    under = magnitude_out if abs_values_sum is None else abs_values_sum
    tol_o = SAFETY * ((per_prob + summation) * magnitude_out + m.tiny * under)
    return Bounds(np.where(mask, tol_e, 0.0), tol_a, tol_o)


def suggested(dtype: str, b: Bounds) -> dict[str, float]:
    """One absolute tolerance per quantity (the largest per-element bound), as written into
    golden vectors; per-element bounds are tighter and what the suite uses."""
    _model(dtype)
    return {
        name: float(np.max(getattr(b, name), initial=0.0)) for name in ("scores", "probs", "out")
    }


def describe(dtype: str) -> Mapping[str, float]:
    """The constants of the model for one dtype (for reports and docs)."""
    m = _model(dtype)
    return {
        "u": m.u,
        "u_acc": m.u_acc,
        "tiny": m.tiny,
        "C_ROUND": C_ROUND,
        "SAFETY": SAFETY,
        "log2_u": math.log2(m.u),
    }


def for_evaluation(
    dtype: str, encoding: str, args: Mapping[str, object], evaluation: object
) -> Bounds:
    """E1-E3 for an oracle evaluation of ``encoding`` on ``args``."""
    from spec import magnitudes

    mags = magnitudes(encoding, **args)
    return bounds(
        dtype,
        probs=evaluation.as_float64("probs"),  # type: ignore[attr-defined]
        mask=evaluation.mask,  # type: ignore[attr-defined]
        magnitude_scores=mags["scores"],
        magnitude_out=mags["out"],
    )


def suggested_for_vectors(
    encoding: object, args: Mapping[str, object], evaluation: object
) -> dict[str, dict[str, float]]:
    """The ``tolerance`` entry of a golden vector file: per dtype, per quantity."""
    name = encoding.name  # type: ignore[attr-defined]
    return {
        dtype: suggested(dtype, for_evaluation(dtype, name, args, evaluation)) for dtype in DTYPES
    }
