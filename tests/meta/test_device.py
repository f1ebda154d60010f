"""``--device``: the checked code's tensors on a chosen device, the oracle on the CPU.

The checks on a GPU run where one exists and skip with the reason elsewhere; the rest (names
refused, an unreachable device refused before any work, the device reaching the
implementation's tensors and the report) runs everywhere."""

from __future__ import annotations

import json

import numpy as np
import pytest

from relpos.equivalence import backends
from relpos.equivalence.cli import main
from relpos.equivalence.properties import PROPERTIES
from relpos.spec import all_encodings


@pytest.fixture(autouse=True)
def _device_restored(monkeypatch):
    """--device sets RELPOS_DEVICE for this process and its workers: put it back."""
    monkeypatch.delenv(backends.DEVICE_VARIABLE, raising=False)


@pytest.mark.parametrize("bad", ["gpu", "cuda:", "cuda:x", "CUDA", "tpu:0"])
def test_a_device_name_is_refused_with_what_is_allowed(bad, capsys):
    with pytest.raises(SystemExit):
        main(["check", "--device", bad])
    assert f"--device={bad!r} must be cpu, cuda or cuda:N" in capsys.readouterr().err
    with pytest.raises(ValueError, match=r"device=.* must be cpu, cuda or cuda:N"):
        backends.set_device(bad)


def test_a_malformed_environment_device_names_the_variable(monkeypatch):
    monkeypatch.setenv(backends.DEVICE_VARIABLE, "gpu0")
    with pytest.raises(ValueError, match="RELPOS_DEVICE='gpu0' must be cpu, cuda or cuda:N"):
        backends.device()


def test_the_cpu_is_the_default_and_every_backend_reaches_it():
    assert backends.device() == "cpu"
    assert backends.device_problems("cpu") == {}


def test_an_unreachable_device_is_refused_before_any_work(capsys):
    torch = pytest.importorskip("torch")
    if torch.cuda.device_count() > 7:
        pytest.skip("this machine has a cuda:7")
    code = main(["check", "--backend", "torch", "--encoding", "alibi", "--device", "cuda:7"])
    err = capsys.readouterr().err
    assert code == 2
    assert "relpos check: --device cuda:7: torch: torch sees" in err
    assert backends.device() == "cpu"  # nothing was moved


def test_the_device_reaches_the_implementations_tensors(monkeypatch):
    """The tensors an implementation is called with are on the chosen device: on the meta
    device, which holds no data, the implementation's own input check says so."""
    pytest.importorskip("torch")
    from relpos.impls import get
    from relpos.spec import ArgumentError

    monkeypatch.setattr(backends, "device", lambda: "meta")
    impl = get("alibi", "torch", "fast")
    rng = np.random.default_rng(0)
    q, k, v = (rng.standard_normal((1, 2, 3, 4)) for _ in range(3))
    converted = backends.backend("torch").convert({"q": q, "k": k, "v": v}, "float32")
    assert {str(t.device) for t in converted.values()} == {"meta"}
    with pytest.raises(ArgumentError, match="on device meta"):
        impl.load()(converted["q"], converted["k"], converted["v"])


def test_the_report_records_the_device(tmp_path, capsys):
    pytest.importorskip("torch")
    report = tmp_path / "r.json"
    args = ["check", "--backend", "torch", "--encoding", "alibi", "--variant", "fast"]
    args += ["--property", "golden", "--dtype", "float32", "--device", "cpu"]
    assert main([*args, "--json", str(report)]) == 0
    assert "tensors on cpu" in capsys.readouterr().out
    assert json.loads(report.read_text())["environment"]["device"] == "cpu"


def _gpu(backend: str) -> None:
    pytest.importorskip(backend)
    problems = backends.device_problems("cuda", (backend,))
    if problems:
        pytest.skip(f"--device cuda: {problems[backend]}")


@pytest.mark.parametrize("backend", ["torch", "jax"])
@pytest.mark.parametrize("encoding", [e.name for e in all_encodings()])
def test_the_bundled_implementations_conform_on_a_gpu(backend, encoding, capsys):
    _gpu(backend)
    args = ["check", "--backend", backend, "--encoding", encoding, "--device", "cuda"]
    for name in ("oracle", "golden", "gradients", "offset", "history"):
        assert name in PROPERTIES
        args += ["--property", name]
    code = main(args)
    out = capsys.readouterr().out
    assert code == 0, out


def test_the_plugin_refuses_a_device_its_target_cannot_reach(tmp_path):
    torch = pytest.importorskip("torch")
    if torch.cuda.device_count() > 7:
        pytest.skip("this machine has a cuda:7")
    import os
    import subprocess
    import sys

    args = ["-p", "no:cacheprovider", "--relpos-encoding", "shaw", "--relpos-budget", "dev"]
    args += ["--relpos-target", "relpos.impls.torch.shaw:shaw_reference", "-k", "golden-float64"]
    env = {k: v for k, v in os.environ.items() if k != backends.DEVICE_VARIABLE}

    def run(device: str) -> subprocess.CompletedProcess:
        return subprocess.run(
            [sys.executable, "-m", "pytest", *args, "--relpos-device", device],
            cwd=tmp_path,
            env=env,
            capture_output=True,
            text=True,
            check=False,
        )

    refused = run("cuda:7")
    assert refused.returncode == 4, refused.stdout + refused.stderr  # a usage error
    assert "relpos: --relpos-device cuda:7: torch: torch sees" in refused.stderr
    ran = run("cpu")
    assert ran.returncode == 0 and "1 passed" in ran.stdout, ran.stdout + ran.stderr


def test_a_target_in_its_worker_process_conforms_on_a_gpu(capsys):
    """A target runs in a worker process of its own, which gets the checker's device."""
    _gpu("torch")
    args = ["check", "--target", "relpos.impls.torch.shaw:shaw_reference", "--encoding", "shaw"]
    code = main([*args, "--property", "oracle", "--property", "golden", "--device", "cuda"])
    assert code == 0, capsys.readouterr().out
