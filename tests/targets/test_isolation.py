"""Hostile targets: a hang is a timeout finding, an abort or a segfault a crash finding, each
with the draw and a repro, and the checker goes on with a fresh worker."""

from __future__ import annotations

import json
import sys

import pytest
from hypothesis import settings

from relpos.equivalence import isolation
from relpos.equivalence.cli import main
from relpos.equivalence.profiles import load_profile
from relpos.equivalence.targets import check_target, diagnose, make_target

pytest.importorskip("torch")

HERE = "tests.targets.hostile"
ONE = {"properties": ["oracle"], "dtypes": ["float64"], "budget": "dev"}


@pytest.fixture
def short_timeout():
    before = isolation.timeout()
    isolation.set_timeout(3)
    yield
    isolation.set_timeout(before)


def _only(target_name):
    target = make_target(f"{HERE}:{target_name}", encoding="shaw")
    assert target.isolated
    (result,) = check_target(target, **ONE)
    return result


def test_a_hanging_target_is_a_timeout_finding(short_timeout):
    result = _only("hangs")
    assert result.status == "timeout", result.message
    assert f"{HERE}:hangs did not return within 3 s" in result.message
    assert "reproduce_target(" in result.repro and result.draw is not None


@pytest.mark.parametrize(("name", "signal"), [("aborts", "SIGABRT"), ("segfaults", "SIGSEGV")])
def test_a_target_that_kills_its_worker_is_a_crash_finding(name, signal):
    result = _only(name)
    assert result.status == "crash", result.message
    assert f"crashed its worker process (killed by signal {signal})" in result.message
    assert "reproduce_target(" in result.repro
    # the checker goes on: a correct target passes in the worker started after the crash
    assert _only("correct").status == "pass"


def test_a_huge_allocation_is_a_finding_and_the_checker_goes_on():
    result = _only("allocates_a_petabyte")
    assert result.status == "error", result.message
    assert "allocate" in result.message and "reproduce_target(" in result.repro
    # where it was raised: in the target, in the worker process, not where the result arrived
    assert "hostile.py" in result.message and "in allocates_a_petabyte" in result.message
    assert _only("correct").status == "pass"
    # a target that raises on every input is not explained by any convention
    said = str(diagnose(make_target(f"{HERE}:allocates_a_petabyte", encoding="shaw")))
    assert "the target raised under every combination of the shaw conventions" in said, said
    assert "RuntimeError" in said


def test_a_worker_killed_for_memory_is_a_crash_finding_that_says_so():
    result = _only("killed_for_memory")
    assert result.status == "crash", result.message
    assert "killed by signal SIGKILL, as the out-of-memory killer does" in result.message
    assert _only("correct").status == "pass"


def test_a_target_without_an_importable_name_runs_here():
    def local(q, k, v, **arguments):
        raise AssertionError("unreachable")

    assert not make_target(local, encoding="shaw").isolated
    assert make_target(f"{HERE}:correct", encoding="shaw", isolate=False).isolated is False


def test_the_command_line_reports_a_hang_and_writes_the_json(tmp_path, capsys):
    report = tmp_path / "hang.json"
    args = ["check", "--target", f"{HERE}:hangs", "--encoding", "shaw", "--property", "oracle"]
    args += ["--dtype", "float64", "--budget", "dev", "--timeout", "2", "--json", str(report)]
    before = isolation.timeout()
    try:
        assert main(args) == 1
    finally:
        isolation.set_timeout(before)
    captured = capsys.readouterr()
    out = captured.out
    assert "1 timed out" in out and "TIMEOUT: oracle float64" in out
    assert "[1/1] torch-shaw-hangs oracle float64: timeout" in captured.err
    (row,) = json.loads(report.read_text())["results"]
    assert row["status"] == "timeout" and "reproduce_target(" in row["repro"]


@pytest.mark.parametrize("bad", ["0", "-1", "x", "inf"])
def test_a_bad_timeout_is_refused(bad, capsys):
    with pytest.raises(SystemExit) as caught:
        main(["check", "--target", f"{HERE}:correct", "--encoding", "shaw", "--timeout", bad])
    assert caught.value.code == 2
    assert "must be a positive number of seconds" in capsys.readouterr().err


def test_a_timeout_without_a_target_or_isolation_is_refused(capsys):
    assert main(["check", "--encoding", "shaw", "--timeout", "5"]) == 2
    assert "--timeout 5 applies to --target and --isolate only" in capsys.readouterr().err


@pytest.mark.parametrize("isolate", [True, False])
def test_a_target_that_changes_its_inputs_is_a_finding_naming_them(isolate):
    target = make_target(f"{HERE}:scales_q_in_place", encoding="shaw", isolate=isolate)
    for dtype in ("float64", "float32"):
        (result,) = check_target(target, properties=["oracle"], dtypes=[dtype], budget="dev")
        assert result.status == "fail", result.message
        assert "changed its input q in place" in result.message


