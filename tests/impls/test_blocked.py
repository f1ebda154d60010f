"""The blocked forward of the torch fast variants across many blocks: every golden case with
blocks of 1, 2 and 3 query rows agrees with the oracle, and with the whole-matrix path that
autograd records."""

from __future__ import annotations

import numpy as np
import pytest

from relpos.equivalence.backends import backend
from relpos.equivalence.compare import compare
from relpos.equivalence.reference import expected
from relpos.spec import get_encoding
from relpos.spec._cases import case_inputs
from tests.conftest import cases_named, implementation_params

fast_torch = implementation_params(backend="torch", variant="fast")


@pytest.mark.parametrize("block", [1, 2, 3])
@pytest.mark.parametrize("impl", fast_torch)
def test_small_blocks_agree_with_the_oracle(impl, block, monkeypatch):
    import relpos.impls.torch._common as common

    monkeypatch.setattr(common, "BLOCK", block)
    enc = get_encoding(impl.encoding)
    for case in enc.cases():
        args = case_inputs(enc, case)
        want = expected(impl.encoding, args)
        got = backend("torch").call(impl.load(), args, "float64")
        for name in ("scores", "probs", "out"):
            verdict = compare(
                name,
                getattr(got, name),
                getattr(want, name),
                getattr(want.bounds("float64"), name),
                who=f"{impl.id} (block {block}), case {case.name}",
            )
            assert verdict.ok, verdict.message


@pytest.mark.parametrize("positions", ["default", "per_row"])
@pytest.mark.parametrize("impl", fast_torch)
def test_blocked_and_whole_paths_agree_on_long_sequences(impl, positions):
    import torch

    enc = get_encoding(impl.encoding)
    long = {"shaw": ["batch_and_heads"], "xl": ["segments_memory_uni"]}
    case = cases_named(impl.encoding, long, default=())[0]
    case = type(case)(
        case.name,
        {**case.dims, "qlen": 300, "mlen": 37},
        case.options,
        case.include,
        case.layouts,
        "random",
        seed=5,
        positions=positions,
    )
    args = backend("torch").convert(case_inputs(enc, case), "float64")
    fn = impl.load()
    call = dict(args)
    q, k, v = call.pop("q"), call.pop("k"), call.pop("v")
    blocked = fn(q, k, v, **call)
    whole = fn(q.clone().requires_grad_(True), k, v, **call).detach()
    np.testing.assert_allclose(blocked.numpy(), whole.numpy(), rtol=1e-12, atol=1e-12)
    assert not torch.isnan(blocked).any()
