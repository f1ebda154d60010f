"""Shared pytest configuration: backend availability in the report header, and parameters
derived from the registries (never a hand-kept list)."""

from __future__ import annotations

import os
from pathlib import Path

import pytest
from hypothesis import settings

from relpos.equivalence.backends import backends, release_compiled_code
from relpos.equivalence.profiles import active_profile, run_seed
from relpos.impls import registry

settings.load_profile(active_profile())
# pytest-xdist's workers inherit the environment: every worker draws from the seed the header
# reports, and one RELPOS_SEED replays the whole session.
os.environ.setdefault("RELPOS_SEED", str(run_seed()))
# Failures the suite finds are kept beside the checkout (Hypothesis's own place), not in the
# user's cache that relpos check replays.
os.environ.setdefault(
    "RELPOS_EXAMPLES", str(Path(__file__).resolve().parent.parent / ".hypothesis" / "relpos")
)


def pytest_report_header(config):
    lines = [
        f"relpos hypothesis profile: {active_profile()} (HYPOTHESIS_PROFILE=dev|ci|thorough)"
        f", RELPOS_SEED={run_seed()}"
    ]
    for b in backends():
        ok, why = b.available()
        lines.append(f"relpos backend {b.name}: {b.version() if ok else 'skipped: ' + why}")
    return lines


@pytest.fixture(autouse=True)
def _release_compiled_code():
    """After each test, drop compiled code if it crowds the process's mapping limit (tests that
    call implementations directly compile outside the backend adapters' own checks)."""
    yield
    release_compiled_code()


def cases_named(encoding, preferred, default=("mask_fully_masked_row",)):
    """The golden cases of ``encoding`` a test uses: ``preferred[encoding]`` when the test
    names some, else the encoding's first case and those of ``default`` it has (so a new
    encoding is covered without editing the test)."""
    from relpos.spec import get_encoding

    cases = {c.name: c for c in get_encoding(encoding).cases()}
    names = preferred.get(encoding) or [next(iter(cases)), *(n for n in default if n in cases)]
    return [cases[n] for n in dict.fromkeys(names)]


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
