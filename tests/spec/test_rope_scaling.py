"""The RoPE scaling variants of the spec: exact values tied to their formulas, and bad
parameters refused with the argument, its value and what is allowed."""

from __future__ import annotations

import pytest
import sympy as sp

from relpos.spec import ArgumentError
from relpos.spec.rope_scaling import VARIANTS, exact, frequencies

L0 = {"original_max_position_embeddings": 2048}


def test_default_is_the_papers_frequencies_exactly():
    got = frequencies("default", rotary_dim=8, base=10000)
    assert got.inverse == tuple(sp.Integer(10000) ** sp.Rational(-2 * t, 8) for t in range(4))
    assert got.attention_factor == 1


def test_a_float_parameter_is_the_rational_it_denotes():
    assert exact(0.1) == sp.Rational(3602879701896397, 36028797018963968)
    got = frequencies("linear", rotary_dim=2, base=2.5, factor=0.1)
    assert got.inverse == (1 / exact(0.1),)


def test_dynamic_grows_the_base_past_the_original_length_only():
    short = frequencies("dynamic", rotary_dim=8, base=10000, seq_len=2048, factor=4, **L0)
    long = frequencies("dynamic", rotary_dim=8, base=10000, seq_len=4096, factor=4, **L0)
    assert short.inverse == frequencies("default", rotary_dim=8, base=10000).inverse
    grown = 10000 * (sp.Integer(4) * 4096 / 2048 - 3) ** sp.Rational(8, 6)
    assert long.base == grown
    assert all(a < b for a, b in zip(long.inverse[1:], short.inverse[1:], strict=True))


def test_yarn_interpolates_the_slow_pairs_and_keeps_the_fast_ones():
    got = frequencies("yarn", rotary_dim=64, base=10000, factor=8, **L0)
    theta = frequencies("default", rotary_dim=64, base=10000).inverse
    assert got.inverse[0] == theta[0]  # many turns over L0: extrapolated
    assert sp.simplify(got.inverse[-1] - theta[-1] / 8) == 0  # under one turn: interpolated
    assert got.attention_factor == sp.Rational(1, 10) * sp.log(8) + 1


def test_yarn_attention_factor_is_applied_once_and_an_explicit_one_wins():
    pair = frequencies("yarn", rotary_dim=8, factor=40, mscale=0.707, mscale_all_dim=0.707, **L0)
    assert pair.attention_factor == 1
    given = frequencies("yarn", rotary_dim=8, factor=40, attention_factor=0.5, **L0)
    assert given.attention_factor == sp.Rational(1, 2)


def test_longrope_switches_factors_past_the_original_length():
    kw = {"short_factor": [1, 1], "long_factor": [2, 4], "max_position_embeddings": 8192, **L0}
    theta = frequencies("default", rotary_dim=4).inverse
    at = {n: frequencies("longrope", rotary_dim=4, seq_len=n, **kw).inverse for n in (2048, 2049)}
    assert at[2048] == theta
    assert at[2049] == (theta[0] / 2, theta[1] / 4)
    factor = frequencies("longrope", rotary_dim=4, **kw).attention_factor
    assert factor == sp.sqrt(1 + sp.log(4) / sp.log(2048))


def test_proportional_takes_its_exponent_from_head_dim():
    got = frequencies("proportional", rotary_dim=4, head_dim=16)
    assert got.inverse == (1, sp.Integer(10000) ** sp.Rational(-2, 16))


@pytest.mark.parametrize(
    ("call", "argument", "words"),
    [
        ({"rope_type": "ntk"}, "rope_type", "must be one of default, linear"),
        ({"rope_type": "linear"}, "factor", "is required by rope_type 'linear'"),
        ({"rope_type": "linear", "factor": 0}, "factor", "finite number > 0"),
        ({"rope_type": "default", "factor": 2}, "factor", "is not a parameter of rope_type"),
        ({"rope_type": "default", "rotary_dim": 3}, "rotary_dim", "even integer >= 2"),
        ({"rope_type": "default", "base": 1}, "base", "finite number > 1"),
        ({"rope_type": "default", "seq_len": 0}, "seq_len", "integer >= 1"),
        ({"rope_type": "dynamic", "rotary_dim": 2, "factor": 2, **L0}, "rotary_dim", ">= 4"),
        ({"rope_type": "yarn", "factor": 2, "truncate": 1, **L0}, "truncate", "True or False"),
        (
            {"rope_type": "llama3", "factor": 8, "high_freq_factor": 1, **L0},
            "high_freq_factor",
            "must exceed low_freq_factor",
        ),
        (
            {"rope_type": "longrope", "short_factor": [1], "long_factor": [1, 2], **L0},
            "short_factor",
            "r/2 = 2 factors",
        ),
        (
            {"rope_type": "longrope", "short_factor": [1, 1], "long_factor": [1, 2], **L0},
            "factor",
            "must be given",
        ),
        ({"rope_type": "proportional", "head_dim": 2}, "rotary_dim", "must not exceed head_dim"),
    ],
)
def test_bad_parameters_are_named(call, argument, words):
    call = {"rotary_dim": 4, **call}
    with pytest.raises(ArgumentError, match=words) as caught:
        frequencies(**call)
    assert caught.value.argument == argument


