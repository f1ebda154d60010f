"""Comparisons fail with the documented text and pass within the bound."""

from __future__ import annotations

import numpy as np

from relpos.equivalence.compare import compare

A = np.array([[1.0, 2.0], [3.0, -np.inf]])


def test_within_the_bound_passes_with_the_worst_ratio():
    v = compare("out", A + np.array([[1e-9, 0], [0, 0]]), A, np.full(A.shape, 4e-9), who="x")
    assert v.ok and v.message == "" and abs(v.worst_ratio - 0.25) < 1e-6


def test_beyond_the_bound_names_everything():
    got = A.copy()
    got[1, 0] = 3.5
    v = compare(
        "probs",
        got,
        A,
        np.full(A.shape, 0.1),
        who="torch-shaw-fast in float32",
        repro="reproduce(...)",
    )
    assert not v.ok and v.index == (1, 0)
    assert v.message == (
        "probs of torch-shaw-fast in float32 = 3.5 at [1, 0], but should be 3 (oracle) within "
        "0.1: error 0.5 is 5x the bound\nrepro:\nreproduce(...)"
    )


def test_nan_never_passes():
    got = A.copy()
    got[0, 1] = np.nan
    v = compare("out", got, A, np.full(A.shape, np.inf), who="x")
    assert (
        not v.ok and v.message == "out of x = nan at [0, 1], but should be 2 (oracle); 1 NaN in all"
    )


def test_masked_scores_must_be_minus_inf():
    got = A.copy()
    got[1, 1] = -1e30
    v = compare("scores", got, A, np.full(A.shape, 1e40), who="x", against="the other run")
    assert not v.ok and "= -1e+30 at [1, 1], but should be -inf (the other run)" in v.message


def test_shape_mismatch():
    v = compare("out", A[:1], A, A, who="x")
    assert not v.ok and v.message == "out of x has shape (1, 2), but should have (2, 2)"


def test_nan_on_both_sides_is_not_said_to_be_what_it_should_be():
    import numpy as np

    from relpos.equivalence.compare import compare

    verdict = compare("out", np.array([np.nan]), np.array([np.nan]), np.array([1.0]), who="x")
    assert not verdict.ok
    assert "but oracle is nan there too, and NaN never passes" in verdict.message
    assert "should be nan" not in verdict.message
