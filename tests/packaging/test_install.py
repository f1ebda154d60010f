"""The distribution installs under one import namespace and coexists with a user's own
``spec`` and ``impls`` packages, as a wheel and as an editable install.

One fresh virtual environment gets the dependencies once; the wheel is installed, checked and
uninstalled, then the checkout is installed in editable mode and checked the same way. Each
check runs from a throwaway user project outside the repository whose own ``spec/`` and
``impls/`` packages its tests import, while the pytest plugin (loaded through our ``pytest11``
entry point) checks a bundled implementation with ``--relpos-target``.
"""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
import textwrap
import venv
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
CONSTRAINTS = ROOT / "constraints" / "ci.txt"
TARGET = "relpos.impls.torch.shaw:shaw_fast"
BUILD_LEFTOVERS = (".git", ".tox", ".venv", ".ci-venv", "build", "dist", "*.egg-info", ".*_cache")

USER_FILES = {
    "spec/__init__.py": '"""The user\'s own API specs."""\n\n\ndef get_encoding():\n'
    '    return "theirs"\n',
    "impls/__init__.py": "VALUE = 42\n",
    "tests/test_own.py": textwrap.dedent(
        """
        import impls
        import spec


        def test_their_packages_are_theirs():
            assert spec.get_encoding() == "theirs"
            assert impls.VALUE == 42
        """
    ),
}


def _run(*args: str | Path, cwd: Path, env: dict[str, str] | None = None, check: bool = True):
    ran = subprocess.run(
        [str(a) for a in args], cwd=cwd, env=env, capture_output=True, text=True, timeout=1200
    )
    if check and ran.returncode != 0:
        raise AssertionError(
            f"{' '.join(map(str, args))} exited {ran.returncode}\n{ran.stdout}\n{ran.stderr}"
        )
    return ran


@pytest.fixture(scope="module")
def environment(tmp_path_factory):
    """A fresh virtual environment with the runtime dependencies (torch for the bundled
    target), the built wheel, and a user project beside them; all outside the repository."""
    base = tmp_path_factory.mktemp("packaging")
    # Build from a copy: setuptools' build/ folder would otherwise keep stale modules in the
    # checkout, and a later wheel would ship them.
    source = base / "source"
    shutil.copytree(ROOT, source, ignore=shutil.ignore_patterns(*BUILD_LEFTOVERS))
    wheels = base / "wheels"
    _run(sys.executable, "-m", "pip", "wheel", "--no-deps", "-q", "-w", wheels, source, cwd=base)
    (wheel,) = wheels.glob("relpos_conformance-*.whl")
    env_dir = base / "venv"
    venv.create(env_dir, with_pip=True)
    python = env_dir / "bin" / "python"
    pip = (python, "-m", "pip", "install", "-q", "-c", CONSTRAINTS)
    _run(*pip, f"{wheel}[torch]", "pytest", cwd=base)
    project = base / "user-project"
    for name, text in USER_FILES.items():
        (project / name).parent.mkdir(parents=True, exist_ok=True)
        (project / name).write_text(text)
    return {"python": python, "bin": env_dir / "bin", "project": project, "wheel": wheel}


def _check_installed(environment) -> None:
    python, project = environment["python"], environment["project"]
    outside = project.parent
    env = {k: v for k, v in os.environ.items() if k not in ("PYTHONPATH", "HYPOTHESIS_PROFILE")}
    for name in ("spec", "impls", "equivalence"):
        ran = _run(python, "-c", f"import {name}", cwd=outside, env=env, check=False)
        assert ran.returncode == 1 and "ModuleNotFoundError" in ran.stderr, (name, ran.stderr)
    _run(python, "-c", "import relpos.spec, relpos.impls, relpos.equivalence", cwd=outside, env=env)
    version = _run(environment["bin"] / "relpos", "--version", cwd=outside, env=env)
    assert version.stdout.strip() == "relpos " + environment["wheel"].name.split("-")[1]
    ran = _run(
        python,
        "-m",
        "pytest",
        "-p",
        "no:cacheprovider",
        "--relpos-target",
        TARGET,
        "--relpos-encoding",
        "shaw",
        "-v",
        cwd=project,
        env={**env, "HYPOTHESIS_PROFILE": "ci"},
    )
    assert "test_their_packages_are_theirs PASSED" in ran.stdout, ran.stdout
    assert "relpos[oracle-float64] PASSED" in ran.stdout, ran.stdout


def test_wheel_install(environment):
    _check_installed(environment)


def test_editable_install(environment):
    python = environment["python"]
    _run(python, "-m", "pip", "uninstall", "-q", "-y", "relpos-conformance", cwd=ROOT.parent)
    _run(python, "-m", "pip", "install", "-q", "--no-deps", "-e", ROOT, cwd=ROOT.parent)
    _check_installed(environment)
