"""The tolerance model and the properties catch planted bugs, and pass the same code without
them: a wrong distance sign, an off-by-one clip row, a missing scale, a float32 sinusoid in a
float64 run, swapped r_w_bias / r_r_bias, NaN for fully masked rows, a 1e-6 relative error in
float64 outputs."""

from __future__ import annotations

import pytest
from hypothesis import Phase, settings

from relpos.equivalence.profiles import load_profile
from relpos.equivalence.runner import run_property
from tests.meta import planted

torch = pytest.importorskip("torch")

# Finding the bug is the point here; shrinking it would only cost time.
FIND = settings(load_profile("ci"), phases=[Phase.generate])

CAUGHT_BY = {
    "sign": "oracle",
    "off_by_one": "oracle",
    "no_scale": "oracle",
    "nan_rows": "masked_rows",
    "relative_error": "oracle",
    "float32_sinusoid": "oracle",
    "swapped_biases": "oracle",
    "no_memory_offset": "memory_rows",
}


@pytest.mark.parametrize(
    ("make", "bug"),
    [(planted.shaw, b) for b in planted.SHAW_BUGS] + [(planted.xl, b) for b in planted.XL_BUGS],
)
def test_planted_bug_is_caught(make, bug):
    result = run_property(CAUGHT_BY[bug], make(bug), "float64", profile=FIND)
    assert result.status == "fail", result
    assert "repro:" in result.message and "reproduce(" in result.repro


@pytest.mark.parametrize("make", [planted.shaw, planted.xl])
@pytest.mark.parametrize("prop", ["oracle", "masked_rows", "translation"])
def test_without_the_bug_it_passes(make, prop):
    result = run_property(prop, make(None), "float64", profile="ci")
    assert result.status == "pass", result.message