def test_spec_show_prints_every_variant_with_its_source():
    from relpos.spec.render import show

    sheet = show("rope")
    assert list(VARIANTS) == [
        "default",
        "linear",
        "dynamic",
        "yarn",
        "longrope",
        "llama3",
        "proportional",
    ]
    for v in VARIANTS.values():
        assert f"  {v.name}: {v.summary}" in sheet
        assert f"source: {v.citation}" in sheet


def test_the_variant_identities_fail_on_a_planted_spec_bug(monkeypatch):
    from relpos.spec import rope_scaling
    from relpos.spec.encodings import get

    def every_band_divided(r, b, L0, params):
        return rope_scaling.RopeFrequencies(
            "llama3",
            tuple(t / exact(params["factor"]) for t in rope_scaling._default(b, r)),
            sp.Integer(1),
            b,
            exact(params["factor"]),
        )

    monkeypatch.setattr(rope_scaling, "_llama3", every_band_divided)
    proofs = {i.name: i.prove() for i in get("rope").identities()}
    failed = proofs["llama3 keeps high and divides low frequencies"]
    assert not failed.proved and "high-frequency pair 0 changed" in failed.detail
    assert proofs["yarn at factor 1 is default"].proved


def test_yarn_ramp_where_the_clipped_bounds_cross():
    # r = 2, base 10, L0 2048: low = d(32) = ln(2048 / (64 pi)) / ln 10 > 1 = r - 1 >= high, so
    # (t - low) / (high - low) at t = 0 is low / (low - 1) > 1, clipped to 1: interpolated
    got = frequencies("yarn", rotary_dim=2, base=10.0, factor=2, truncate=False, **L0)
    low = sp.log(sp.Integer(2048) / (64 * sp.pi)) / sp.log(10)
    assert sp.N(low, 30) > 1
    assert got.inverse == (sp.Rational(1, 2),)


def test_mrope_axes_follow_each_layout():
    from relpos.spec.rope_scaling import mrope_angles, mrope_axes

    assert mrope_axes(16, (2, 3, 3)) == (0, 0, 1, 1, 1, 2, 2, 2)
    assert mrope_axes(16, (4, 2, 2), "interleaved") == (0, 1, 2, 0, 1, 2, 0, 0)
    inverse = frequencies("default", rotary_dim=4).inverse
    assert mrope_angles(inverse, (3, 5, 7), (1, 0, 1)) == (3 * inverse[0], 7 * inverse[1])


@pytest.mark.parametrize(
    ("call", "argument", "words"),
    [
        ((8, (1, 1, 1)), "mrope_section", "must sum to r/2 = 4"),
        ((8, (4, 0)), "mrope_section", "three integers"),
        ((8, (0, 4, 0), "interleaved"), "mrope_section", "fit the interleaved layout"),
        ((8, (2, 1, 1), "zigzag"), "layout", "sectioned, interleaved"),
    ],
)
def test_bad_mrope_sections_are_named(call, argument, words):
    from relpos.spec.rope_scaling import mrope_axes

    with pytest.raises(ArgumentError, match=words) as caught:
        mrope_axes(*call)
    assert caught.value.argument == argument


def test_dynamic_at_long_lengths_and_wide_rotations_is_exact():
    """A growth of 96417/512 over 38 pairs: SymPy's own evaluation of its powers looked for
    perfect powers in integers too large for a float, and overflowed."""
    got = frequencies(
        "dynamic",
        rotary_dim=76,
        base=10000.0,
        seq_len=100001,
        factor=8.0,
        original_max_position_embeddings=4096,
    )
    growth = sp.Rational(8 * 100001, 4096) - 7
    grown = 10000 * growth ** (sp.Float(76, 50) / 74)
    inverse, _ = got.floats()
    for t, value in enumerate(inverse):
        want = float(sp.N(grown ** (sp.Rational(-2 * t, 76)), 30))
        assert value == pytest.approx(want, rel=1e-15, abs=0)
    assert float(got.base) == pytest.approx(float(grown), rel=1e-15)


