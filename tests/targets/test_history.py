"""The history property: a target that keeps state between calls (rotation tables cached per
length but not per dtype, or sized by the first call and never grown) fails it, in the test suite
and in ``relpos check``; the same code without the state passes."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

from relpos.equivalence.cli import main
from relpos.equivalence.targets import check_target, make_target

torch = pytest.importorskip("torch")

HERE = "tests.targets.conventional"
ROOT = Path(__file__).resolve().parents[2]


def _history(name, dtypes=None):
    target = make_target(f"{HERE}:{name}", encoding="rope", profile="llama")
    results = check_target(target, properties=["history"], dtypes=dtypes, budget="ci")
    return {r.dtype: r for r in results}


def test_llama_style_rope_without_state_passes_history():
    for dtype, result in _history("llama_rope").items():
        assert result.status == "pass", (dtype, result.message)


def test_tables_cached_per_length_fail_after_a_lower_dtype():
    # the property runs float32 first, where the short lengths it needs are still new
    got = _history("rope_tables_cached_per_length")
    assert list(got) == ["float32", "float64"]
    for dtype, lower in (("float32", "bfloat16"), ("float64", "float32")):
        assert got[dtype].status == "fail", got[dtype].message
        assert f"after a {lower} call of the same shapes" in got[dtype].message


def test_tables_sized_by_the_first_call_fail_after_a_shorter_call():
    got = _history("rope_tables_sized_by_the_first_call")
    for result in got.values():
        assert result.status == "fail", result.message
        # the table is as long as the first call of the run: a longer first call of a later
        # draw fails before its own history
        assert "a klen new to it" in result.message, result.message


def test_tables_grown_from_positions_in_the_input_dtype_fail_after_a_longer_lower_call():
    got = _history("rope_tables_grown_from_positions_in_the_input_dtype")
    assert got["float32"].status == "fail", got["float32"].message
    assert "after a bfloat16 call of the same shapes, longer than any before it" in (
        got["float32"].message
    )


def test_relpos_check_finds_the_cache_per_length():
    # In a process of its own, as a user runs it: the lengths new to a target depend on every
    # call this process made before, and the tests before this one called the same target
    # (its tables kept in the worker), so run in-process its fresh lengths would start long,
    # where float32's RoPE bound is widest.
    command = (
        "from relpos.equivalence.cli import main; raise SystemExit(main(["
        f"'check', '--target', '{HERE}:rope_tables_cached_per_length', '--encoding', 'rope', "
        "'--profile', 'llama', '--property', 'history']))"
    )
    env = {**os.environ, "PYTHONPATH": str(ROOT)}
    done = subprocess.run(
        [sys.executable, "-c", command], cwd=ROOT, env=env, capture_output=True, text=True
    )
    assert done.returncode == 1, done.stdout + done.stderr
    assert "after a bfloat16 call of the same shapes" in done.stdout, done.stdout


def test_relpos_check_finds_the_table_grown_in_bfloat16():
    command = (
        "from relpos.equivalence.cli import main; raise SystemExit(main(['check', "
        f"'--target', '{HERE}:rope_tables_grown_from_positions_in_the_input_dtype', "
        "'--encoding', 'rope', '--profile', 'llama', '--property', 'history', "
        "'--dtype', 'float32']))"
    )
    env = {**os.environ, "PYTHONPATH": str(ROOT)}
    done = subprocess.run(
        [sys.executable, "-c", command], cwd=ROOT, env=env, capture_output=True, text=True
    )
    assert done.returncode == 1, done.stdout + done.stderr
    assert "after a bfloat16 call of the same shapes, longer than any before it" in done.stdout


def test_relpos_check_says_when_an_adapter_keeps_modules(capsys):
    code = main(
        [
            "check",
            "--target",
            f"{HERE}:llama_rope",
            "--adapter",
            f"{HERE}:kept_passthrough",
            "--encoding",
            "rope",
            "--profile",
            "llama",
            "--property",
            "history",
        ]
    )
    captured = capsys.readouterr()
    assert code == 0, captured.out
    assert "its adapter keeps one module per configuration across calls" in captured.err
