"""The strategies reject bad arguments and draw only valid inputs."""

from __future__ import annotations

import numpy as np
import pytest
from hypothesis import find, given, settings
from hypothesis import strategies as st
from hypothesis.errors import InvalidArgument

from relpos.equivalence.draws import Draw
from relpos.equivalence.strategies import (
    KLEN_MAX,
    REACH,
    SIZES,
    dimensions,
    draws,
    mask_kinds,
    value_kinds,
)
from relpos.spec import ENCODINGS, float_logits, validate


def first(strategy):
    return find(strategy, lambda _: True, settings=settings(database=None))


@pytest.mark.parametrize(
    ("make", "message"),
    [
        (
            lambda: first(draws("nope")),
            "encoding='nope' must be one of " + ", ".join(repr(n) for n in ENCODINGS),
        ),
        (lambda: first(draws("shaw", "huge")), "size='huge' must be one of"),
        (
            lambda: first(dimensions("shaw", at_least={"bsz": 9})),
            "at_least['bsz']=9 exceeds the oracle maximum 3",
        ),
        (
            lambda: first(dimensions("shaw", at_least={"heads": 2})),
            "at_least names unknown dimensions ['heads']",
        ),
        (
            lambda: first(dimensions("shaw", multiple_of={"d_head": 0})),
            "multiple_of must map dimensions to integers >= 1, got {'d_head': 0}",
        ),
        (
            lambda: first(dimensions("shaw", at_most={"d_head": 1}, multiple_of={"d_head": 2})),
            "d_head: no multiple of 2 in [1, 1]",
        ),
        (lambda: first(mask_kinds(["diagonal"])), "mask kinds must be a non-empty subset"),
        (lambda: first(mask_kinds([])), "mask kinds must be a non-empty subset"),
        (lambda: first(value_kinds(["huge"])), "value kinds must be a non-empty subset"),
    ],
)
def test_bad_arguments_are_rejected(make, message):
    with pytest.raises(InvalidArgument, match=message.replace("[", r"\[").replace("]", r"\]")):
        make()


def _largest(size, name):
    return max(SIZES[size][name][1], REACH.get(size, {}).get(name, (0, 0))[1])


@settings(max_examples=30, database=None)
@given(dimensions("rope", multiple_of={"d_head": 2, "qlen": 3}))
def test_multiple_of_draws_only_multiples(dims):
    assert dims["d_head"] % 2 == 0 and 2 <= dims["d_head"] <= _largest("oracle", "d_head")
    assert dims["qlen"] % 3 == 0


@pytest.mark.parametrize("size", list(REACH))
@pytest.mark.parametrize(
    ("axis", "beyond"), [("qlen", 256), ("mlen", 512), ("n_head", 12), ("d_head", 64)]
)
def test_draws_reach_long_sequences_memories_many_and_wide_heads(size, axis, beyond):
    found = find(
        dimensions("t5", size),
        lambda d: d[axis] > beyond,
        settings=settings(max_examples=5000, database=None),
    )
    # one axis grown at a time, the others small; klen within bounds
    small = {n for n, (_, hi) in SIZES[size].items() if found[n] > hi}
    assert small == {axis}, found
    assert found["qlen"] + found["mlen"] <= KLEN_MAX


def test_grown_draws_keep_at_least_and_at_most():
    found = find(
        dimensions("shaw", at_least={"bsz": 2, "mlen": 1}, at_most={"mlen": 40}),
        lambda d: d["qlen"] > 100,
        settings=settings(max_examples=5000, database=None),
    )
    assert found["bsz"] >= 2 and 1 <= found["mlen"] <= 40


@pytest.mark.parametrize("size", list(SIZES))
@pytest.mark.parametrize("encoding", list(ENCODINGS))
def test_draws_are_valid_in_every_dtype(encoding, size):
    @settings(max_examples=15, database=None)
    @given(draws(encoding, size))
    def valid(draw):
        for name, (smallest, _) in SIZES[size].items():
            assert smallest <= draw.dims[name] <= _largest(size, name)
        assert draw.klen <= KLEN_MAX
        for dtype in ("float64", "bfloat16"):
            validate(encoding, draw.arguments(dtype), check_dtypes=False)

    valid()


@settings(max_examples=10, database=None)
@given(draws("xl"))
def test_draw_repr_is_a_repro(draw):
    assert eval(repr(draw), {"Draw": Draw}) == draw


def test_arguments_are_deterministic_and_representable():
    import numpy as np

    draw = Draw(
        "shaw",
        {"bsz": 1, "n_head": 2, "qlen": 3, "mlen": 1, "d_head": 4},
        {"clip": (-2, 2), "key_query": False, "scale": None},
        ("rel_v",),
        {"rel_k": 1},
        "random",
        "normal",
        7,
    )
    a, b = draw.arguments("bfloat16"), draw.arguments("bfloat16")
    assert all(np.array_equal(a[k], b[k]) for k in a if isinstance(a[k], np.ndarray))
    assert a["rel_k"].shape == (2, 5, 4)  # per head, P = 5 rows for clip (-2, 2)
    assert np.array_equal(a["q"].astype(np.float32).astype(np.float64), a["q"])


@pytest.mark.parametrize("encoding", ENCODINGS)
@settings(max_examples=10, deadline=None, database=None)
@given(data=st.data())
def test_limit_values_bring_the_largest_logit_near_float16s_range(encoding, data):
    """ "limit" draws: after rounding to float16 the largest |logit| is between 50% and 98%
    of 65504 (the fraction drawn in [0.55, 0.95], met to 2%; rounding the inputs moves the
    logits by well under 1%), so float16 holds every score."""
    draw = data.draw(draws(encoding, "oracle", values=("limit",)))
    args = draw.arguments("float16")
    peak = float(np.abs(float_logits(encoding, **args)).max())
    assert 0.5 * 65504 <= peak <= 0.98 * 65504, (draw, peak)


def test_limit_values_end_where_a_bias_alone_is_beyond_float16():
    """ALiBi at positions up to 2^17: the first head's bias alone passes float16's range, so no
    factor of the inputs brings every score in range; the draw still comes back (shrinking
    the factor towards zero never ended), with the inputs scaled down."""
    draw = Draw(
        "alibi",
        {"bsz": 1, "n_head": 16, "qlen": 4, "mlen": 0, "d_head": 1},
        {"causal": False, "signed": False, "slope_rule": "paper", "scale": None},
        values="limit",
        seed=4,
        positions="per_row",
    )
    args = draw.arguments("float64")
    bias_alone = {**args, **{name: 0 * args[name] for name in ("q", "k", "v")}}
    beyond = np.abs(float_logits("alibi", **bias_alone)).max()
    assert beyond > 0.97 * 65504, beyond  # the case this test exists for
    assert np.abs(float_logits("alibi", **args)).max() < 1.01 * beyond
    assert 0 < np.abs(args["q"]).max() < 1
