"""A float16 NaN where the oracle is finite is a finding, and when the logits before their
scale pass float16's range the finding says so: the usual cause, a product scaled only
afterwards."""

from __future__ import annotations

import numpy as np
import pytest

from relpos.equivalence.backends import Outputs
from relpos.equivalence.compare import Verdict
from relpos.equivalence.draws import Draw
from relpos.equivalence.properties import _explained
from relpos.equivalence.reference import expected, overflow_note
from relpos.equivalence.runner import PropertyFailure
from relpos.equivalence.targets import reproduce_target

pytest.importorskip("torch")

HERE = "tests.targets.hostile"


def _draw(values, seed=1):
    dims = {"bsz": 1, "n_head": 2, "qlen": 4, "mlen": 0, "d_head": 256}
    return Draw("shaw", dims, {"clip": (-2, 2)}, values=values, seed=seed)


def _peak_before_scale(draw):
    want = expected("shaw", draw.arguments("float16"))
    return want.peak_logit / want.scale, want


def test_the_large_draw_passes_float16_before_its_scale_only():
    unscaled, want = _peak_before_scale(_draw("large"))
    assert want.peak_logit < 65504 < unscaled
    note = overflow_note(want, "float16")
    assert "beyond float16's largest finite 65504" in note
    assert overflow_note(want, "bfloat16") == overflow_note(want, "float32") == ""


def test_a_target_that_scales_after_the_product_is_told_why_it_is_nan():
    with pytest.raises(PropertyFailure) as failure:
        reproduce_target(
            f"{HERE}:scales_after_the_product", "shaw", "shaw", "oracle", "float16", _draw("large")
        )
    message = str(failure.value)
    assert "= nan at" in message
    assert "|logit| / scale reaches" in message and "a product scaled only afterwards" in message


def test_the_same_draw_passes_on_code_that_scales_first():
    reproduce_target(f"{HERE}:correct", "shaw", "shaw", "oracle", "float16", _draw("large"))
    # and a NaN the logits do not explain carries no such note
    assert overflow_note(_peak_before_scale(_draw("normal"))[1], "float16") == ""


def test_a_finite_wrong_weight_is_explained_only_in_a_row_that_overflows():
    # An infinite product beside finite ones takes or loses the whole row, so the weights come
    # out finite and wrong (a masked key can take weight 1). Only the rows whose logits pass
    # float16's range before the scale carry the note; a wrong value elsewhere is a bug.
    def wanted(values):
        dims = {"bsz": 1, "n_head": 3, "qlen": 2, "mlen": 0, "d_head": 8}
        draw = Draw("shaw", dims, {"clip": (-1, 1)}, mask="random_2d", values=values, seed=67434)
        return expected("shaw", draw.arguments("float16"))

    def told(want, row):
        got = Outputs(out=want.out, probs=want.probs, scores=None)
        (verdict,) = _explained(
            [Verdict(False, 3.0, (*row, 1), "probs off", "bound")], got, want, "float16"
        )
        return verdict.message

    limit, normal = wanted("limit"), wanted("normal")
    unscaled = limit.row_peaks / limit.scale
    over = tuple(int(i) for i in np.argwhere(unscaled > 65504)[0])
    under = tuple(int(i) for i in np.argwhere(unscaled < 65504)[0])
    assert limit.peak_logit < 65504
    assert "|logit| / scale in query row" in overflow_note(limit, "float16", row=over)
    assert "|logit| / scale" not in overflow_note(limit, "float16", row=under)
    assert told(limit, over).endswith("so a product scaled only afterwards overflows")
    assert told(normal, over) == "probs off"


def test_terms_that_overflow_in_opposite_directions_are_told_apart_from_the_logits():
    # q k = -278615 and q rel_k = 221192.5 each pass float16's range, and their sum -57422.5
    # fits: code that forms the content term alone overflows although score and scale do not.
    draw = Draw(
        "shaw",
        {"bsz": 1, "n_head": 1, "qlen": 1, "mlen": 0, "d_head": 1},
        {"clip": (0, 0)},
        values="limit",
        seed=0,
    )
    want = expected("shaw", draw.arguments("float16"))
    assert want.scale == 1 and want.peak_logit < 65504 < want.magnitude_scores.max()
    with pytest.raises(PropertyFailure) as failure:
        reproduce_target(
            f"{HERE}:scales_after_the_product", "shaw", "shaw", "oracle", "float16", draw
        )
    message = str(failure.value)
    assert "= nan at" in message and "|logit| / scale" not in message
    assert "terms formed in float16 may overflow though their sum fits" in message
