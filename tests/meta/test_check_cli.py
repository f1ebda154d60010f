"""``relpos check``: the matrix, the exit status and the JSON report."""

from __future__ import annotations

import json

import pytest

from relpos.equivalence.cli import main

pytest.importorskip("torch")


def test_check_prints_the_matrix_and_writes_json(tmp_path, capsys):
    report = tmp_path / "report.json"
    code = main(
        [
            "check",
            "--encoding",
            "shaw",
            "--backend",
            "torch",
            "--variant",
            "fast",
            "--property",
            "oracle",
            "--property",
            "zero_tables",
            "--dtype",
            "float64",
            "--budget",
            "ci",
            "--json",
            str(report),
        ]
    )
    out = capsys.readouterr().out
    assert code == 0
    assert "implementation" in out and "torch-shaw-fast" in out and "pass 5/" in out
    assert "2 passed, 0 failed, 0 errors" in out
    doc = json.loads(report.read_text())
    assert set(doc) >= {"spec_version", "environment", "results", "budget"}
    assert set(doc["environment"]) >= {"python", "torch", "jax", "sympy", "hypothesis", "platform"}
    row = doc["results"][0]
    assert set(row) >= {
        "encoding",
        "backend",
        "variant",
        "property",
        "status",
        "examples",
        "worst_ratio",
    }
    assert row["status"] == "pass" and row["examples"] == 5 and 0 <= row["worst_ratio"] <= 1


def test_check_with_nothing_selected_is_an_error(capsys):
    assert (
        main(["check", "--encoding", "xl", "--property", "zero_tables", "--dtype", "float16"]) == 2
    )


def _seeded_run(tmp_path, capsys, name, *seed):
    report = tmp_path / f"{name}.json"
    args = ["check", "--encoding", "t5", "--backend", "torch", "--variant", "fast"]
    args += ["--property", "oracle", "--dtype", "float32", "--budget", "dev"]
    code = main([*args, *seed, "--json", str(report)])
    first = capsys.readouterr().out.splitlines()[0]
    return code, first, json.loads(report.read_text())


def test_a_run_says_its_seed_first_and_replays_from_it(tmp_path, capsys):
    code, first, fresh = _seeded_run(tmp_path, capsys, "fresh")
    assert code == 0
    seed = fresh["seed"]
    assert first == f"seed {seed} (replay this run with --seed {seed})"
    _, again_first, again = _seeded_run(tmp_path, capsys, "again", "--seed", str(seed))
    assert again_first == first and again["seed"] == seed
    # the same draws: the same coverage, example for example
    assert again["results"][0]["coverage"] == fresh["results"][0]["coverage"]
    _, _, other = _seeded_run(tmp_path, capsys, "other", "--seed", str((seed + 1) % 2**32))
    assert other["seed"] == (seed + 1) % 2**32


def test_the_ci_budget_draws_from_a_fresh_seed_and_says_it(tmp_path, capsys):
    args = ["check", "--encoding", "t5", "--backend", "torch", "--variant", "fast"]
    args += ["--property", "oracle", "--dtype", "float64", "--budget", "ci"]
    seeds = []
    for name in ("one", "two"):
        assert main([*args, "--json", str(tmp_path / f"{name}.json")]) == 0
        first = capsys.readouterr().out.splitlines()[0]
        seeds.append(json.loads((tmp_path / f"{name}.json").read_text())["seed"])
        assert first == f"seed {seeds[-1]} (replay this run with --seed {seeds[-1]})"
    assert all(isinstance(s, int) for s in seeds)


@pytest.mark.parametrize("bad", ["-1", "4294967296", "x"])
def test_a_bad_seed_is_refused_with_the_range(bad, capsys):
    with pytest.raises(SystemExit) as caught:
        main(["check", "--seed", bad])
    assert caught.value.code == 2
    assert "must be an integer in [0, 2**32)" in capsys.readouterr().err


def test_workers_check_the_same_draws_as_one_process(tmp_path, capsys):
    args = ["check", "--encoding", "t5", "--encoding", "alibi", "--backend", "torch"]
    args += ["--property", "oracle", "--property", "batch", "--budget", "dev", "--seed", "7"]

    def run(name, *workers):
        report = tmp_path / f"{name}.json"
        code = main([*args, *workers, "--json", str(report)])
        capsys.readouterr()
        return code, json.loads(report.read_text())

    code_one, one = run("one")
    code_two, two = run("two", "-n", "2")
    assert code_one == code_two == 0
    keys = ("encoding", "variant", "property", "dtype", "status", "examples", "coverage")
    assert [{k: r[k] for k in keys} for r in two["results"]] == [
        {k: r[k] for k in keys} for r in one["results"]
    ]
    assert two["seed"] == one["seed"] == 7


@pytest.mark.parametrize("bad", ["0", "-2", "many"])
def test_bad_workers_are_refused(bad, capsys):
    with pytest.raises(SystemExit):
        main(["check", "-n", bad])
    assert "must be a positive integer or 'auto'" in capsys.readouterr().err


@pytest.mark.parametrize(
    ("where", "words"),
    [("missing/report.json", "no directory"), (".", "is a directory")],
)
def test_an_unwritable_report_is_refused_before_any_work(where, words, tmp_path, capsys):
    path = tmp_path / where
    args = ["check", "--encoding", "t5", "--property", "oracle", "--json", str(path)]
    assert main(args) == 2
    captured = capsys.readouterr()
    assert f"--json {path}: {words}" in captured.err
    assert "seed" not in captured.out  # refused before the run began


def test_a_run_that_checked_nothing_exits_2(capsys):
    # xl declares no zero_tables: every selected check is skipped
    args = ["check", "--encoding", "xl", "--property", "zero_tables", "--dtype", "float64"]
    assert main(args) == 2
    assert "every selected check was skipped" in capsys.readouterr().err


@pytest.mark.parametrize(
    ("args", "env", "words"),
    [
        (["--variant", "quick"], {}, "--variant quick is not a bundled variant: fast, reference"),
        (["--budget", "ci"], {"RELPOS_SEED": "x"}, "RELPOS_SEED='x' must be an integer in"),
        ([], {"HYPOTHESIS_PROFILE": "bogus"}, "HYPOTHESIS_PROFILE='bogus' must be one of"),
        (
            ["--target", "tests.targets.hostile:correct", "--variant", "fast"],
            {},
            "--variant fast names a bundled implementation",
        ),
    ],
)
def test_a_slip_is_a_usage_error_naming_the_value(args, env, words, monkeypatch, capsys):
    from relpos.equivalence import profiles

    for name, value in env.items():
        monkeypatch.setenv(name, value)
    if "RELPOS_SEED" in env:
        monkeypatch.setitem(profiles._seed, "run", profiles._seed_from_environment())
    assert main(["check", "--encoding", "shaw", *args]) == 2
    captured = capsys.readouterr()
    assert words in captured.err and "Traceback" not in captured.err
    assert "seed" not in captured.out  # refused before the run began
