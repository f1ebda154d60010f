"""The calling contract of every implementation: the spec's argument names and defaults, the
bad-input table's errors before any computation, and the registry itself."""

from __future__ import annotations

import inspect

import pytest

from relpos.equivalence.backends import backend
from relpos.impls import BACKENDS, registry
from relpos.spec import ENCODINGS, ArgumentError, get_encoding
from tests.bad_inputs import BAD_INPUTS
from tests.conftest import implementation_params


def test_registry_has_a_reference_and_a_fast_variant_of_every_encoding_per_backend():
    ids = {impl.id for impl in registry()}
    for encoding in ENCODINGS:
        for b in BACKENDS:
            assert {f"{b}-{encoding}-reference", f"{b}-{encoding}-fast"} <= ids


def test_backend_adapters_match_the_registry_backends():
    from relpos.equivalence.backends import backends

    assert [b.name for b in backends()] == list(BACKENDS)


@pytest.mark.parametrize("impl", implementation_params())
def test_signature_is_the_spec_signature(impl):
    enc = get_encoding(impl.encoding)
    params = inspect.signature(impl.load()).parameters
    spec_names = [t.name for t in enc.tensors] + [o.name for o in enc.options]
    assert set(params) == {*spec_names, "with_weights"}
    assert list(params)[:3] == ["q", "k", "v"]
    assert all(p.kind is inspect.Parameter.KEYWORD_ONLY for p in list(params.values())[3:])
    for t in enc.tensors[3:]:
        assert params[t.name].default is None, t.name  # required ones are checked by validate
    for o in enc.options:
        assert params[o.name].default == o.default, o.name


@pytest.mark.parametrize("impl", implementation_params())
def test_an_unknown_keyword_is_named_by_the_spec(impl):
    """The validating decorator hands keywords the signature does not name to the spec, which
    lists the encoding's arguments (not Python's bare TypeError)."""
    from relpos.spec._cases import case_inputs

    enc = get_encoding(impl.encoding)
    args = case_inputs(enc, enc.cases()[0])
    with pytest.raises(ArgumentError, match=r"clamp_length.*is not an argument of") as caught:
        backend(impl.backend).call(impl.load(), {**args, "clamp_length": 4}, "float32")
    assert caught.value.argument == "clamp_length"


@pytest.mark.parametrize("impl", implementation_params())
def test_every_option_is_accepted(impl):
    """Each option of the spec takes each of its values in some golden case, and every case
    runs (agreement with the oracle is checked in test_against_oracle)."""
    from relpos.spec._cases import case_inputs

    enc = get_encoding(impl.encoding)
    seen: dict[str, set] = {o.name: set() for o in enc.options}
    for case in enc.cases():
        args = case_inputs(enc, case)
        backend(impl.backend).call(impl.load(), args, "float32")
        for name, value in case.options.items():
            seen[name].add(repr(value))
    assert all(values for name, values in seen.items()), seen


@pytest.mark.parametrize(
    ("impl", "bad"),
    [
        pytest.param(p.values[0], bad, id=f"{p.id}-{bad.id}", marks=p.marks)
        for p in implementation_params()
        for bad in BAD_INPUTS
        if bad.encoding == p.values[0].encoding
    ],
)
def test_bad_input_raises_the_spec_error(impl, bad):
    converted = backend(impl.backend).convert(bad.args(), "float64")
    positional = [converted.pop(n) for n in ("q", "k", "v")]
    with pytest.raises(ArgumentError) as info:
        impl.load()(*positional, **converted)
    assert str(info.value) == bad.message


@pytest.mark.parametrize("impl", implementation_params())
def test_an_array_of_another_framework_is_refused_with_what_is_taken(impl):
    """A torch implementation given numpy arrays, or a JAX one given torch tensors, raises
    the spec's ArgumentError naming the argument and what it takes, not a framework error
    from deep inside the body."""
    from relpos.spec import get_encoding
    from relpos.spec._cases import case_inputs

    enc = get_encoding(impl.encoding)
    args = case_inputs(enc, next(iter(enc.cases())))
    converted = backend(impl.backend).convert(args, "float64")
    if impl.backend == "torch":
        converted["q"], kind, taken = args["q"], "numpy.ndarray", "a torch.Tensor"
    else:
        torch = pytest.importorskip("torch")
        converted["q"], kind = torch.from_numpy(args["q"]), "torch.Tensor"
        taken = "a jax.Array or a numpy array"
    positional = [converted.pop(n) for n in ("q", "k", "v")]
    with pytest.raises(ArgumentError) as info:
        impl.load()(*positional, **converted)
    assert str(info.value).startswith(f"`q` must be {taken}")
    assert str(info.value).endswith(f"got q of type {kind}")


