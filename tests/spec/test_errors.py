"""Every bad input raises ArgumentError with the documented text, before any computation."""

from __future__ import annotations

import numpy as np
import pytest

from relpos.spec import (
    ENCODINGS,
    ArgumentError,
    evaluate,
    get_encoding,
    gradients,
    magnitudes,
    validate,
)
from tests.bad_inputs import BAD_INPUTS


@pytest.mark.parametrize("bad", BAD_INPUTS, ids=lambda b: b.id)
def test_oracle_rejects_bad_input_with_the_documented_text(bad):
    with pytest.raises(ArgumentError) as info:
        evaluate(bad.encoding, **bad.args())
    assert str(info.value) == bad.message


@pytest.mark.parametrize("bad", BAD_INPUTS, ids=lambda b: b.id)
def test_validate_and_magnitudes_share_the_text(bad):
    for call in (
        lambda a: validate(bad.encoding, a, check_dtypes=False),
        lambda a: magnitudes(bad.encoding, **a),
    ):
        with pytest.raises(ArgumentError) as info:
            call(bad.args())
        assert str(info.value) == bad.message


def test_argument_error_is_a_value_error_naming_its_parts():
    bad = BAD_INPUTS[0]
    with pytest.raises(ValueError) as info:
        evaluate(bad.encoding, **bad.args())
    err = info.value
    assert (err.argument, err.got) == ("clip", "clip=(1, 2)")
    assert "p_min <= 0 <= p_max" in err.allowed


def test_unknown_encoding():
    known = ", ".join(repr(n) for n in ENCODINGS)
    with pytest.raises(ArgumentError, match=rf"`encoding` must be one of {known}, got 'nope'"):
        get_encoding("nope")


def test_gradient_weights_must_match_the_output():
    from relpos.spec._cases import case_inputs

    enc = get_encoding("shaw")
    args = case_inputs(enc, enc.cases()[0])
    with pytest.raises(
        ArgumentError,
        match=r"`weights` must have the shape of the output "
        r"\(1, 2, 4, 4\), got weights.shape=\(4,\)",
    ):
        gradients("shaw", np.ones(4), **args)


def test_strict_dtypes_for_implementations():
    """With check_dtypes (what implementations use), float tensors must share one dtype."""
    from relpos.spec._cases import case_inputs

    enc = get_encoding("shaw")
    args = case_inputs(enc, enc.cases()[0])
    args["k"] = args["k"].astype(np.float32)
    with pytest.raises(ArgumentError) as info:
        validate("shaw", args)
    assert str(info.value) == "`k` must have the same dtype as `q` (float64), got dtype float32"
    args["k"] = args["k"].astype(np.int64)
    with pytest.raises(
        ArgumentError,
        match="must have a floating dtype, one of float16, "
        "bfloat16, float32, float64, got dtype int64",
    ):
        validate("shaw", args)


def test_every_profile_name_is_unique_within_its_encoding():
    for name in ENCODINGS:
        names = [p.name for p in get_encoding(name).all_profiles()]
        assert len(set(names)) == len(names), names
        assert all(get_encoding(name).profile(n).name == n for n in names)


def test_registry_rejects_a_profile_named_like_the_encoding(monkeypatch):
    import dataclasses
    import sys
    import types

    from relpos.spec import encodings
    from relpos.spec.encodings.t5 import T5

    module = types.ModuleType("tests_clashing_encoding")

    class Clashing(T5):  # a library profile that would hide the spec's own
        profiles = (dataclasses.replace(T5.profiles[0], name="t5"),)

    Clashing.__module__ = module.__name__
    module.Clashing = Clashing
    monkeypatch.setitem(sys.modules, module.__name__, module)
    monkeypatch.setitem(encodings.ENCODINGS, "clashing", module.__name__)
    encodings.get.cache_clear()
    try:
        with pytest.raises(TypeError, match=r"unique .* got 't5' twice"):
            encodings.get("clashing")
    finally:
        encodings.get.cache_clear()
