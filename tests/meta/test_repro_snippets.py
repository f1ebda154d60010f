"""A repro snippet that the checker prints runs as printed, in a fresh interpreter started
outside the repository (where only the installed ``relpos`` namespace is importable)."""

from __future__ import annotations

import subprocess
import sys
import textwrap

import pytest

from relpos.equivalence.draws import Draw
from relpos.equivalence.runner import repro_snippet
from relpos.equivalence.targets import check_target, make_target
from relpos.impls import get

pytest.importorskip("torch")

# A target with a sign bug: it reads the Shaw table from the other end (i - j for j - i).
MIRRORED = textwrap.dedent(
    """
    from relpos.impls.torch.shaw import shaw_fast

    def mirrored(q, k, v, *, rel_k=None, rel_v=None, **arguments):
        flip = lambda t: None if t is None else t.flip(-2)
        return shaw_fast(q, k, v, rel_k=flip(rel_k), rel_v=flip(rel_v), **arguments)
    """
)


def _fresh(snippet: str, cwd) -> subprocess.CompletedProcess:
    return subprocess.run(
        [sys.executable, "-c", snippet], cwd=cwd, capture_output=True, text=True, timeout=300
    )


def test_a_bundled_implementation_repro_runs_as_printed(tmp_path):
    impl = get("shaw", "torch", "fast")
    draw = Draw(
        "shaw",
        {"bsz": 1, "n_head": 2, "qlen": 3, "mlen": 1, "d_head": 4},
        {"clip": (-2, 2), "key_query": True, "scale": None},
        ("rel_v",),
        {"rel_k": 1},
        "random",
        "normal",
        7,
    )
    snippet = repro_snippet("oracle", impl, "float64", draw)
    assert "\nreproduce(" in snippet
    ran = _fresh(
        snippet.replace("\nreproduce(", "\nratio = reproduce(") + "\nprint(ratio)", tmp_path
    )
    assert ran.returncode == 0, ran.stderr
    assert float(ran.stdout.split()[-1]) <= 1


def test_a_target_repro_runs_as_printed_and_fails_the_same_way(tmp_path, monkeypatch):
    (tmp_path / "mirrored_target.py").write_text(MIRRORED)
    monkeypatch.syspath_prepend(str(tmp_path))
    target = make_target("mirrored_target:mirrored", encoding="shaw")
    (result,) = check_target(target, properties=["oracle"], dtypes=["float64"], budget="ci")
    assert result.status == "fail", result.message
    ran = _fresh(result.repro, tmp_path)
    assert ran.returncode == 1, ran.stderr
    assert "PropertyFailure: property oracle failed" in ran.stderr, ran.stderr
    assert "out of torch-shaw-mirrored in float64" in ran.stderr, ran.stderr
    # nothing of the repository leaked into the fresh interpreter
    assert _fresh("import spec", tmp_path).returncode == 1