def _as_numpy_scalars(args):
    """Every int, float and bool option (and clip's pair) as the numpy scalar of that type."""
    import numpy as np

    def scalar(value):
        if isinstance(value, bool):
            return np.bool_(value)
        if isinstance(value, int):
            return np.int64(value)
        if isinstance(value, float):
            return np.float64(value)
        if isinstance(value, tuple):
            return tuple(scalar(v) for v in value)
        return value

    return {name: scalar(value) for name, value in args.items()}


@pytest.mark.parametrize("impl", implementation_params())
def test_numpy_scalar_options_are_the_numbers_they_equal(impl):
    import numpy as np

    from relpos.spec import evaluate, get_encoding
    from relpos.spec._cases import case_inputs

    enc = get_encoding(impl.encoding)
    args = case_inputs(enc, next(iter(enc.cases())))
    args = {**{o.name: o.default for o in enc.options}, **args}  # every option, explicitly
    args["scale"] = args["scale"] or 0.25  # a float option in every encoding
    numpy_args = _as_numpy_scalars(args)
    assert any(isinstance(v, np.generic | tuple) for v in numpy_args.values())
    b = backend(impl.backend)
    plain, scalars = (b.call(impl.load(), a, "float64") for a in (args, numpy_args))
    assert np.array_equal(plain.out, scalars.out) and np.array_equal(plain.probs, scalars.probs)
    oracle = evaluate(impl.encoding, **numpy_args).as_float64("out")
    assert np.array_equal(oracle, evaluate(impl.encoding, **args).as_float64("out"))


@pytest.mark.parametrize("impl", implementation_params(backend="torch"))
@pytest.mark.parametrize("which", ["q", "k"])
def test_a_tensor_without_data_is_refused(impl, which):
    """A meta tensor holds no data: torch's fast paths would otherwise return uninitialised
    memory. Every torch implementation names the argument and its device."""
    from relpos.spec import get_encoding
    from relpos.spec._cases import case_inputs

    enc = get_encoding(impl.encoding)
    converted = backend("torch").convert(case_inputs(enc, next(iter(enc.cases()))), "float64")
    converted[which] = converted[which].to("meta")
    positional = [converted.pop(n) for n in ("q", "k", "v")]
    with pytest.raises(ArgumentError) as info:
        impl.load()(*positional, **converted)
    assert str(info.value) == (
        f"`{which}` must hold data (a tensor on meta has none), got {which} on device meta"
    )


class _Placed:
    """A stand-in tensor that says which device it is on."""

    dtype = "float32"

    def __init__(self, device):
        self.device = device


def test_a_tensor_on_another_device_than_the_first_is_refused():
    """The device rule on its own (one CPU has one device): every tensor on the device of the
    first placed one, and a device that the framework places itself never a mismatch."""
    from relpos.impls._validated import Framework, guarded
    from relpos.spec import Problem

    framework = Framework(
        accepts=lambda t: isinstance(t, _Placed),
        kind="placed",
        first_nonfinite=lambda t: None,
        device=lambda t: t.device,
        dataless=frozenset({"meta"}),
        is_half=lambda t: False,
        to_float32=lambda t: t,
        cast=lambda t, dtype: t,
    )
    body = guarded(framework)(lambda problem: "ran")

    def problem(**devices):
        tensors = {name: _Placed(device) for name, device in devices.items()}
        return Problem("shaw", {}, {}, tensors)

    assert body(problem(q="cuda:0", k="cuda:0", v="cuda:0")) == "ran"
    assert body(problem(q="cuda:0", k=None, v="cuda:0")) == "ran"
    with pytest.raises(ArgumentError) as info:
        body(problem(q="cuda:0", k="cuda:0", v="cpu"))
    assert str(info.value) == "`v` must be on q's device cuda:0, got v on device cpu"
