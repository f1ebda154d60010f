"""JAX implementations compose with jax.jit (no retrace for the same shapes), jax.grad and
jax.vmap over the batch."""

from __future__ import annotations

import numpy as np
import pytest

from relpos.equivalence.backends import backend
from relpos.spec import get_encoding
from relpos.spec._cases import case_inputs
from tests.conftest import cases_named, implementation_params

jax_params = implementation_params(backend="jax")


CASE = {"shaw": ["mask_random"], "xl": ["segments"]}


def _args(impl, name=None):
    enc = get_encoding(impl.encoding)
    if name is None:
        case = cases_named(impl.encoding, CASE, default=())[0]
    else:
        case = next(c for c in enc.cases() if c.name == name)
    return case_inputs(enc, case)


@pytest.mark.parametrize("impl", jax_params)
def test_same_shapes_never_retrace(impl):
    import jax

    module = __import__(impl.module, fromlist=["_fast"])
    core = module._fast if impl.variant == "fast" else module._reference
    adapter = backend("jax")
    args = adapter.convert(_args(impl), "float32")
    fn = impl.load()
    call = dict(args)
    q, k, v = call.pop("q"), call.pop("k"), call.pop("v")
    fn(q, k, v, **call)
    before = core._cache_size()
    for offset in (1.0, 2.0):
        out = fn(q + offset, k, v, **call)
        jax.block_until_ready(out)
    assert core._cache_size() == before


def _tensor_call(impl, args):
    """The tensors of ``args``, and the implementation as a function of them alone (the
    options bound), for jax.jit."""
    fn = impl.load()
    tensors = {k: v for k, v in args.items() if hasattr(v, "shape")}
    options = {k: v for k, v in args.items() if not hasattr(v, "shape")}

    def call(t):
        t = dict(t)
        return fn(t.pop("q"), t.pop("k"), t.pop("v"), **t, **options)

    return tensors, call


@pytest.mark.parametrize("impl", jax_params)
def test_jit_of_the_public_function(impl):
    import jax

    tensors, call = _tensor_call(impl, backend("jax").convert(_args(impl), "float32"))
    np.testing.assert_allclose(
        np.asarray(jax.jit(call)(tensors)), np.asarray(call(tensors)), rtol=1e-5, atol=1e-6
    )


#: Encodings whose JAX variants compute their integer tables on the host from position ids.
HOST_TABLES = {"t5", "deberta"}


@pytest.mark.parametrize("impl", jax_params)
def test_jit_over_position_ids(impl):
    """Traced position ids: the variants that compute their tables in JAX agree with the
    eager call; those whose exact integer tables are host code refuse them, naming q_pos."""
    import jax

    from relpos.spec import ArgumentError

    args = backend("jax").convert(_args(impl, "positions_per_row"), "float64")
    tensors, call = _tensor_call(impl, args)
    if impl.encoding in HOST_TABLES:
        with pytest.raises(ArgumentError, match="`q_pos` must hold concrete values"):
            jax.jit(call)(tensors)
        return
    np.testing.assert_allclose(
        np.asarray(jax.jit(call)(tensors)), np.asarray(call(tensors)), rtol=1e-12, atol=1e-12
    )


_rope_params = implementation_params(backend="jax", encoding="rope")
_SCALINGS = {
    "dynamic": {"rope_type": "dynamic", "factor": 2.0, "original_max_position_embeddings": 4},
    "yarn": {"rope_type": "yarn", "factor": 4.0, "original_max_position_embeddings": 4},
}


@pytest.mark.parametrize("rope_type", sorted(_SCALINGS))
@pytest.mark.parametrize("impl", _rope_params)
def test_jit_over_position_ids_with_a_rope_scaling(impl, rope_type):
    """A scaling whose frequencies depend on the sequence length (1 + the largest position)
    needs the ids' values: traced ones are refused, naming q_pos and the scaling. A
    length-free scaling computes under jax.jit as it does eagerly."""
    import jax

    from relpos.spec import ArgumentError
    from relpos.spec.encodings.rope import LENGTH_DEPENDENT

    args = backend("jax").convert(_args(impl, "positions_per_row"), "float64")
    args["scaling"] = _SCALINGS[rope_type]
    tensors, call = _tensor_call(impl, args)
    if rope_type in LENGTH_DEPENDENT:
        with pytest.raises(ArgumentError, match="`q_pos` must be concrete with dynamic scaling"):
            jax.jit(call)(tensors)
        assert np.isfinite(np.asarray(call(tensors))).all()  # concrete ids are taken
        return
    np.testing.assert_allclose(
        np.asarray(jax.jit(call)(tensors)), np.asarray(call(tensors)), rtol=1e-12, atol=1e-12
    )


