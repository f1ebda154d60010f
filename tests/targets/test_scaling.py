"""RoPE's scaling variants in the attention check: a target with every variant passes under
the spec's profile, and each bug that public trackers report in shipped scaled RoPE, planted
in it, fails, in the test suite and in ``relpos check``; the spec's golden cases reach each
variant where its bug shows."""

from __future__ import annotations

import pytest

from relpos.equivalence.cli import main
from relpos.equivalence.targets import check_target, make_target
from relpos.spec import ArgumentError, get_encoding
from relpos.spec.encodings.rope import LENGTH_DEPENDENT
from relpos.spec.rope_scaling import VARIANTS

torch = pytest.importorskip("torch")

HERE = "tests.targets.scaled"

LONGROPE = ("longrope_long", "longrope_short", "longrope_memory")

#: The golden cases each planted bug must fail (and no other: each shows where it lives).
CAUGHT_BY = {
    "factor_squared": {"yarn", "yarn_explicit_factor", *LONGROPE},
    "factor_ignored": {"yarn", "yarn_explicit_factor", *LONGROPE},
    "dynamic_static": {"dynamic_past_L0", "dynamic_rows"},
    "longrope_at_L0": {"longrope_short"},
    "llama3_unscaled": {"llama3"},
    "batch_length": {"dynamic_rows"},
    # rows in order: the row at L0 after two longer rows keeps their base; across calls the
    # history property finds it (below)
    "dynamic_kept": {"dynamic_rows"},
}


def _check(name, properties, dtypes, budget="ci"):
    target = make_target(f"{HERE}:{name}", encoding="rope")
    return check_target(target, properties=properties, dtypes=dtypes, budget=budget)


def test_the_golden_cases_hold_every_scaling_variant():
    cases = get_encoding("rope").own_cases()
    seen = {(c.options.get("scaling") or {}).get("rope_type") for c in cases}
    assert set(VARIANTS) - {"default"} <= seen
    # both sides of the original length for the variants that depend on the length
    names = {c.name for c in cases}
    assert {"dynamic_past_L0", "dynamic_at_L0", "longrope_long", "longrope_short"} <= names


def test_a_target_with_every_variant_passes():
    for result in _check("rope_scaled", ["golden", "oracle"], ["float64", "float32"]):
        assert result.status == "pass", (result.property, result.dtype, result.message)


@pytest.mark.parametrize("bug", sorted(CAUGHT_BY))
def test_each_planted_bug_fails_the_golden_cases_where_it_lives(bug):
    (result,) = _check(f"rope_scaled_{bug}", ["golden"], ["float64"])
    assert result.status == "fail", result.message
    failed = result.message.split("(", 1)[1].split(")", 1)[0].split(", ")
    assert set(failed) == CAUGHT_BY[bug], result.message


def test_relpos_check_finds_a_squared_attention_factor(capsys):
    code = main(
        [
            "check",
            "--target",
            f"{HERE}:rope_scaled_factor_squared",
            "--encoding",
            "rope",
            "--property",
            "golden",
            "--budget",
            "ci",
        ]
    )
    out = capsys.readouterr().out
    assert code == 1, out
    assert "yarn" in out and "fail" in out


def test_a_scaling_the_spec_refuses_is_an_argument_error_in_every_implementation():
    import numpy as np

    from relpos.impls import registry
    from relpos.spec import validate

    q = np.zeros((1, 1, 2, 4))
    bad = {"rope_type": "longrope", "original_max_position_embeddings": 4,
           "short_factor": [1.0], "long_factor": [2.0, 2.0], "factor": 2.0}  # fmt: skip
    with pytest.raises(ArgumentError) as spec_error:
        validate("rope", {"q": q, "k": q, "v": q, "scaling": bad})
    assert "short_factor" in str(spec_error.value) and "r/2 = 2" in str(spec_error.value)
    for impl in (i for i in registry() if i.encoding == "rope" and i.backend == "torch"):
        fn = impl.load()
        t = torch.zeros((1, 1, 2, 4))
        with pytest.raises(ArgumentError) as got:
            fn(t, t, t, scaling=bad)
        assert str(got.value) == str(spec_error.value)


def _drawn_rope_types(prop: str, examples: int = 40) -> set:
    from hypothesis import given, settings

    from relpos.equivalence.properties import PROPERTIES

    seen = set()

    # derandomized: what a strategy reaches is a fact about it, not about a run's seed
    @settings(max_examples=examples, database=None, deadline=None, derandomize=True)
    @given(PROPERTIES[prop].strategy("rope", None))
    def draw(d):
        scaling = d.options["scaling"]
        seen.add(None if scaling is None else scaling["rope_type"])

    draw()
    return seen


@pytest.mark.parametrize("prop", ["translation", "chunked", "packed"])
def test_length_dependent_variants_are_left_out_of_the_properties_that_change_the_length(prop):
    seen = _drawn_rope_types(prop, examples=200)
    assert not seen & set(LENGTH_DEPENDENT), seen
    assert len(seen - {None}) >= 2, seen  # the other variants are still drawn


def test_the_oracle_property_draws_every_variant():
    # {"rope_type": "default"} is None's computation, drawn as its own candidate too
    assert set(VARIANTS) - {"default"} <= _drawn_rope_types("oracle", examples=400)


DYNAMIC = {"rope_type": "dynamic", "factor": 2.0, "original_max_position_embeddings": 6}


@pytest.mark.parametrize("bug", [None, "dynamic_kept"])
def test_the_history_property_finds_a_dynamic_base_kept_from_a_longer_call(bug):
    """dynamic's base grown for a longer call and kept for a shorter one past L0 (as a rotary
    module kept across calls does) is state the history property sees; the same code without
    the state passes it."""
    from hypothesis import given, settings

    from relpos.equivalence.properties import check_history
    from relpos.equivalence.strategies import draws

    name = "rope_scaled" if bug is None else f"rope_scaled_{bug}"
    target = make_target(f"{HERE}:{name}", encoding="rope")
    verdicts = []

    @settings(max_examples=6, database=None, deadline=None, derandomize=True)
    @given(draws("rope", options={"rotary_dim": None, "scaling": DYNAMIC}, at_least={"d_head": 4}))
    def run(draw):
        verdicts.extend(check_history(target, draw, "float32"))

    run()
    failed = [v.message for v in verdicts if not v.ok]
    assert bool(failed) == (bug is not None), failed[:1]
    if bug:  # found after an earlier call, not in the draw's first one
        assert all(m.startswith("after a") for m in failed), failed[:1]
