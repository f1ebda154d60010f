"""The strategies reject bad arguments and draw only valid inputs."""

from __future__ import annotations

import pytest
from hypothesis import find, given, settings
from hypothesis.errors import InvalidArgument

from relpos.equivalence.draws import Draw
from relpos.equivalence.strategies import SIZES, dimensions, draws, mask_kinds, value_kinds
from relpos.spec import ENCODINGS, validate


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


@settings(max_examples=30, database=None)
@given(dimensions("rope", multiple_of={"d_head": 2, "qlen": 3}))
def test_multiple_of_draws_only_multiples(dims):
    assert dims["d_head"] % 2 == 0 and 2 <= dims["d_head"] <= SIZES["oracle"]["d_head"][1]
    assert dims["qlen"] % 3 == 0


@pytest.mark.parametrize("size", list(SIZES))
@pytest.mark.parametrize("encoding", list(ENCODINGS))
def test_draws_are_valid_in_every_dtype(encoding, size):
    @settings(max_examples=15, database=None)
    @given(draws(encoding, size))
    def valid(draw):
        lo = SIZES[size]
        for name, (smallest, largest) in lo.items():
            assert smallest <= draw.dims[name] <= largest
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