def test_axial_pairs_follow_each_layout():
    """r = 8, base 10000: two pairs per axis. split: each axis 1D RoPE of width 4, theta
    10000^0 and 10000^(-1/2); alternating: width 8's theta_j = 10000^(-j/4), the row the even
    j, the column the odd j."""
    from relpos.spec.rope_scaling import axial_angles, axial_pairs

    b = sp.Integer(10000)
    assert axial_pairs(8) == (
        (0, 1),
        (0, b ** sp.Rational(-1, 2)),
        (1, 1),
        (1, b ** sp.Rational(-1, 2)),
    )
    assert axial_pairs(8, layout="alternating") == (
        (0, 1),
        (0, b ** sp.Rational(-1, 2)),
        (1, b ** sp.Rational(-1, 4)),
        (1, b ** sp.Rational(-3, 4)),
    )
    assert axial_angles(8, (3, 5), layout="alternating")[2] == 5 * b ** sp.Rational(-1, 4)


@pytest.mark.parametrize(
    ("call", "argument", "words"),
    [
        ({"rotary_dim": 6}, "rotary_dim", "multiple of 4"),
        ({"rotary_dim": 0}, "rotary_dim", "multiple of 4"),
        ({"rotary_dim": 8, "layout": "mixed"}, "layout", "split, alternating"),
        ({"rotary_dim": 8, "base": 1}, "base", "finite number > 1"),
    ],
)
def test_bad_axial_calls_are_named(call, argument, words):
    from relpos.spec.rope_scaling import axial_pairs

    with pytest.raises(ArgumentError, match=words) as caught:
        axial_pairs(**call)
    assert caught.value.argument == argument


def test_a_bad_axial_position_is_named():
    from relpos.spec.rope_scaling import axial_angles

    with pytest.raises(ArgumentError, match="two integers") as caught:
        axial_angles(8, (1, 2, 3))
    assert caught.value.argument == "position"


def test_the_axial_identity_fails_on_a_planted_spec_bug(monkeypatch):
    """The column taking the row's (even) frequencies in the alternating layout, as the
    split layout does: the identity that ties each axis to 1D RoPE fails."""
    from relpos.spec import rope_scaling
    from relpos.spec.encodings import get

    honest = rope_scaling.axial_pairs

    def column_on_even(rotary_dim, base=10000, layout="split"):
        return honest(rotary_dim, base, "split")

    monkeypatch.setattr(rope_scaling, "axial_pairs", column_on_even)
    proofs = {i.name: i.prove() for i in get("rope").identities()}
    failed = proofs["2D axial RoPE is 1D RoPE per axis"]
    assert not failed.proved, failed.detail
    assert "fails at (4, 10000, 'alternating'): patch (0, 1)" in failed.detail


def test_mrope_position_ids_follow_the_paper_by_hand():
    """Two text tokens, a video of 4 temporal steps over a 2 x 2 grid, a text token, then two
    generated: the video starts at 2 (T 2..5, H and W 2..3), the text after it at its
    largest id + 1 = 6, and generation goes on from 7 on every axis."""
    from relpos.spec.rope_scaling import mrope_position_ids

    got = mrope_position_ids([("text", 2), ("video", (4, 2, 2)), ("text", 1)], generated=2)
    video_t = [2] * 4 + [3] * 4 + [4] * 4 + [5] * 4
    video_h = [2, 2, 3, 3] * 4
    video_w = [2, 3, 2, 3] * 4
    assert got == [
        [0, 1, *video_t, 6, 7, 8],
        [0, 1, *video_h, 6, 7, 8],
        [0, 1, *video_w, 6, 7, 8],
    ]
    # an image is one temporal step; its largest id is on its longer side
    image = mrope_position_ids([("image", (1, 1, 3))], generated=1)
    assert image == [[0, 0, 0, 3], [0, 0, 0, 3], [0, 1, 2, 3]]
    # a temporal interval spaces (and floors) the temporal ids
    spaced = mrope_position_ids([("video", (3, 1, 1))], temporal_interval=1.5)
    assert spaced == [[0, 1, 3], [0, 0, 0], [0, 0, 0]]


@pytest.mark.parametrize(
    ("call", "argument", "words"),
    [
        ({"segments": []}, "segments", "non-empty list"),
        ({"segments": [("audio", 3)]}, "segments", "kind among text, image, video"),
        ({"segments": [("text", 0)]}, "segments", "integer n >= 1"),
        ({"segments": [("image", (2, 1, 1))]}, "segments", "t = 1"),
        ({"segments": [("video", (1, 0, 2))]}, "segments", "integers >= 1"),
        ({"segments": [("text", 1)], "generated": -1}, "generated", "integer >= 0"),
        ({"segments": [("text", 1)], "temporal_interval": 0}, "temporal_interval", "> 0"),
    ],
)
def test_bad_multimodal_sequences_are_named(call, argument, words):
    from relpos.spec.rope_scaling import mrope_position_ids

    with pytest.raises(ArgumentError, match=words) as caught:
        mrope_position_ids(**call)
    assert caught.value.argument == argument
