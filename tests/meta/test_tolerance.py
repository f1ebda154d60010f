"""The tolerance model: tight in float64, scaling with the unit roundoff, saturating instead
of overflowing, and rejecting unknown dtypes."""

from __future__ import annotations

import dataclasses

import numpy as np
import pytest

from relpos.equivalence import tolerance
from relpos.equivalence.reference import expected
from relpos.spec import all_encodings, get_encoding
from relpos.spec._cases import case_inputs

CASES = [(e.name, c.name) for e in all_encodings() for c in e.cases()]


@pytest.mark.parametrize(("encoding", "case"), CASES[::5])
def test_float64_bounds_are_tight(encoding, case):
    """Relative to the magnitudes, float64 bounds stay three orders of magnitude below 1e-6,
    the smallest deviation that must be caught (a 1e-6 relative output error; a float32
    sinusoid, about 1e-7 per entry)."""
    enc = get_encoding(encoding)
    want = expected(encoding, case_inputs(enc, next(c for c in enc.cases() if c.name == case)))
    b = want.bounds("float64")
    visible = want.magnitude_out > 0
    assert (b.out[visible] / want.magnitude_out[visible]).max() < 1e-9
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


def test_unknown_dtype_is_rejected():
    with pytest.raises(
        ValueError, match="`dtype` must be one of float64, float32, bfloat16, float16, got 'float8'"
    ):
        tolerance.suggested("float8", None)  # type: ignore[arg-type]
