"""A check reports every distinct failure it found, each shrunk on its own, not only the
first: a NaN and a wrong value are two findings."""

from __future__ import annotations

import re

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
    # each has its own repro: the NaN shrunk to one query, the wrong value at two or more
    # (one query would give the NaN); its shrink usually reaches two, but once under a loaded
    # CI run it stopped short, so the bound is not pinned
    assert "'qlen': 1," in next(f for f in failures if "= nan at" in f)
    wrong = next(f for f in failures if "x the bound" in f)
    qlen = int(re.search(r"'qlen': (\d+)", wrong).group(1))
    assert qlen >= 2, wrong
