"""Third-party targets: conventions, findings (exceptions, shapes, dtypes), diagnosis, the
API, the command line and the pytest plugin. The targets are small torch functions written
to libraries' conventions (tests/targets/conventional.py)."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

from relpos.equivalence import check_implementation
from relpos.equivalence.cli import main
from relpos.equivalence.targets import check_target, diagnose, load_callable, make_target
from relpos.spec import ArgumentError

pytest.importorskip("torch")

HERE = "tests.targets.conventional"
ROOT = Path(__file__).resolve().parents[2]
QUICK = {"properties": ["oracle", "masked_rows"], "dtypes": ["float64", "float32"]}


def test_a_library_convention_passes_under_its_profile():
    results = check_implementation(
        f"{HERE}:bert_relative_key",
        encoding="shaw",
        profile="hf-bert-relative-key",
        properties=["oracle", "gradients", "masked_rows", "batch", "wide_range"],
        dtypes=["float64", "float32"],
        budget="ci",
    )
    assert {r.status for r in results} == {"pass"}
    assert all(r.extra["profile"] == "hf-bert-relative-key" for r in results)


def test_the_same_function_fails_the_spec_and_is_diagnosed():
    with pytest.raises(AssertionError) as caught:
        check_implementation(f"{HERE}:bert_relative_key", encoding="shaw", budget="ci", **QUICK)
    report = str(caught.value)
    assert "does not conform to shaw under profile shaw" in report
    assert "reproduce_target(" in report
    assert "distance query_minus_key" in report
    assert "profile hf-bert-relative-key" in report.splitlines()[-1]


def test_transformer_xl_conventions_are_diagnosed():
    target = make_target(f"{HERE}:txl_style", encoding="xl")
    d = diagnose(target)
    assert d.profiles == ["transformer-xl"], d
    assert d.differences == {"clamp": "upper", "mask": "hide", "masked_rows": "nan"}
    assert "profile transformer-xl" in str(d)
    passed = check_target(
        make_target(f"{HERE}:txl_style", encoding="xl", profile="transformer-xl"),
        budget="ci",
        **QUICK,
    )
    assert {r.status for r in passed} == {"pass"}


def test_an_exception_is_a_finding_with_the_smallest_input():
    (result,) = check_target(
        make_target(f"{HERE}:raises_on_memory", encoding="shaw"),
        properties=["oracle"],
        dtypes=["float64"],
        budget="ci",
    )
    assert result.status == "error"
    assert "raised ValueError: memory is not supported" in result.message
    # shrunk: the smallest input with memory
    assert result.draw.dims["mlen"] == 1 and result.draw.dims["qlen"] == 1
    assert "reproduce_target(" in result.repro


@pytest.mark.parametrize(
    ("name", "words"),
    [
        ("wrong_shape", "returned out of shape"),
        ("wrong_dtype", "returned out of dtype"),
    ],
)
def test_wrong_shapes_and_dtypes_are_reported(name, words):
    (result,) = check_target(
        make_target(f"{HERE}:{name}", encoding="shaw"),
        properties=["oracle"],
        dtypes=["float64"],
        budget="ci",
    )
    assert result.status == "fail" and words in result.message, result.message


def test_a_registered_implementation_passes_as_a_target():
    jax = pytest.importorskip("jax")
    assert jax
    target = make_target("relpos.impls.jax.shaw:shaw_reference", encoding="shaw")
    assert target.backend == "jax"
    (result,) = check_target(target, properties=["oracle"], dtypes=["float64"], budget="ci")
    assert result.status == "pass", result.message


@pytest.mark.parametrize(
    ("path", "words"),
    [
        ("no_colon", "must read 'package.module:function'"),
        ("relpos_no_such_module:f", "must name an importable module"),
        (f"{HERE}:missing", "must name an attribute"),
        (f"{HERE}:torch", "must be callable"),
    ],
)
def test_bad_target_paths_are_clear(path, words):
    with pytest.raises(ArgumentError, match=words):
        load_callable(path)


def test_unknown_profiles_list_the_known_ones():
    with pytest.raises(ArgumentError, match="hf-bert-relative-key"):
        make_target(f"{HERE}:bert_relative_key", encoding="shaw", profile="bert")


def test_check_target_from_the_command_line(tmp_path, capsys):
    report = tmp_path / "r.json"
    args = ["check", "--target", f"{HERE}:bert_relative_key", "--encoding", "shaw"]
    args += ["--property", "oracle", "--dtype", "float64", "--budget", "ci"]
    assert main([*args, "--profile", "hf-bert-relative-key", "--json", str(report)]) == 0
    doc = json.loads(report.read_text())
    assert doc["target"] == f"{HERE}:bert_relative_key"
    assert doc["profile"] == "hf-bert-relative-key" and doc["budget"] == "ci"
    assert doc["results"][0]["status"] == "pass"
    assert main(args) == 1
    assert "diagnosis" in capsys.readouterr().out


def test_profiles_command_lists_every_profile(capsys):
    from relpos.spec import all_encodings

    assert main(["profiles"]) == 0
    out = capsys.readouterr().out
    for enc in all_encodings():
        for p in enc.all_profiles():
            assert f"  {p.name}: " in out


def _pytest(tmp_path, *args):
    env = {**os.environ, "PYTHONPATH": str(ROOT)}
    common = ["-p", "no:cacheprovider", "--relpos-encoding", "shaw", "--relpos-budget", "dev"]
    return subprocess.run(
        [sys.executable, "-m", "pytest", *common, *args],
        cwd=tmp_path,
        env=env,
        capture_output=True,
        text=True,
        check=False,
    )


def test_pytest_plugin_adds_items_and_junit(tmp_path):
    (tmp_path / "test_own.py").write_text("def test_own():\n    assert True\n")
    junit = tmp_path / "junit.xml"
    run = _pytest(
        tmp_path, "--relpos-target", "relpos.impls.torch.shaw:shaw_reference", f"--junitxml={junit}"
    )
    assert run.returncode == 0, run.stdout
    report = junit.read_text()
    ran = report.count("<testcase") - report.count("<skipped")
    assert f"{ran} passed" in run.stdout, run.stdout
    for item in ("oracle-float64", "golden-float16", "index_tables-float64"):
        assert f'name="relpos[{item}]"' in report, item
    run = _pytest(tmp_path, "--relpos-target", f"{HERE}:bert_relative_key", "-k", "oracle-float64")
    assert run.returncode == 1 and "1 failed" in run.stdout, run.stdout
    assert "profile hf-bert-relative-key" in run.stdout


def test_the_documented_adapter_example_works(tmp_path, monkeypatch):
    text = (ROOT / "docs" / "adapters.md").read_text()
    start = text.index("def call(target, q, k, v,")
    code = text[text.rindex("```python", 0, start) + len("```python") : text.index("```", start)]
    (tmp_path / "readme_adapter.py").write_text(code)
    monkeypatch.syspath_prepend(str(tmp_path))
    results = check_implementation(
        f"{HERE}:bshd_relative_attention",
        encoding="shaw",
        profile="hf-bert-relative-key",
        adapter="readme_adapter:call",
        properties=["oracle", "gradients", "masked_rows"],
        dtypes=["float64", "float32"],
        budget="ci",
    )
    assert {r.status for r in results} == {"pass"}


@pytest.mark.parametrize(
    ("kw", "words"),
    [
        ({"dtypes": ["float8"]}, "`dtypes` must be among"),
        ({"properties": ["cross_backend"], "dtypes": ["bfloat16"]}, "must include a dtype"),
        ({"properties": ["speed"]}, "`property` must be one of"),
    ],
)
def test_bad_selections_are_clear(kw, words):
    with pytest.raises(ArgumentError, match=words):
        check_implementation(f"{HERE}:bert_relative_key", encoding="shaw", **kw)


def test_a_permuting_convention_keeps_its_gradients_checked():
    """Under the llama profile q and k reach the target with their features permuted; their
    gradients are mapped back and compared, not dropped."""
    target = make_target(f"{HERE}:llama_rope", encoding="rope", profile="llama")
    results = check_target(
        target, properties=["oracle", "gradients"], dtypes=["float64"], budget="ci"
    )
    assert {r.status for r in results} == {"pass"}, [r.message for r in results]
    import numpy as np

    from relpos.equivalence.draws import Draw

    draw = Draw(
        "rope",
        {"bsz": 1, "n_head": 1, "qlen": 3, "mlen": 1, "d_head": 4},
        {"base": 10, "rotary_dim": None, "scale": None},
        seed=3,
    )
    grads = target.output_gradients(
        draw.arguments(), "float64", np.ones((1, 1, 3, 4)), ("q", "k", "v")
    )
    assert set(grads) == {"q", "k", "v"}
    assert "llama" in diagnose(make_target(f"{HERE}:llama_rope", encoding="rope")).profiles


def test_a_profile_whose_convention_fixes_the_scale_is_recognised():
    """x-transformers' T5 bias comes with scale 1/sqrt(d_head): diagnosis keeps that scale
    for its candidates instead of drawing the default one."""
    target = make_target(f"{HERE}:xt_relative_position_bias", encoding="t5")
    d = diagnose(target)
    assert "x-transformers" in d.profiles, d
    assert d.differences.get("bias_scale") == "sqrt_d", d


def test_pytest_plugin_spreads_over_xdist_workers_on_one_reported_seed(tmp_path):
    pytest.importorskip("xdist")
    (tmp_path / "test_own.py").write_text("def test_own():\n    assert True\n")
    target = "relpos.impls.torch.shaw:shaw_reference"
    run = _pytest(tmp_path, "--relpos-target", target, "-n", "2", "-k", "oracle")
    assert run.returncode == 0, run.stdout
    assert "4 passed" in run.stdout, run.stdout
    # the seed this suite runs under (conftest sets it) reaches the plugin and is reported
    assert f"relpos: seed {os.environ['RELPOS_SEED']} " in run.stdout, run.stdout
