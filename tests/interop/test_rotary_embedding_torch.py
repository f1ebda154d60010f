"""rotary-embedding-torch (lucidrains) checked through its stateful adapter (tox environment
interop): one RotaryEmbedding per configuration, kept across calls as a model keeps it. What
these find are findings about the library; the tests pin them for the documentation."""

from __future__ import annotations

import pytest

from relpos.equivalence.draws import Draw
from relpos.equivalence.runner import PropertyFailure
from relpos.equivalence.targets import check_target, make_target, reproduce_target

pytest.importorskip("rotary_embedding_torch")
torch = pytest.importorskip("torch")
pytestmark = pytest.mark.interop

TARGET = "rotary_embedding_torch:RotaryEmbedding"
ADAPTER = "relpos.equivalence.adapters.rotary_embedding_torch:rotary_attention"
PROFILE = "rotary-embedding-torch"


def _target():
    return make_target(TARGET, encoding="rope", profile=PROFILE, adapter=ADAPTER)


def test_the_adapter_is_stateful():
    assert _target().stateful


def test_it_conforms_in_float32_on_the_value_properties():
    results = check_target(
        _target(),
        properties=["oracle", "masked_keys", "batch", "memory_rows", "chunked", "masked_rows"],
        dtypes=["float32"],
        budget="ci",
    )
    assert {r.status for r in results} <= {"pass", "skip"}, [r.message for r in results]


_ROUNDED = """
from relpos.equivalence.draws import Draw
from relpos.equivalence.runner import PropertyFailure
from relpos.equivalence.targets import reproduce_target

def draw(mlen):
    return Draw("rope", {{"bsz": 1, "n_head": 1, "qlen": 4, "mlen": mlen, "d_head": 8}},
                {{"base": 10000, "rotary_dim": None, "scale": None}}, values="normal", seed=1)

for klen in ({exact}, {exact} + 300):
    try:
        reproduce_target({target!r}, "rope", {profile!r}, "oracle", {dtype!r}, draw(klen - 4),
                         adapter={adapter!r})
        print(klen, "pass")
    except PropertyFailure as failure:
        print(klen, "fail", str(failure).splitlines()[1])
"""


@pytest.mark.parametrize(("dtype", "exact"), [("bfloat16", 256), ("float16", 2048)])
def test_half_types_rotate_by_positions_rounded_to_them(dtype, exact):
    """get_seq_pos builds positions in the input's dtype: exact up to 256 in bfloat16 (2048
    in float16), rounded past it, so the angles of later keys are wrong. In a process of its
    own, so that no earlier call's angle cache serves these lengths."""
    import subprocess
    import sys

    script = _ROUNDED.format(
        exact=exact, target=TARGET, profile=PROFILE, dtype=dtype, adapter=ADAPTER
    )
    done = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True)
    lines = done.stdout.splitlines()
    assert done.returncode == 0 and len(lines) == 2, done.stdout + done.stderr
    assert lines[0] == f"{exact} pass", done.stdout
    assert lines[1].startswith(f"{exact + 300} fail scores of torch-rope-RotaryEmbedding"), (
        done.stdout
    )


def test_float64_models_rotate_by_float32_angles():
    draw = Draw(
        "rope",
        {"bsz": 1, "n_head": 1, "qlen": 1, "mlen": 1, "d_head": 4},
        {"base": 10000, "rotary_dim": None, "scale": None},
        values="dyadic",
    )
    with pytest.raises(PropertyFailure, match="scores of torch-rope-RotaryEmbedding in float64"):
        reproduce_target(TARGET, "rope", PROFILE, "oracle", "float64", draw, adapter=ADAPTER)


def test_a_bfloat16_call_leaves_rounded_positions_for_float32():
    """A bfloat16 call longer than any before it fills the module's float32 angle cache from
    positions rounded to bfloat16 (get_seq_pos builds them in the input's dtype); a later
    float32 call of that length reads the cache."""
    results = check_target(_target(), properties=["history"], dtypes=["float32"], budget="ci")
    (result,) = results
    assert result.status == "fail", result.message
    assert "after a bfloat16 call of the same shapes, longer than any before it" in result.message


def test_a_rotary_width_of_two_cannot_be_built():
    from rotary_embedding_torch import RotaryEmbedding

    with pytest.raises(ZeroDivisionError):
        RotaryEmbedding(dim=2)
