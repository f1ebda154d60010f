"""Gradients of every implementation with respect to every float input agree with the
oracle's (forward-mode, 60 digits) on small float64 cases; no NaN through masked rows."""

from __future__ import annotations

import mpmath
import numpy as np
import pytest

from relpos.equivalence.backends import backend
from relpos.spec import get_encoding, gradients
from relpos.spec._cases import case_inputs
from tests.conftest import cases_named, implementation_params

CASES = {
    "shaw": ["key_query", "per_head_keys_shared_values", "mask_fully_masked_row"],
    "xl": ["segments_memory_uni", "clamp_symmetric", "mask_fully_masked_row"],
}


def _small(args):
    out = dict(args)
    for name in ("q", "k", "v"):
        out[name] = args[name][:1]
    for name in ("mask", "seg_ids"):
        if args.get(name) is not None and args[name].shape[0] > 1:
            out[name] = args[name][:1]
    return out


@pytest.mark.parametrize("impl", implementation_params())
def test_gradients_match_the_oracle(impl):
    enc = get_encoding(impl.encoding)
    rng = np.random.default_rng(3)
    for case in cases_named(impl.encoding, CASES):
        name = case.name
        args = _small(case_inputs(enc, case))
        wrt = tuple(n for n in enc.float_inputs if args.get(n) is not None)
        d = enc.validate(args, check_dtypes=False).dims
        weights = rng.integers(-4, 5, size=(d["bsz"], d["n_head"], d["qlen"], d["d_head"])) / 4
        exact = gradients(impl.encoding, weights, **args)
        got = backend(impl.backend).gradients(impl.load(), args, "float64", weights, wrt)
        for input_name in wrt:
            want = np.vectorize(lambda x: float(x), otypes=[np.float64])(exact[input_name])
            g = got[input_name]
            assert not np.isnan(g).any(), (name, input_name)
            scale = float(mpmath.mpf(np.abs(want).max())) + 1.0
            np.testing.assert_allclose(
                g, want, rtol=0, atol=1e-12 * scale, err_msg=f"d/d{input_name}, case {name}"
            )
