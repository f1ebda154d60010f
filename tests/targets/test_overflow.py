"""A float16 NaN where the oracle is finite is a finding, and when the logits before their
scale pass float16's range the finding says so: the usual cause, a product scaled only
afterwards."""

from __future__ import annotations

import pytest

from relpos.equivalence.draws import Draw
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
