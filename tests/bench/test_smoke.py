"""The benchmarks keep working: every case (clip16, or default for encodings benchmarked
with their option defaults; both modes) builds and runs once at the smallest size. Timing
itself is measured by ``relpos bench``, never asserted here."""

from __future__ import annotations

import importlib.util

import pytest

from benchmarks.cases import BASELINES, cases

SMOKE = [c for c in cases((16,)) if c.setting in ("clip16", "default")]


def _needs(case) -> str | None:
    if case.name.startswith("hf_") and importlib.util.find_spec("transformers") is None:
        return "transformers is not installed (pip install 'relpos-conformance[interop]')"
    backend = "jax" if case.name.startswith("jax-") else "torch"
    if importlib.util.find_spec(backend) is None:
        return f"{backend} is not installed"
    return None


@pytest.mark.parametrize("case", SMOKE, ids=lambda c: c.id)
def test_case_builds_and_runs(case):
    reason = _needs(case)
    if reason:
        pytest.skip(reason)
    assert case.build()() is not None


def test_every_implementation_and_baseline_is_benchmarked():
    from relpos.impls import registry

    names = {c.name for c in cases((2048,))}
    assert {i.id for i in registry() if i.variant == "fast"} | set(BASELINES) <= names
    assert not any("reference" in n for n in names)  # references stop at REFERENCE_MAX
