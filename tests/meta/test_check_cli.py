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