@pytest.mark.parametrize("impl", jax_params)
def test_vmap_over_the_batch(impl):
    import jax

    adapter = backend("jax")
    args = adapter.convert(_args(impl), "float64")
    fn = impl.load()
    batched = {"q", "k", "v"} | ({"seg_ids"} if "seg_ids" in args else set())
    if args.get("mask") is not None and args["mask"].shape[0] == args["q"].shape[0]:
        batched.add("mask")
    names = sorted(batched)

    def one(*xs):
        t = dict(args)
        t.update({n: x[None] for n, x in zip(names, xs, strict=True)})
        return fn(t.pop("q"), t.pop("k"), t.pop("v"), **t)[0]

    full = dict(args)
    expected = fn(full.pop("q"), full.pop("k"), full.pop("v"), **full)
    mapped = jax.vmap(one)(*(args[n] for n in names))
    np.testing.assert_allclose(np.asarray(mapped), np.asarray(expected), rtol=1e-12, atol=1e-12)


@pytest.mark.parametrize("impl", jax_params)
def test_grad_has_no_nan_through_fully_masked_rows(impl):
    enc = get_encoding(impl.encoding)
    args = _args(impl, "mask_fully_masked_row")
    wrt = tuple(n for n in enc.float_inputs if args.get(n) is not None)
    weights = np.ones((1, args["q"].shape[1], args["q"].shape[2], args["q"].shape[3]))
    grads = backend("jax").gradients(impl.load(), args, "float32", weights, wrt)
    assert all(not np.isnan(g).any() for g in grads.values())


# -- compiled code stays within the process's mapping limit ------------------------------------

needs_jax = pytest.mark.skipif(
    not backend("jax").available()[0], reason="jax is not installed (pip install '.[jax]')"
)


@needs_jax
def test_release_unmaps_compiled_code():
    import jax
    import jax.numpy as jnp

    from relpos.equivalence import backends

    if backends._mapping_count() is None:
        pytest.skip("no /proc/self/maps here")
    f = jax.jit(lambda x: jnp.tanh(x @ x.T).sum())
    backend("jax").release(force=True)
    before = backends._mapping_count()
    for n in range(1, 41):
        f(jnp.ones((n, 3))).block_until_ready()
    compiled = backends._mapping_count()
    assert f._cache_size() == 40
    assert compiled > before + 40  # every executable holds mappings of its own
    assert backend("jax").release(force=True)
    assert f._cache_size() == 0
    assert backends._mapping_count() < compiled - 40


@needs_jax
def test_release_only_when_mappings_pass_half_the_limit(monkeypatch):
    import jax
    import jax.numpy as jnp

    from relpos.equivalence import backends

    f = jax.jit(lambda x: x * 2)
    f(jnp.ones(3)).block_until_ready()
    monkeypatch.setattr(backends, "_mapping_limit", lambda: 1000)
    monkeypatch.setattr(backends, "_mapping_count", lambda: 500)
    assert not backend("jax").release()
    assert f._cache_size() == 1
    monkeypatch.setattr(backends, "_mapping_count", lambda: 501)
    assert backend("jax").release()
    assert f._cache_size() == 0


@pytest.mark.parametrize("impl", jax_params[:1])
def test_backend_calls_look_at_the_mappings_periodically(impl, monkeypatch):
    from relpos.equivalence import backends

    looks = []
    monkeypatch.setattr(backends, "_crowded", lambda: looks.append(1) or False)
    adapter = backend("jax")
    args = _args(impl)
    for _ in range(2 * adapter.CHECK_EVERY):
        adapter.call(impl.load(), args, "float32")
    assert len(looks) == 2
