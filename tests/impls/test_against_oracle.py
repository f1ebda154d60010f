"""Every implementation agrees with the oracle within the per-element bounds of the tolerance
model (scores, probabilities and outputs) on the golden cases' inputs, on fully masked rows
and on scores beyond the half types' range."""

from __future__ import annotations

import numpy as np
import pytest

from relpos.equivalence.backends import DTYPES, backend
from relpos.equivalence.compare import compare
from relpos.equivalence.properties import golden_cases
from relpos.equivalence.reference import expected
from relpos.spec import ENCODINGS, get_encoding
from relpos.spec._cases import case_inputs
from tests.conftest import implementation_params


def _cases(encoding):
    return get_encoding(encoding).cases()


@pytest.mark.parametrize("encoding", ENCODINGS)
def test_the_golden_property_checks_each_case_on_its_own_inputs(encoding):
    """Every implementation meets the oracle on every golden case in every dtype through the
    ``golden`` property (tests/properties, and ``relpos check``); its draws must be the cases'
    own inputs, the long-position case included."""
    enc = get_encoding(encoding)
    cases = [*enc.cases(), *enc.large_cases()]
    drawn = golden_cases(encoding)
    assert [name for name, _ in drawn] == [case.name for case in cases]
    for case, (_, draw) in zip(cases, drawn, strict=True):
        want, got = case_inputs(enc, case), draw.arguments("float64")
        assert want.keys() == got.keys(), case.name
        for name, value in want.items():
            assert np.array_equal(np.asarray(got[name]), np.asarray(value)), (case.name, name)
    assert max(draw.klen for _, draw in drawn) >= 1024


@pytest.mark.parametrize("impl", implementation_params())
def test_fully_masked_rows_give_zeros_in_every_dtype(impl):
    enc = get_encoding(impl.encoding)
    case = next(c for c in enc.cases() if c.mask == "fully_masked_row")
    args = case_inputs(enc, case)
    for dtype in DTYPES:
        got = backend(impl.backend).call(impl.load(), args, dtype)
        row = ~np.broadcast_to(args["mask"], got.probs.shape).any(axis=-1)
        assert row.any()
        assert not np.isnan(got.out).any() and not np.isnan(got.probs).any(), dtype
        assert (got.probs[row] == 0).all() and (got.out[row] == 0).all(), dtype
        assert np.isneginf(got.scores[row]).all(), dtype


@pytest.mark.parametrize("dtype", ("float16", "bfloat16"))
@pytest.mark.parametrize("impl", implementation_params())
def test_half_types_hold_scores_beyond_their_range(impl, dtype):
    """Inputs exact in the half type whose logit terms pass 65504 (float16's largest value):
    the scores, float32 for the half types, must be the oracle's, not inf."""
    enc = get_encoding(impl.encoding)
    args = case_inputs(enc, enc.cases()[0])
    args = {**args, "q": args["q"] * 128.0, "k": args["k"] * 128.0, "scale": 1.0}
    if impl.encoding == "xl":  # the position term too
        args = {**args, "r_r_bias": args["r_r_bias"] * 128.0, "w_r": args["w_r"] * 128.0}
    want = expected(impl.encoding, args)
    assert np.abs(want.scores[want.mask]).max() > 65504
    got = backend(impl.backend).call(impl.load(), args, dtype)
    bounds = want.bounds(dtype)
    for name in ("scores", "probs", "out"):
        verdict = compare(
            name, getattr(got, name), getattr(want, name), getattr(bounds, name), who=impl.id
        )
        assert verdict.ok, verdict.message
