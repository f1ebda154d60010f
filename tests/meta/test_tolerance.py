"""The tolerance model: tight in float64, scaling with the unit roundoff, saturating instead
of overflowing, covering flushed subnormals, and rejecting unknown dtypes."""

from __future__ import annotations

import dataclasses

import numpy as np
import pytest

from relpos.equivalence import properties, tolerance
from relpos.equivalence.draws import Draw
from relpos.equivalence.reference import expected, expected_gradients
from relpos.spec import all_encodings, get_encoding, gradients
from relpos.spec._cases import case_inputs

CASES = [(e.name, c.name) for e in all_encodings() for c in e.cases()]


@pytest.mark.parametrize(("encoding", "case"), CASES[::5])
def test_float64_bounds_are_tight(encoding, case):
    """Relative to the magnitudes, float64 bounds stay three orders of magnitude below 1e-6,
    the smallest deviation that must be caught (a 1e-6 relative output error; a float32
    sinusoid, about 1e-7 per entry). At position ids up to 2^17 (offset and per-row ids) an
    angle's rounding moves it by up to 2^17 u, and the output bounds stay one order below."""
    enc = get_encoding(encoding)
    found = next(c for c in enc.cases() if c.name == case)
    want = expected(encoding, case_inputs(enc, found))
    b = want.bounds("float64")
    visible = want.magnitude_out > 0
    tight = 1e-7 if found.positions in ("offset", "per_row") and encoding == "rope" else 1e-9
    assert (b.out[visible] / want.magnitude_out[visible]).max() < tight
    assert (b.scores[want.mask] / want.magnitude_scores[want.mask]).max() < 1e-12


def test_bounds_scale_with_the_unit_roundoff():
    """The model's part scales with u; the oracle's radius is added on top, in every dtype."""
    enc = all_encodings()[0]
    want = expected(enc.name, case_inputs(enc, enc.cases()[0]))
    b64, b32 = want.bounds("float64"), want.bounds("float32")
    r = want.radius.scores[want.mask]
    ratio = (b32.scores[want.mask] - r) / (b64.scores[want.mask] - r)
    assert np.allclose(ratio, 2.0**29)


def test_the_oracles_radius_is_added_to_every_bound():
    """No bound assumes the oracle exact: each gets the expected value's own radius (here from
    the ball path: 512 pairs)."""
    enc = get_encoding("xl")
    case = enc.cases()[0]
    args = case_inputs(enc, dataclasses.replace(case, dims={**case.dims, "qlen": 16, "mlen": 16}))
    want = expected("xl", args)
    assert want.radius is not None
    base = tolerance.bounds(
        "float64",
        probs=want.probs,
        mask=want.mask,
        magnitude_scores=want.magnitude_scores,
        magnitude_out=want.magnitude_out,
    )
    got = want.bounds("float64")
    for name in ("probs", "out"):
        radius = getattr(want.radius, name)
        assert (radius > 0).any()
        assert np.array_equal(getattr(got, name), getattr(base, name) + radius)


def test_large_logits_in_half_types_saturate_without_overflow():
    shape = (1, 1, 2, 3)
    b = tolerance.bounds(
        "bfloat16",
        probs=np.full(shape, 1 / 3),
        mask=np.ones(shape, bool),
        magnitude_scores=np.full(shape, 5e4),
        magnitude_out=np.ones((1, 1, 2, 4)),
    )
    assert np.isfinite(b.probs).all() and np.isfinite(b.out).all()
    assert (b.probs > 1).all()  # the honest statement: nothing is known beyond [0, 1]


def test_a_rope_phase_is_allowed_float32_rounding_in_a_half_type():
    """E1': the angles' part of the magnitude scales with u_acc (float32), the rest as E1."""
    shape, n = (1, 1, 2, 3), 4
    m = tolerance.DTYPES["bfloat16"]
    common = {
        "probs": np.full(shape, 1 / 3),
        "mask": np.ones(shape, bool),
        "magnitude_scores": np.full(shape, 10.0),
        "magnitude_out": np.ones((1, 1, 2, n)),
    }
    plain = tolerance.bounds("bfloat16", **common)
    phased = tolerance.bounds("bfloat16", **common, magnitude_phase=np.full(shape, 6.0))
    per_plain = tolerance.SAFETY * ((n + 4) * m.u_acc + tolerance.C_ROUND * m.u)
    want = per_plain * 4.0 + tolerance.SAFETY * tolerance.C_PHASE * m.u_acc * 6.0
    assert np.allclose(phased.scores, want, rtol=1e-12)
    assert (phased.scores < plain.scores).all()
    from relpos.spec import magnitudes

    rng = np.random.default_rng(0)
    q, k, v = (rng.standard_normal((1, 1, 3, 4)) for _ in range(3))
    assert "scores_phase" in magnitudes("rope", "float64", q=q, k=k, v=v)
    assert "scores_phase" not in magnitudes(
        "t5", "float64", q=q, k=k, v=v, rel_bias=rng.standard_normal((32, 1))
    )


