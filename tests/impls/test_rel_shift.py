"""The rel-shift of the fast XL variants equals an explicit gather on arbitrary input:
out[..., i, j] = x[..., i, j + qlen - 1 - i] (the distance (klen - qlen) + i - j)."""

from __future__ import annotations

import numpy as np
import pytest
from hypothesis import given
from hypothesis import strategies as st

from relpos.equivalence.backends import backend

shapes = st.tuples(st.integers(1, 3), st.integers(1, 24), st.integers(0, 24))


def gathered(x: np.ndarray, klen: int) -> np.ndarray:
    qlen = x.shape[-2]
    i = np.arange(qlen)[:, None]
    j = np.arange(klen)[None, :]
    return np.take_along_axis(
        x, np.broadcast_to(j + qlen - 1 - i, (*x.shape[:-2], qlen, klen)), axis=-1
    )


@pytest.mark.parametrize("name", ["torch", "jax"])
@given(shape=shapes, seed=st.integers(0, 2**31))
def test_rel_shift_equals_gather(name, shape, seed):
    ok, why = backend(name).available()
    if not ok:
        pytest.skip(why)
    module = __import__(f"relpos.impls.{name}.xl", fromlist=["rel_shift"])
    lead, qlen, mlen = shape
    klen = qlen + mlen
    x = np.random.default_rng(seed).standard_normal((lead, 2, qlen, klen + qlen - 1))
    got = backend(name).to_numpy(module.rel_shift(backend(name).tensor(x, "float64"), klen))
    np.testing.assert_array_equal(got, gathered(x, klen))


@pytest.mark.parametrize("name", ["torch", "jax"])
def test_rel_shift_rejects_a_wrong_width(name):
    ok, why = backend(name).available()
    if not ok:
        pytest.skip(why)
    module = __import__(f"relpos.impls.{name}.xl", fromlist=["rel_shift"])
    x = backend(name).tensor(np.zeros((1, 3, 5)), "float64")
    with pytest.raises(ValueError, match=r"rel_shift needs klen \+ qlen - 1 = 6 columns"):
        module.rel_shift(x, 4)
