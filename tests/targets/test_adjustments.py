"""--allow and --exclude adjust a named profile for one run: each is checked against the
encoding, changes what is drawn, and is shown with the profile's name."""

from __future__ import annotations

import json

import pytest
from hypothesis import HealthCheck, given, settings

from relpos.equivalence.adjustments import adjust, parse
from relpos.equivalence.cli import main
from relpos.equivalence.strategies import draws
from relpos.equivalence.targets import check_target, make_target, restriction
from relpos.spec import ArgumentError, get_encoding

HERE = "tests.targets.hostile"
XL = get_encoding("xl")


@pytest.mark.parametrize(
    ("text", "parsed"),
    [
        ("clamp_len=0,1", ("clamp_len", [0, 1])),
        ("attn_type=uni", ("attn_type", ["uni"])),
        ("clip=(-2, 2),(-1, 1)", ("clip", [(-2, 2), (-1, 1)])),
        ("clamp_len=None", ("clamp_len", [None])),
        ("memory", ("memory", None)),
    ],
)
def test_values_are_python_literals_or_words(text, parsed):
    assert parse("allow", text) == parsed


@pytest.mark.parametrize(
    ("kind", "text", "message"),
    [
        ("allow", "clamp=0", "`allow` must name one of d_model, attn_type, clamp_len"),
        ("exclude", "clamp_len=-3", "`exclude clamp_len` must be None (no clamp) or an integer"),
        ("allow", "memory=1", "`allow` takes no values for memory (say allow memory)"),
        ("exclude", "attn_type", "`exclude` must give the values: attn_type=VALUE,..."),
        ("allow", "=1", "`allow` must be NAME or NAME=VALUE[,VALUE...], got '=1'"),
    ],
)
def test_a_bad_adjustment_says_what_is_allowed(kind, text, message):
    with pytest.raises(ArgumentError) as info:
        adjust(XL, XL.profile("xl"), **{kind: [text]})
    assert str(info.value).startswith(message), str(info.value)


def _allowed_clamps(profile, dims):
    """The clamp_len values a profile lets the strategies draw at ``dims``."""
    candidates = XL.option_values(dims)["clamp_len"]
    narrow = restriction(XL, profile).options.get("clamp_len")
    return candidates if narrow is None else narrow(dims, candidates)


DIMS = [
    {"bsz": 1, "n_head": 1, "qlen": q, "mlen": m, "klen": q + m, "d_head": 2, "d_model": 4}
    for q, m in ((1, 0), (4, 2), (12, 6))
]


@pytest.mark.parametrize("dims", DIMS, ids=lambda d: f"qlen{d['qlen']}-mlen{d['mlen']}")
def test_allow_lets_a_value_the_profile_forbids_be_drawn_and_exclude_never(dims):
    named = XL.profile("transformer-xl")
    assert 0 in XL.option_values(dims)["clamp_len"]  # the spec draws it
    assert 0 not in _allowed_clamps(named, dims)
    allowed = adjust(XL, named, allow=["clamp_len=0"])
    assert 0 in _allowed_clamps(allowed, dims)
    assert set(_allowed_clamps(named, dims)) <= set(_allowed_clamps(allowed, dims))
    assert allowed.label == "transformer-xl (allow clamp_len=0)"
    excluded = adjust(XL, XL.profile("xl"), exclude=["clamp_len=0"])
    assert 0 not in _allowed_clamps(excluded, dims)
    assert adjust(XL, named, exclude=["memory"]).memory is False


def test_an_excluded_value_is_never_drawn():
    excluded = restriction(XL, adjust(XL, XL.profile("xl"), exclude=["clamp_len=0"]))

    @settings(max_examples=60, database=None, suppress_health_check=list(HealthCheck))
    @given(draws("xl", "oracle", restrict=excluded))
    def never_zero(draw):
        assert draw.options["clamp_len"] != 0

    never_zero()


def test_exclude_steps_around_a_value_the_target_reads_otherwise(tmp_path, capsys):
    pytest.importorskip("torch")
    path = f"{HERE}:clamp_zero_is_no_clamp"
    narrowed = make_target(path, encoding="xl", exclude=["clamp_len=0"])
    assert narrowed.profile.label == "xl (exclude clamp_len=0)"
    (result,) = check_target(narrowed, properties=["golden"], dtypes=["float64"], budget="dev")
    assert result.status == "pass", result.message
    (wrong,) = check_target(
        make_target(path, encoding="xl"), properties=["golden"], dtypes=["float64"], budget="dev"
    )
    assert wrong.status == "fail" and "clamp_len" in wrong.message, wrong.message

    report = tmp_path / "report.json"
    argv = ["check", "--target", path, "--encoding", "xl", "--property", "golden"]
    argv += ["--dtype", "float64", "--exclude", "clamp_len=0", "--json", str(report)]
    assert main(argv) == 0
    assert "under profile xl (exclude clamp_len=0)" in capsys.readouterr().err
    assert json.loads(report.read_text())["adjustments"] == ["exclude clamp_len=0"]


def test_an_adjustment_without_a_target_or_with_a_bad_name_is_a_usage_error(capsys):
    pytest.importorskip("torch")
    assert main(["check", "--encoding", "xl", "--exclude", "clamp_len=0"]) == 2
    assert "--exclude needs --target" in capsys.readouterr().err
    argv = ["check", "--target", f"{HERE}:correct", "--encoding", "shaw", "--allow", "nope=1"]
    assert main(argv) == 2
    assert "`allow` must name one of clip, key_query, scale, memory, positions, rel_v" in (
        capsys.readouterr().err
    )


def test_the_plugin_takes_the_same_adjustments(tmp_path):
    pytest.importorskip("torch")
    import os
    import subprocess
    import sys
    from pathlib import Path

    root = Path(__file__).resolve().parents[2]
    env = {
        **os.environ,
        "PYTHONPATH": os.pathsep.join([str(root), os.environ.get("PYTHONPATH", "")]),
    }
    common = [sys.executable, "-m", "pytest", "-p", "no:cacheprovider", "-k", "golden-float64"]
    common += ["--relpos-target", f"{HERE}:clamp_zero_is_no_clamp", "--relpos-encoding", "xl"]

    def run(*extra):
        return subprocess.run(
            [*common, *extra], cwd=tmp_path, env=env, capture_output=True, text=True, check=False
        )

    wrong = run()
    assert wrong.returncode == 1 and "1 failed" in wrong.stdout, wrong.stdout
    narrowed = run("--relpos-exclude", "clamp_len=0")
    assert narrowed.returncode == 0 and "1 passed" in narrowed.stdout, narrowed.stdout
