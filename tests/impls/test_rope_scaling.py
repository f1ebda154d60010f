"""The bundled inverse frequencies and attention factors of RoPE's scaling variants
(``relpos.impls.<backend>.rope_scaling``) against the spec's exact values, in float32 and
float64, with the spec's argument errors; and bugs planted in them, caught."""

from __future__ import annotations

import importlib

import pytest

from relpos.equivalence.frequencies import BUNDLED, check_frequencies
from relpos.impls import BACKENDS, backend_available
from relpos.spec import ArgumentError
from relpos.spec.rope_scaling import VARIANTS, frequencies


def _bundled(backend: str):
    ok, why = backend_available(backend)
    if not ok:
        pytest.skip(why)
    if backend == "jax":
        from relpos.equivalence.backends import JaxBackend

        JaxBackend().jax  # noqa: B018 (64-bit types, as the checker runs JAX)
    return importlib.import_module(f"relpos.impls.{backend}.rope_scaling")


@pytest.mark.parametrize("backend", list(BACKENDS))
def test_every_variant_passes_in_float32_at_the_runs_budget(backend):
    _bundled(backend)
    results = check_frequencies(BUNDLED[backend], precision=True)
    assert [r.rope_type for r in results] == list(VARIANTS)
    for r in results:
        assert r.status == "pass", r.message
        assert r.examples > len(VARIANTS) and 0 < r.worst_ratio <= 1


@pytest.mark.parametrize("backend", list(BACKENDS))
def test_every_variant_passes_in_float64(backend):
    """float64's bounds are 2^29 times float32's: frequencies computed in float32 anywhere on
    the way (a base, a blend, a pair of factors) fail them (the planted test below)."""
    _bundled(backend)
    results = check_frequencies(BUNDLED[backend], dtype="float64", budget="dev", precision=True)
    for r in results:
        assert r.status == "pass", r.message


@pytest.mark.parametrize("backend", list(BACKENDS))
def test_the_frequencies_come_in_the_precision_asked_for(backend):
    module = _bundled(backend)
    for precision in ("float32", "float64"):
        inverse, factor = module.inverse_frequencies(
            "yarn",
            rotary_dim=8,
            factor=4.0,
            original_max_position_embeddings=64,
            precision=precision,
        )
        assert str(inverse.dtype).endswith(precision) and tuple(inverse.shape) == (4,)
        assert isinstance(factor, float)


#: Calls the spec refuses, each naming the argument it refuses.
BAD_CALLS = [
    ({"rope_type": "ntk", "rotary_dim": 8}, "rope_type"),
    ({"rope_type": "default", "rotary_dim": 7}, "rotary_dim"),
    ({"rope_type": "default", "rotary_dim": 8, "base": 1.0}, "base"),
    ({"rope_type": "default", "rotary_dim": 8, "seq_len": 0}, "seq_len"),
    ({"rope_type": "linear", "rotary_dim": 8}, "factor"),
    ({"rope_type": "linear", "rotary_dim": 8, "factor": float("nan")}, "factor"),
    ({"rope_type": "linear", "rotary_dim": 8, "factor": 2.0, "beta_fast": 32}, "beta_fast"),
    (
        {"rope_type": "dynamic", "rotary_dim": 2, "factor": 2.0,
         "original_max_position_embeddings": 16},
        "rotary_dim",
    ),
    (
        {"rope_type": "longrope", "rotary_dim": 4, "original_max_position_embeddings": 16,
         "short_factor": [1.0], "long_factor": [1.0, 2.0], "factor": 2.0},
        "short_factor",
    ),
    (
        {"rope_type": "llama3", "rotary_dim": 8, "factor": 8.0,
         "original_max_position_embeddings": 16, "low_freq_factor": 4.0,
         "high_freq_factor": 4.0},
        "high_freq_factor",
    ),
    ({"rope_type": "proportional", "rotary_dim": 16, "head_dim": 8}, "rotary_dim"),
]  # fmt: skip


@pytest.mark.parametrize("backend", list(BACKENDS))
@pytest.mark.parametrize(("call", "argument"), BAD_CALLS)
def test_a_bad_call_is_refused_with_the_specs_words(backend, call, argument):
    module = _bundled(backend)
    with pytest.raises(ArgumentError) as spec_error:
        frequencies(**call)
    with pytest.raises(ArgumentError) as ours:
        module.inverse_frequencies(**call)
    assert str(ours.value) == str(spec_error.value)
    assert argument in str(ours.value)


@pytest.mark.parametrize("backend", list(BACKENDS))
def test_an_unknown_precision_is_refused_by_name(backend):
    module = _bundled(backend)
    with pytest.raises(ArgumentError) as refused:
        module.inverse_frequencies(rotary_dim=8, precision="bfloat16")
    assert str(refused.value) == (
        "`precision` must be one of float32, float64, got precision='bfloat16'"
    )