def test_unknown_dtype_is_rejected():
    with pytest.raises(
        ValueError, match="`dtype` must be one of float64, float32, bfloat16, float16, got 'float8'"
    ):
        tolerance.suggested("float8", None)  # type: ignore[arg-type]


#: Drawn by CI's seed: head 1 gives its query 0 a key of probability 1.5e-39, below float32's
#: smallest normal, and d/drel_k[1, 1, 0] flows through that probability alone.
FLUSHED = Draw(
    encoding="shaw",
    dims={"bsz": 1, "n_head": 2, "qlen": 2, "mlen": 1, "d_head": 3},
    options={"clip": (-2, 2), "key_query": True, "scale": 0.125},
    include=("rel_v",),
    layouts={"rel_k": 1, "rel_v": 0},
    values="large",
    seed=11303,
)


def _flushed_gradient_bounds(with_sensitivities: bool) -> tuple[dict, dict, dict]:
    """The oracle's float32 gradients of FLUSHED, those of a backend that flushes every
    probability below float32's smallest normal to zero (exactly: those pairs masked), and
    the float32 bounds with or without E5's sensitivities."""
    args, w = FLUSHED.arguments("float32"), properties._weights(FLUSHED)
    exact, magnitude, underflow = expected_gradients("shaw", args, w)
    want = expected("shaw", args)
    keep = want.probs >= np.finfo(np.float32).tiny
    assert not keep.all()  # the draw still reaches a flushed probability
    flushed = {
        n: np.vectorize(float)(g) for n, g in gradients("shaw", w, **{**args, "mask": keep}).items()
    }
    bounds = tolerance.gradient_bounds(
        "float32",
        magnitude,
        properties._dims("shaw", args),
        want.bounds("float32"),
        underflow if with_sensitivities else None,
    )
    return exact, flushed, bounds


def test_a_flushed_probability_stays_within_the_underflow_bound():
    """E5: a backend that flushes subnormals (XLA on CPU) returns the gradient without the
    flushed pairs, and that gradient is within the bound."""
    exact, flushed, bounds = _flushed_gradient_bounds(with_sensitivities=True)
    for name in exact:
        assert (np.abs(flushed[name] - exact[name]) <= bounds[name]).all(), name


def test_without_the_sensitivities_the_flush_exceeds_the_bound():
    """Without S, E5's N * tiny alone does not cover the flush: the multipliers on the flushed
    path (the softmax bracket, the query, the scale) are what the sensitivities add."""
    exact, flushed, bounds = _flushed_gradient_bounds(with_sensitivities=False)
    assert abs(flushed["rel_k"][1, 1, 0] - exact["rel_k"][1, 1, 0]) > bounds["rel_k"][1, 1, 0]


def test_the_underflow_floor_is_far_below_any_normal_gradient():
    """For inputs of order one the floor tiny_acc * S stays below 1e-30 in float32 and
    float16: it cannot hide an error in a gradient of ordinary size."""
    draw = dataclasses.replace(FLUSHED, values="normal")
    args, w = draw.arguments("float32"), properties._weights(draw)
    _, _, underflow = expected_gradients("shaw", args, w)
    for dtype in ("float32", "float16"):
        floor = tolerance.DTYPES[dtype].tiny_acc
        assert max(float(s.max()) * floor for s in underflow.values()) < 1e-30


@pytest.mark.parametrize("variant", ["reference", "fast"])
def test_jax_gradients_through_a_flushed_probability_pass(variant):
    """JAX on CPU flushes the probability of FLUSHED to zero; its gradients pass, as the
    tolerance model says they must, where they failed before E5 had its sensitivities."""
    pytest.importorskip("jax", reason="jax is not installed (pip install '.[jax]')")
    from relpos.equivalence import reproduce

    assert reproduce("gradients", f"jax-shaw-{variant}", "float32", FLUSHED) <= 1.0
