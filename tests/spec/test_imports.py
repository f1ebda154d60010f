"""The import namespace: everything is ``relpos.*``; importing relpos.spec, relpos.impls and
relpos.equivalence imports neither torch nor jax (relpos.studies, which trains torch models,
needs torch); public names import; the packaging configuration maps every package folder into
the namespace."""

from __future__ import annotations

import subprocess
import sys
import tomllib
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
LAYERS = ("spec", "impls", "equivalence", "studies")


def test_the_layers_import_no_backend(tmp_path):
    code = (
        "import sys, relpos.spec, relpos.spec.vectors, relpos.spec.render, relpos.impls, "
        "relpos.equivalence, relpos.equivalence.cli, relpos.equivalence.tolerance; "
        "print(sorted(m for m in ('torch', 'jax') if m in sys.modules))"
    )
    out = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, check=True, cwd=tmp_path
    ).stdout
    assert out.strip() == "[]"


def test_no_generic_top_level_name_is_installed(tmp_path):
    """Outside the checkout only the namespace is importable (a user's own `spec` wins)."""
    for name in LAYERS:
        ran = subprocess.run(
            [sys.executable, "-c", f"import {name}"], capture_output=True, text=True, cwd=tmp_path
        )
        assert ran.returncode == 1 and "ModuleNotFoundError" in ran.stderr, (name, ran.stderr)


@pytest.mark.parametrize(
    "module",
    [
        "relpos.spec",
        "relpos.spec.vectors",
        "relpos.spec.render",
        "relpos.impls",
        "relpos.equivalence",
        "relpos.equivalence.tolerance",
    ],
)
def test_every_public_name_imports(module):
    mod = __import__(module, fromlist=["__all__"])
    for name in mod.__all__:
        assert getattr(mod, name) is not None, name


def test_every_package_folder_is_mapped_into_the_namespace():
    tool = tomllib.loads((ROOT / "pyproject.toml").read_text())["tool"]["setuptools"]
    assert tool["package-dir"] == {f"relpos.{layer}": layer for layer in LAYERS}
    folders = {
        "relpos." + ".".join(init.parent.relative_to(ROOT).parts)
        for layer in LAYERS
        for init in (ROOT / layer).rglob("__init__.py")
    }
    assert set(tool["packages"]) == folders
    assert set(tool["package-data"]) == {f"relpos.{layer}" for layer in LAYERS}