def test_the_bundled_implementations_get_copies_of_the_inputs():
    """A float64 tensor built from the checker's array must not share its memory."""
    import numpy as np

    from relpos.equivalence.backends import backend

    array = np.ones((1, 1, 2, 2))
    tensor = backend("torch").tensor(array, "float64")
    tensor.mul_(3)
    assert (array == 1).all()


def test_relpos_check_catches_a_bundled_implementation_that_changes_its_inputs(monkeypatch, capsys):
    import relpos.impls.torch.shaw as module

    original = module.shaw_fast

    def planted(q, k, v, **arguments):
        result = original(q, k, v, **arguments)
        k.add_(1)
        return result

    monkeypatch.setattr(module, "shaw_fast", planted)
    args = ["check", "--encoding", "shaw", "--backend", "torch", "--property", "oracle"]
    assert main([*args, "--dtype", "float64", "--budget", "dev"]) == 1
    out = capsys.readouterr().out
    assert "FAIL: torch-shaw-fast oracle float64" in out and "changed its input k" in out
    assert "torch-shaw-reference oracle float64" not in out.split("FAIL:", 1)[1]


@pytest.mark.parametrize("name", ["wrong_every_fourth_call", "keeps_state"])
def test_a_target_whose_calls_depend_on_earlier_ones_fails_repeatability(name):
    target = make_target(f"{HERE}:{name}", encoding="shaw")
    (result,) = check_target(target, properties=["repeatability"], dtypes=["float64"], budget="dev")
    assert result.status == "fail", result.message
    assert "a call must not depend on earlier ones" in result.message
    (correct,) = check_target(
        make_target(f"{HERE}:correct", encoding="shaw"),
        properties=["repeatability"],
        dtypes=["float64"],
        budget="dev",
    )
    assert correct.status == "pass", correct.message


def test_relpos_check_catches_a_bundled_implementation_with_a_stale_cache(monkeypatch, capsys):
    """A cache keyed on the shapes only: the second call on new values of the same shapes
    returns the first call's results."""
    import relpos.impls.torch.t5 as module

    original, cache = module.t5_fast, {}

    def planted(q, k, v, **arguments):
        key = (tuple(q.shape), tuple(k.shape), arguments.get("with_weights"))
        if key not in cache:
            cache[key] = original(q, k, v, **arguments)
        return cache[key]

    monkeypatch.setattr(module, "t5_fast", planted)
    args = ["check", "--encoding", "t5", "--backend", "torch", "--variant", "fast"]
    assert main([*args, "--property", "repeatability", "--budget", "dev"]) == 1
    out = capsys.readouterr().out
    assert "FAIL: torch-t5-fast repeatability float64" in out


def test_check_implementation_uses_the_project_budget(monkeypatch):
    """Without ``budget`` the active budget applies (Hypothesis's defaults would draw 100
    examples under a 200 ms deadline)."""
    monkeypatch.setenv("HYPOTHESIS_PROFILE", "dev")
    from relpos.equivalence import check_implementation

    (result,) = check_implementation(
        f"{HERE}:correct", encoding="shaw", properties=["oracle"], dtypes=["float64"]
    )
    assert result.status == "pass" and result.examples == 3


@pytest.mark.parametrize(
    ("kw", "words"),
    [
        ({"properties": "oracle"}, "must be a list of names, such as ['oracle'], not a string"),
        ({"properties": []}, "must name at least one"),
        ({"dtypes": "float64"}, "must be a list of names"),
    ],
)
def test_check_target_refuses_a_string_or_an_empty_list(kw, words):
    from relpos.spec import ArgumentError

    with pytest.raises(ArgumentError, match=words.replace("[", r"\[").replace("]", r"\]")):
        check_target(make_target(f"{HERE}:correct", encoding="shaw"), **kw)


def test_a_bad_budget_is_called_a_budget():
    with pytest.raises(ValueError, match="budget 'bogus' must be one of dev, ci, thorough"):
        check_target(
            make_target(f"{HERE}:correct", encoding="shaw"),
            properties=["oracle"],
            dtypes=["float64"],
            budget="bogus",
        )


def test_a_masked_rows_finding_names_the_wrong_array():
    target = make_target(f"{HERE}:uniform_probs_on_dead_rows", encoding="shaw")
    (result,) = check_target(target, properties=["masked_rows"], dtypes=["float64"])
    assert result.status == "fail", result.message
    finding = next(line for line in result.message.splitlines() if "fully masked" in line)
    assert finding.startswith("probs of ") and "but should be 0" in finding


