"""Shared pytest configuration: backend availability in the report header, and parameters
derived from the registries (never a hand-kept list)."""

from __future__ import annotations

import pytest
from hypothesis import settings

from equivalence.backends import backends
from equivalence.profiles import RUN_SEED, active_profile
from impls import registry

settings.load_profile(active_profile())


def pytest_report_header(config):
    lines = [
        f"relpos hypothesis profile: {active_profile()} (HYPOTHESIS_PROFILE=dev|ci|thorough)"
        f", RELPOS_SEED={RUN_SEED}"
    ]
    for b in backends():
        ok, why = b.available()
        lines.append(f"relpos backend {b.name}: {b.version() if ok else 'skipped: ' + why}")
    return lines


def implementation_params(**filters):
    """One pytest param per registered implementation (id ``torch-shaw-fast``), skipped with
    the reason when its backend is missing."""
    params = []
    for impl in registry():
        if any(getattr(impl, key) != value for key, value in filters.items()):
            continue
        ok, why = impl.available()
        marks = () if ok else (pytest.mark.skip(reason=why),)
        params.append(pytest.param(impl, id=impl.id, marks=marks))
    return params
