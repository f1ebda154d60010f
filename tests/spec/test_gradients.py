"""The oracle's forward-mode gradients against central differences of the oracle itself,
taken in exact rational steps at the oracle's working precision."""

from __future__ import annotations

from fractions import Fraction

import mpmath
import numpy as np
import pytest

from relpos.spec import DPS, ENCODINGS, evaluate, get_encoding, gradients
from relpos.spec._arith import to_fraction_array
from relpos.spec._cases import case_inputs
from tests.conftest import cases_named

SMALL = {
    "shaw": ["key_query", "per_head_tables", "mask_fully_masked_row", "memory"],
    "xl": ["segments_memory_uni", "clamp_symmetric", "mask_fully_masked_row"],
}
STEP = Fraction(1, 2**70)


def _shrink(args: dict) -> dict:
    """Fewer batch elements and heads keep the finite differences cheap."""
    out = dict(args)
    for name in ("q", "k", "v"):
        out[name] = args[name][:1]
    if args.get("mask") is not None and args["mask"].ndim == 4:
        out["mask"] = args["mask"][:1]
    if args.get("seg_ids") is not None:
        out["seg_ids"] = args["seg_ids"][:1]
    return out


def _loss(encoding: str, args: dict, weights: np.ndarray) -> mpmath.mpf:
    out = evaluate(encoding, **args).out
    with mpmath.workdps(DPS):
        return mpmath.fsum(o * float(w) for o, w in zip(out.ravel(), weights.ravel(), strict=True))


@pytest.mark.parametrize(
    ("encoding", "case"),
    [(e, c.name) for e in ENCODINGS for c in cases_named(e, SMALL)],
)
def test_gradients_match_central_differences(encoding, case):
    enc = get_encoding(encoding)
    args = _shrink(case_inputs(enc, next(c for c in enc.cases() if c.name == case)))
    out_shape = evaluate(encoding, **args).out.shape
    rng = np.random.default_rng(7)
    weights = rng.integers(-4, 5, size=out_shape) / 4
    grads = gradients(encoding, weights, **args)
    assert set(grads) == {n for n in enc.float_inputs if args.get(n) is not None}
    for name, grad in grads.items():
        exact = to_fraction_array(args[name])
        for flat in rng.choice(exact.size, size=min(3, exact.size), replace=False):
            plus, minus = exact.copy(), exact.copy()
            plus.reshape(-1)[flat] += STEP
            minus.reshape(-1)[flat] -= STEP
            with mpmath.workdps(DPS):
                numeric = (
                    _loss(encoding, {**args, name: plus}, weights)
                    - _loss(encoding, {**args, name: minus}, weights)
                ) / (2 * mpmath.mpf(STEP.numerator) / STEP.denominator)
                analytic = grad.reshape(-1)[flat]
                assert abs(numeric - analytic) <= mpmath.mpf(10) ** -25 * max(1, abs(numeric)), (
                    name,
                    flat,
                    numeric,
                    analytic,
                )


def test_fully_masked_rows_have_zero_gradient():
    enc = get_encoding("shaw")
    args = case_inputs(enc, next(c for c in enc.cases() if c.name == "mask_fully_masked_row"))
    mask = np.broadcast_to(args["mask"], (1, 2, 4, 4))
    b, h, i = np.argwhere(~mask.any(axis=-1))[0]
    weights = np.zeros((1, 2, 4, 4))
    weights[b, h, i] = 1.0
    grads = gradients("shaw", weights, **args)
    assert all(x == 0 for g in grads.values() for x in g.ravel())
