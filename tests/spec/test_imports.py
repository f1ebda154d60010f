"""Importing spec and equivalence imports neither torch nor jax; public names import."""

from __future__ import annotations

import subprocess
import sys

import pytest


def test_spec_and_equivalence_import_no_backend():
    code = (
        "import sys, spec, spec.vectors, spec.render, equivalence, equivalence.cli, "
        "equivalence.tolerance; "
        "print(sorted(m for m in ('torch', 'jax') if m in sys.modules))"
    )
    out = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, check=True
    ).stdout
    assert out.strip() == "[]"


@pytest.mark.parametrize("module", ["spec", "spec.vectors", "spec.render", "equivalence.tolerance"])
def test_every_public_name_imports(module):
    mod = __import__(module, fromlist=["__all__"])
    for name in mod.__all__:
        assert getattr(mod, name) is not None, name
