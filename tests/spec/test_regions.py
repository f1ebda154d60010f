"""The regions each encoding reports for coverage, at their boundaries."""

from __future__ import annotations

import numpy as np
import pytest

from relpos import spec


def _regions(encoding, qlen=4, mlen=0, n_head=1, d_head=4, **options):
    rng = np.random.default_rng(0)
    enc = spec.get_encoding(encoding)
    q = rng.standard_normal((1, n_head, qlen, d_head))
    k = v = rng.standard_normal((1, n_head, qlen + mlen, d_head))
    extra = {
        "shaw": lambda: {
            "rel_k": rng.standard_normal((options["clip"][1] - options["clip"][0] + 1, d_head))
        },
        "t5": lambda: {"rel_bias": rng.standard_normal((options["num_buckets"], n_head))},
        "xl": lambda: {
            "w_r": rng.standard_normal((n_head, d_head, 4)),
            "r_w_bias": rng.standard_normal((n_head, d_head)),
            "r_r_bias": rng.standard_normal((n_head, d_head)),
        },
        "deberta": lambda: {"pos_key": rng.standard_normal((2 * options["span"], d_head))},
    }.get(encoding, dict)()
    problem = enc.validate({"q": q, "k": k, "v": v, **extra, **options}, check_dtypes=False)
    return enc.regions(problem)


@pytest.mark.parametrize(
    ("clip", "expected"),
    [
        ((-2, 2), {"inside the clip", "clipped below", "clipped above"}),
        ((-3, 3), {"inside the clip"}),
        ((0, 3), {"inside the clip", "clipped below"}),
    ],
)
def test_shaw_clip_regions(clip, expected):
    assert _regions("shaw", clip=clip) == expected  # distances -3 .. 3


def test_t5_bucket_regions():
    # 8 buckets both ways: N = 4, E = 2; distances |n| <= 3 (+ memory)
    assert _regions("t5", num_buckets=8, max_distance=6) == {"exact buckets", "log buckets"}
    assert _regions("t5", mlen=4, num_buckets=8, max_distance=6) == {
        "exact buckets",
        "log buckets",
        "beyond max_distance",
    }
    assert _regions("t5", qlen=2, num_buckets=8, max_distance=6) == {"exact buckets"}


def test_xl_clamp_regions():
    assert _regions("xl", d_model=4) == {"no clamp"}
    assert _regions("xl", d_model=4, clamp_len=3) == {"inside the clamp"}
    assert _regions("xl", d_model=4, clamp_len=2) == {"inside the clamp", "clamped"}


def test_deberta_and_others():
    assert _regions("deberta", span=4) == {"inside the span"}
    assert _regions("deberta", span=2) == {"inside the span", "clipped"}
    assert "log buckets" in _regions("deberta", mlen=8, span=4, max_position=8)
    assert _regions("alibi", n_head=3) == {"paper rule, heads not a power of two"}
    assert _regions("rope", d_head=6, rotary_dim=2) == {"partial rotary"}
