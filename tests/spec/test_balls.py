"""The ball path of the oracle against the exact one: every enclosure contains the exact
(mpmath, 60-digit) value, value by value, on every golden case and on large logits; the radii
are certified and small; ``method`` chooses the path; the formula lowering is the spec's own."""

from __future__ import annotations

import itertools
from fractions import Fraction

import flint
import mpmath
import numpy as np
import pytest
import sympy as sp

from relpos import spec
from relpos.spec import _balls
from relpos.spec._cases import case_inputs
from relpos.spec._index import IndexFunction
from relpos.spec._oracle import EXACT_PAIRS, choose_method
from relpos.spec.encodings import all_encodings

# The exact path's own error: 60 working digits, far below any float64 tolerance.
EXACT_SLACK = mpmath.mpf(10) ** -50

CASES = [
    pytest.param(enc, case, id=f"{enc.name}-{case.name}")
    for enc in all_encodings()
    for case in enc.cases()
]


def _contains(ball, value) -> bool:
    """|mid - value| <= rad + slack |value| (the exact path's value is known to 60 digits)."""
    if isinstance(value, mpmath.mpf) and mpmath.isinf(value):
        return ball == value
    mid = mpmath.mpf(ball.mid().str(70, radius=False))
    rad = mpmath.mpf(ball.rad().str(30, radius=False)) if ball.rad() != 0 else 0
    # the midpoint's decimal rendering at 70 digits adds at most 1e-69 |mid|
    return abs(mid - value) <= rad + EXACT_SLACK * (abs(value) + 1e-300)


def _check_enclosures(exact, ball):
    assert ball.method == "ball" and exact.method == "exact"
    assert (exact.mask == ball.mask).all()
    with mpmath.workdps(80):
        for name in ("scores", "probs", "out"):
            e, b = getattr(exact, name), getattr(ball, name)
            assert e.shape == b.shape, name
            bad = [
                (index, b[index], e[index])
                for index in np.ndindex(*e.shape)
                if not (
                    _contains(b[index], e[index])
                    if isinstance(b[index], flint.arb)
                    else b[index] == e[index]
                )
            ]
            assert not bad, (name, bad[:3])


@pytest.mark.parametrize(("enc", "case"), CASES)
def test_every_enclosure_contains_the_exact_value(enc, case):
    args = case_inputs(enc, case)
    _check_enclosures(
        spec.evaluate(enc.name, method="exact", **args),
        spec.evaluate(enc.name, method="ball", **args),
    )


@pytest.mark.parametrize("enc", all_encodings(), ids=lambda e: e.name)
def test_large_logits_stay_certified(enc):
    """Logits in the thousands: exp spans thousands of binary orders, and the radii follow."""
    case = enc.cases()[0]
    args = case_inputs(enc, case)
    args = {**args, "q": args["q"] * 256.0, "k": args["k"] * 16.0}
    exact = spec.evaluate(enc.name, method="exact", **args)
    ball = spec.evaluate(enc.name, method="ball", **args)
    assert np.abs(ball.as_float64("scores")[exact.mask]).max() > 100
    _check_enclosures(exact, ball)


@pytest.mark.parametrize("enc", all_encodings(), ids=lambda e: e.name)
def test_radii_are_tiny_and_reported(enc):
    case = enc.cases()[0]
    ball = spec.evaluate(enc.name, method="ball", **case_inputs(enc, case))
    for name in ("scores", "probs", "out"):
        mid = ball.as_float64(name)
        radius = _balls.radii(getattr(ball, name))
        finite = np.isfinite(mid)
        # a few bits of the working precision lost over the pipeline, no more
        relative = 2.0 ** -(_balls.PRECISION - 12)
        assert (radius[finite] <= relative * np.maximum(1.0, np.abs(mid[finite]))).all(), name
        # what the tolerance model adds: the radius and the rounding to float64
        reported = ball.radius(name)
        assert (reported[finite] >= radius[finite]).all()
        assert (reported[finite] <= radius[finite] + np.spacing(np.abs(mid[finite]))).all()


def test_auto_is_exact_for_small_problems_and_balls_beyond():
    enc = spec.get_encoding("shaw")
    small = enc.validate(case_inputs(enc, enc.cases()[0]), check_dtypes=False)
    d = small.dims
    assert d["bsz"] * d["n_head"] * d["qlen"] * d["klen"] <= EXACT_PAIRS
    assert choose_method(small) == "exact"
    rng = np.random.default_rng(0)
    q, k, v = (rng.standard_normal((1, 2, 16, 4)) for _ in range(3))
    result = spec.evaluate("shaw", q=q, k=k, v=v, rel_k=rng.standard_normal((5, 4)), clip=(-2, 2))
    assert result.method == "ball"  # 512 pairs


def test_an_unknown_method_is_an_argument_error():
    enc = spec.get_encoding("alibi")
    with pytest.raises(spec.ArgumentError, match=r"`method` must be one of auto, exact, ball"):
        spec.evaluate("alibi", method="fast", **case_inputs(enc, enc.cases()[0]))


def test_rational_inputs_are_enclosed_not_rounded():
    """Object arrays of Fractions (1/3 is no float) become balls around the exact value."""
    enc = spec.get_encoding("rope")
    args = case_inputs(enc, enc.cases()[0])
    third = np.full(args["q"].shape, Fraction(1, 3), dtype=object)
    args = {**args, "q": third}
    _check_enclosures(
        spec.evaluate("rope", method="exact", **args), spec.evaluate("rope", method="ball", **args)
    )