def test_the_pytest_plugin_reports_a_hang_as_a_failed_item(tmp_path):
    import os
    import subprocess
    from pathlib import Path

    root = Path(__file__).resolve().parents[2]
    env = {**os.environ, "PYTHONPATH": str(root), "RELPOS_TIMEOUT": "2"}
    args = ["-p", "no:cacheprovider", "--relpos-encoding", "shaw", "--relpos-budget", "dev"]
    args += ["--relpos-target", f"{HERE}:hangs", "-k", "oracle-float64"]
    run = subprocess.run(
        [sys.executable, "-m", "pytest", *args],
        cwd=tmp_path,
        env=env,
        capture_output=True,
        text=True,
        check=False,
    )
    assert run.returncode == 1 and "1 failed" in run.stdout, run.stdout
    assert "did not return within 2 s" in run.stdout
    assert "no diagnosis: the target hung or crashed" in run.stdout


def test_a_bundled_implementation_can_run_in_a_worker(capsys):
    from relpos.equivalence.isolation import Isolated
    from relpos.equivalence.properties import partner
    from relpos.equivalence.runner import run_property
    from relpos.impls import get

    impl = Isolated.of(get("shaw", "torch", "reference"))
    result = run_property("oracle", impl, "float64", profile="dev")
    assert result.status == "pass" and result.implementation == "torch-shaw-reference"
    assert impl.key in isolation.pool("torch")._loaded  # the worker did the calls
    assert isinstance(partner(impl), Isolated)
    argv = ["check", "--isolate", "--encoding", "shaw", "--backend", "torch"]
    argv += ["--variant", "reference", "--property", "oracle", "--dtype", "float64"]
    assert main([*argv, "--timeout", "30"]) == 0
    assert main(["check", "--isolate", "--target", f"{HERE}:correct", "--encoding", "shaw"]) == 2
    assert "--isolate is for the bundled implementations" in capsys.readouterr().err


def test_a_target_checked_over_several_processes_reports_like_one(tmp_path):
    """-n 2 with a target: each process rebuilds the target (adjustments included) and draws
    from the run's seed; a hang is still a timeout finding, and every process ends."""
    report = tmp_path / "report.json"
    argv = ["check", "--target", f"{HERE}:hangs", "--encoding", "shaw", "--property", "oracle"]
    argv += ["--dtype", "float64", "--dtype", "float32", "-n", "2", "--timeout", "3"]
    assert main([*argv, "--exclude", "key_query=True", "--json", str(report)]) == 1
    data = json.loads(report.read_text())
    assert [r["status"] for r in data["results"]] == ["timeout", "timeout"], data
    assert data["adjustments"] == ["exclude key_query=True"]
    argv[2] = f"{HERE}:correct"
    assert main(argv) == 0


def test_a_crash_on_a_large_input_comes_down_to_the_least_that_crashes(monkeypatch):
    """The search climbs from the least value and bisects, so a crash drawn at 300 queries
    with the other axes above their least meets few crashes on its way down to 3 queries."""
    from relpos.equivalence import runner
    from relpos.equivalence.draws import Draw
    from relpos.equivalence.properties import PROPERTIES

    target = make_target(f"{HERE}:aborts_from_three_queries", encoding="shaw")
    dims = {"bsz": 2, "n_head": 3, "qlen": 300, "mlen": 20, "d_head": 8}
    draw = Draw("shaw", dims, {"clip": (-2, 2)}, seed=1)
    seen = []
    checked = runner._check

    def counted(prop, impl, candidate, dtype):
        seen.append(candidate.dims)
        return checked(prop, impl, candidate, dtype)

    monkeypatch.setattr(runner, "_check", counted)
    with pytest.raises(isolation.TargetDied) as died:
        counted(PROPERTIES["oracle"], target, draw, "float64")
    failure = runner._smaller_crash(PROPERTIES["oracle"], target, "float64", died.value.failure)
    assert failure.status == "crash"
    assert failure.draw.dims == {"bsz": 1, "n_head": 1, "qlen": 3, "mlen": 0, "d_head": 1}
    crashed = [d for d in seen[1:] if d["qlen"] >= 3]
    assert len(crashed) <= 6, seen  # one for each axis brought to its least, two for qlen
    assert len(seen) - 1 <= runner.CRASH_SHRINK_TRIES


def test_a_crash_is_reported_on_a_smaller_input_that_still_crashes():
    target = make_target(f"{HERE}:aborts_from_three_queries", encoding="shaw")
    settings_ = settings(load_profile("dev"), max_examples=30, database=None)
    (result,) = check_target(target, properties=["oracle"], dtypes=["float64"], budget=settings_)
    assert result.status == "crash", result.message
    dims = result.draw.dims
    assert dims["qlen"] == 3, dims  # the least that crashes
    assert dims["bsz"] == dims["n_head"] == dims["d_head"] == 1 and dims["mlen"] == 0, dims
    assert "'qlen': 3" in result.repro
