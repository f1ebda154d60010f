"""The budgets mean the same thing on a laptop and on CI: every one draws from a fresh seed,
and a failure is kept in the example database, which the next run replays first."""

import os
import subprocess
import sys
import unittest

import pytest
from hypothesis import Phase, settings

from relpos.equivalence import runner
from relpos.equivalence.profiles import PROFILES, KeyedDatabase, example_database, load_profile
from tests.meta import planted


@pytest.mark.parametrize("ci", ["", "1"])
def test_no_budget_is_derandomized_wherever_it_runs(ci):
    code = (
        "from relpos.equivalence.profiles import PROFILES, load_profile\n"
        "print(' '.join(f'{n}={load_profile(n).derandomize}' for n in PROFILES))\n"
    )
    env = {k: v for k, v in os.environ.items() if k != "CI"}
    if ci:
        env["CI"] = ci
    out = subprocess.run(
        [sys.executable, "-c", code], env=env, capture_output=True, text=True, check=True
    ).stdout.split()
    assert out == [f"{name}=False" for name in PROFILES]


def test_the_database_lives_where_the_environment_says(tmp_path, monkeypatch):
    monkeypatch.setenv("RELPOS_EXAMPLES", str(tmp_path / "db"))
    assert str(example_database().path) == str(tmp_path / "db")
    monkeypatch.setenv("RELPOS_EXAMPLES", "")
    assert example_database() is None
    monkeypatch.delenv("RELPOS_EXAMPLES")
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path / "cache"))
    assert str(example_database().path) == str(tmp_path / "cache" / "relpos" / "examples")


def test_keyed_shares_of_one_database_do_not_see_each_other(tmp_path, monkeypatch):
    monkeypatch.setenv("RELPOS_EXAMPLES", str(tmp_path))
    one, other = (KeyedDatabase(example_database(), name) for name in ("a/x/f32", "b/x/f32"))
    one.save(b"k", b"v")
    assert list(one.fetch(b"k")) == [b"v"] and list(other.fetch(b"k")) == []
    one.move(b"k", b"j", b"v")
    assert list(one.fetch(b"j")) == [b"v"] and list(one.fetch(b"k")) == []
    one.delete(b"j", b"v")
    assert list(one.fetch(b"j")) == []


def test_a_failure_is_replayed_first_by_the_next_run(tmp_path, monkeypatch):
    """The first run finds a planted bug and keeps it; a second run that only replays (no new
    draws) fails on the same input, and without the database it has nothing to replay."""
    pytest.importorskip("torch")
    monkeypatch.setenv("RELPOS_EXAMPLES", str(tmp_path))
    bug = planted.shaw("sign")
    first = runner.run_property("oracle", bug, "float64", profile="dev")
    assert first.status == "fail"

    replay_only = settings(load_profile("dev"), phases=[Phase.reuse])
    monkeypatch.setattr(runner, "load_profile", lambda name: replay_only)
    again = runner.run_property("oracle", bug, "float64", profile="dev")
    assert again.status == "fail" and again.draw == first.draw
    # another check's share of the database has nothing to replay, nor has no database
    with pytest.raises(unittest.SkipTest, match="no test cases"):
        runner.run_property("oracle", bug, "float32", profile="dev")
    monkeypatch.setenv("RELPOS_EXAMPLES", "")
    with pytest.raises(unittest.SkipTest, match="no test cases"):
        runner.run_property("oracle", bug, "float64", profile="dev")


def test_a_targets_failures_are_kept_per_profile_and_adapter():
    """One target under two profiles draws differently: its failures are kept apart, and a
    bundled implementation's key is its id."""
    pytest.importorskip("torch")  # the target is a torch function
    from relpos.equivalence.runner import database_key
    from relpos.equivalence.targets import make_target
    from relpos.impls import registry

    path = "tests.targets.conventional:txl_style"
    keys = {
        database_key("oracle", make_target(path, encoding="xl", profile=name), "float32")
        for name in ("xl", "xlnet")
    }
    assert len(keys) == 2 and all(k.startswith("oracle/") for k in keys)
    impl = next(iter(registry()))
    assert database_key("oracle", impl, "float32") == f"oracle/{impl.id}/float32"