def test_constants_come_from_sympy_as_certified_balls():
    with mpmath.workdps(80):
        for expr in (
            1 / sp.sqrt(48),
            sp.Integer(2) ** sp.Rational(-8, 3),
            sp.sin(sp.Rational(7, 3)),
        ):
            ball = _balls.number(expr)
            assert ball.rad() <= 2.0 ** -(_balls.PRECISION - 8) * abs(float(ball))
            assert _contains(ball, mpmath.mpf(str(sp.N(expr, 75))))
    with pytest.raises(TypeError, match="ball mode needs exact constants"):
        spec._arith.constant(mpmath.mpf(1) / 3, "ball")


def test_a_formula_beyond_bilinear_terms_is_refused():
    """Three vector factors in one term cannot be one matrix product: refused, not guessed."""
    from relpos.spec._pairs import PairFormula

    d = sp.Symbol("d_head", integer=True, positive=True)
    x, y, z = (sp.MatrixSymbol(n, 1, d) for n in ("x", "y", "z"))
    w = sp.MatrixSymbol("W", d, d)
    with pytest.raises(TypeError, match="cannot lower"):
        PairFormula(x * w * y.T, (x, w, y)).terms()
    assert len(PairFormula(x * (y + z).T, (x, y, z)).terms()) == 2


def _index_functions():
    import importlib

    for enc in all_encodings():
        module = importlib.import_module(type(enc).__module__)
        for name, value in vars(module).items():
            if isinstance(value, IndexFunction):
                yield pytest.param(value, id=f"{enc.name}-{name}")
            elif isinstance(value, dict):
                for key, fn in value.items():
                    if isinstance(fn, IndexFunction):
                        yield pytest.param(fn, id=f"{enc.name}-{name}-{key}")


@pytest.mark.parametrize("fn", list(_index_functions()))
def test_index_grids_equal_the_exact_integer_evaluation(fn):
    """The vectorised grid (numpy) against the expression in Python integers, pair by pair:
    at the default positions and at position ids per batch row (offsets, repeats)."""
    choices = [(-2, 0, 3)] * (len(fn.args) - 2)  # the encoding's parameters
    rng = np.random.default_rng(0)
    for qlen, klen in ((1, 1), (3, 7), (6, 6)):
        q_ids = rng.integers(0, 2**17, size=(2, qlen))
        k_ids = np.sort(rng.integers(0, 2**17, size=(2, klen)), axis=1)
        k_ids[:, 0] = q_ids[:, 0]  # a repeated position
        for params in itertools.product(*choices):
            grid = fn.layout(qlen, klen, *params)
            assert grid.dtype == np.int64
            mlen = klen - qlen
            expected = [[fn(mlen + a, b, *params) for b in range(klen)] for a in range(qlen)]
            assert grid.tolist() == expected
            per_row = fn.grid(q_ids, k_ids, *params)
            assert per_row.shape == (2, qlen, klen)
            expected_rows = [
                [
                    [fn(int(q_ids[r, a]), int(k_ids[r, b]), *params) for b in range(klen)]
                    for a in range(qlen)
                ]
                for r in range(2)
            ]
            assert per_row.tolist() == expected_rows


@pytest.mark.parametrize(("enc", "case"), CASES)
def test_ball_gradients_enclose_the_forward_mode_ones(enc, case):
    """The analytic backward in balls against forward-mode duals through the exact pipeline,
    for every float input, value by value."""
    args = case_inputs(enc, case)
    d = enc.validate(args, check_dtypes=False).dims
    shape = (d["bsz"], d["n_head"], d["qlen"], d["d_head"])
    weights = np.random.default_rng(case.seed).standard_normal(shape)
    exact = spec.gradients(enc.name, weights, method="exact", **args)
    ball = spec.gradients(enc.name, weights, method="ball", **args)
    assert (
        set(ball)
        == set(exact)
        == {t.name for t in enc.tensors if t.kind == "float" and args.get(t.name) is not None}
    )
    with mpmath.workdps(80):
        for name in exact:
            bad = [
                index
                for index in np.ndindex(*exact[name].shape)
                if not _contains(ball[name][index], exact[name][index])
            ]
            assert not bad, (name, bad[:3])


def test_gradients_choose_their_path_like_evaluate():
    rng = np.random.default_rng(0)
    q, k, v = (rng.standard_normal((1, 2, 16, 4)) for _ in range(3))
    grads = spec.gradients("alibi", np.ones((1, 2, 16, 4)), q=q, k=k, v=v)
    assert all(isinstance(g.flat[0], flint.arb) for g in grads.values())  # 512 pairs: balls
    with pytest.raises(spec.ArgumentError, match="`weights` must have the shape of the output"):
        spec.gradients("alibi", np.ones((1, 2, 16, 3)), method="ball", q=q, k=k, v=v)


@pytest.mark.parametrize(("enc", "case"), CASES)
def test_float64_magnitudes_agree_with_the_exact_ones(enc, case):
    """The float64 magnitudes (those beside a ball evaluation) are the exact ones to a few
    ulps of float64 per term: sinusoids and rotations evaluated in numpy, not in mpmath."""
    args = case_inputs(enc, case)
    exact = spec.magnitudes(enc.name, "exact", **args)
    fast = spec.magnitudes(enc.name, "float64", **args)
    for name in ("scores", "out"):
        assert fast[name].dtype == np.float64
        np.testing.assert_allclose(fast[name], exact[name], rtol=1e-12, atol=0, err_msg=name)