# -- planted in the bundled code: each caught by the check that exists for it ---------------


def _planted_plan(monkeypatch, change):
    """Every backend's plan, with ``change(plan, call)`` applied to it."""
    from relpos.impls import _rope_scaling

    honest = _rope_scaling.plan

    def planted(rope_type, **call):
        return change(honest(rope_type, **call), rope_type, call)

    for backend in BACKENDS:
        if backend_available(backend)[0]:
            module = importlib.import_module(f"relpos.impls.{backend}.rope_scaling")
            monkeypatch.setattr(module, "plan", planted)


def _no_llama3_bands(plan, rope_type, call):
    from dataclasses import replace

    return replace(plan, bands=None) if rope_type == "llama3" else plan


def _dynamic_grown_from_seq_len_alone(plan, rope_type, call):
    """The base grown as if every call were past L0: at seq_len <= L0 it is not default."""
    from dataclasses import replace

    if rope_type != "dynamic":
        return plan
    r, s = call["rotary_dim"], call["factor"]
    L0 = call["original_max_position_embeddings"]
    length = call.get("seq_len") or L0
    grown = float(call.get("base", 10000)) * (s * length / L0 - (s - 1)) ** (r / (r - 2))
    return replace(plan, base=grown)


def _grown_base_in_float32(plan, rope_type, call):
    """dynamic's grown base rounded to float32 on the way: within float32's bounds, far
    outside float64's."""
    from dataclasses import replace

    import numpy as np

    return replace(plan, base=float(np.float32(plan.base))) if rope_type == "dynamic" else plan


PLANTED = {
    "llama3_unscaled": (_no_llama3_bands, "llama3", "float32"),
    "dynamic_below_L0": (_dynamic_grown_from_seq_len_alone, "dynamic", "float32"),
    "grown_base_in_float32": (_grown_base_in_float32, "dynamic", "float64"),
}


@pytest.mark.parametrize("backend", list(BACKENDS))
@pytest.mark.parametrize("bug", sorted(PLANTED))
def test_a_bug_planted_in_the_bundled_code_is_caught(monkeypatch, backend, bug):
    _bundled(backend)
    change, rope_type, dtype = PLANTED[bug]
    _planted_plan(monkeypatch, change)
    (result,) = check_frequencies(
        BUNDLED[backend], [rope_type], dtype=dtype, budget="dev", isolate=False, precision=True
    )
    assert result.status == "fail", result.message
    assert result.call is not None and result.worst_ratio > 1


# -- the command ------------------------------------------------------------------------------


def test_the_command_without_a_target_checks_each_installed_backend(capsys, tmp_path):
    import json

    from relpos.equivalence.cli import main

    installed = [b for b in BACKENDS if backend_available(b)[0]]
    if not installed:
        pytest.skip("neither torch nor jax is installed")
    report = tmp_path / "r.json"
    argv = ["frequencies", "--rope-type", "llama3", "--budget", "dev", "--json", str(report)]
    code = main(argv)
    out = capsys.readouterr().out
    assert code == 0, out
    assert f"{len(installed)} passed, 0 failed, 0 skipped (budget dev)" in out
    saved = json.loads(report.read_text())
    assert [t["target"] for t in saved["targets"]] == [BUNDLED[b] for b in installed]
    assert all(r["status"] == "pass" for t in saved["targets"] for r in t["results"])


def test_the_command_refuses_a_half_type_for_the_bundled_code(capsys):
    from relpos.equivalence.cli import main

    assert main(["frequencies", "--dtype", "bfloat16"]) == 2
    err = capsys.readouterr().err
    assert "--dtype bfloat16: the bundled implementations compute frequencies in float32 or " in err


def test_jax_float64_without_64_bit_types_is_refused_not_rounded():
    """Without jax_enable_x64, JAX would compute 'float64' in float32: refused instead (in a
    fresh process, since the checker enables 64-bit types in this one)."""
    import subprocess
    import sys

    if not backend_available("jax")[0]:
        pytest.skip("jax is not installed")
    code = (
        "from relpos.impls.jax.rope_scaling import inverse_frequencies\n"
        "from relpos.spec import ArgumentError\n"
        "try:\n"
        "    inverse_frequencies(rotary_dim=8, precision='float64')\n"
        "except ArgumentError as exc:\n"
        "    print(exc)\n"
    )
    run = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True)
    assert run.returncode == 0, run.stderr
    assert "precision='float64'" in run.stdout and "jax_enable_x64" in run.stdout, run.stdout
