"""Speed of every implementation and baseline (pytest-benchmark). Run by ``relpos bench`` or
``tox -e bench``; never part of the default test run (``testpaths`` is ``tests``).

RELPOS_BENCH_SIZES (default "256,512,1024,2048") and RELPOS_BENCH_ROUNDS (default 5) size it.
"""

from __future__ import annotations

import os

import pytest

from benchmarks.cases import cases, compile_seconds

SIZES = tuple(int(x) for x in os.environ.get("RELPOS_BENCH_SIZES", "256,512,1024,2048").split(","))
ROUNDS = int(os.environ.get("RELPOS_BENCH_ROUNDS", "5"))


def _available(case) -> tuple[bool, str]:
    import importlib.util

    needs = "jax" if case.name.startswith("jax-") else "torch"
    if case.name.startswith("hf_") and importlib.util.find_spec("transformers") is None:
        return False, "transformers is not installed (pip install 'relpos-conformance[interop]')"
    if importlib.util.find_spec(needs) is None:
        return False, f"{needs} is not installed"
    return True, ""


@pytest.mark.parametrize("case", cases(SIZES), ids=lambda c: c.id)
def test_speed(benchmark, case):
    ok, why = _available(case)
    if not ok:
        pytest.skip(why)
    run = case.build()
    benchmark.group = f"{case.mode}-L{case.L}"
    benchmark.extra_info.update(
        name=case.name,
        L=case.L,
        mode=case.mode,
        setting=case.setting,
        compile_seconds=compile_seconds(case),
    )
    benchmark.pedantic(run, rounds=ROUNDS, iterations=1, warmup_rounds=1)
