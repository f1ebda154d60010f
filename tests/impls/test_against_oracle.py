"""Every implementation, in every dtype, on every golden case, agrees with the oracle within
the per-element bounds of the tolerance model: scores, probabilities and outputs."""

from __future__ import annotations

import numpy as np
import pytest

from relpos.equivalence.backends import DTYPES, backend
from relpos.equivalence.compare import compare
from relpos.equivalence.reference import expected
from relpos.spec import get_encoding
from relpos.spec._cases import case_inputs
from tests.conftest import implementation_params


def _cases(encoding):
    return get_encoding(encoding).cases()


@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("impl", implementation_params())
def test_every_golden_case(impl, dtype):
    enc = get_encoding(impl.encoding)
    fn = impl.load()
    adapter = backend(impl.backend)
    failures = []
    for case in enc.cases():
        args = case_inputs(enc, case)
        want = expected(impl.encoding, args)
        got = adapter.call(fn, args, dtype)
        bounds = want.bounds(dtype)
        for name in ("scores", "probs", "out"):
            verdict = compare(
                name,
                getattr(got, name),
                getattr(want, name),
                getattr(bounds, name),
                who=f"{impl.id} in {dtype}, case {case.name}",
            )
            if not verdict.ok:
                failures.append(verdict.message)
    assert not failures, "\n\n".join(failures)


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
