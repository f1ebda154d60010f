"""A check reports every distinct failure it found, each shrunk on its own, not only the
first: a NaN and a wrong value are two findings."""

from __future__ import annotations

import pytest
from hypothesis import settings

from relpos.equivalence.profiles import load_profile
from relpos.equivalence.targets import check_target, make_target

pytest.importorskip("torch")


def test_a_nan_and_a_wrong_value_are_both_reported():
    target = make_target("tests.targets.hostile:nan_on_one_query_else_off", encoding="shaw")
    (result,) = check_target(
        target,
        properties=["oracle"],
        dtypes=["float64"],
        budget=settings(load_profile("dev"), max_examples=40, database=None),
    )
    assert result.status == "fail"
    failures = result.message.split("\n\nproperty oracle")
    assert len(failures) == 2, result.message
    assert sum("= nan at" in f for f in failures) == 1, result.message
    assert sum("x the bound" in f for f in failures) == 1, result.message
    # each is shrunk on its own: the NaN to one query, the wrong value to two
    assert "'qlen': 1" in next(f for f in failures if "= nan at" in f)
    assert "'qlen': 2" in next(f for f in failures if "x the bound" in f)
