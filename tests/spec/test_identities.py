"""Every identity of every encoding is proved, and the proof machinery can fail."""

from __future__ import annotations

import pytest
import sympy as sp

from relpos.equivalence.cli import main
from relpos.spec import all_encodings
from relpos.spec._proofs import exhaustive, symbolic_zero

IDENTITIES = [(enc, identity) for enc in all_encodings() for identity in enc.identities()]


@pytest.mark.parametrize(
    ("encoding", "identity"), IDENTITIES, ids=[f"{e.name}-{i.name}" for e, i in IDENTITIES]
)
def test_identity_is_proved(encoding, identity):
    proof = identity.prove()
    assert proof.proved, proof.detail
    assert proof.method in {"symbolic", "exhaustive", "symbolic + exhaustive"}


def test_the_issue_identities_are_all_present():
    names = {(e.name, i.name.split(")")[0] + ")") for e, i in IDENTITIES if i.name[0] == "("}
    assert {
        ("xl", "(a)"),
        ("xl", "(b)"),
        ("xl", "(c)"),
        ("shaw", "(d)"),
        ("shaw", "(e)"),
        ("shaw", "(f)"),
        ("xl", "(f)"),
        ("shaw", "(g)"),
    } <= names


def test_symbolic_zero_rejects_a_nonzero_difference():
    x, y = sp.symbols("x y")
    proved, method, detail = symbolic_zero((x + y) ** 2 - (x**2 + y**2), "binomial")
    assert not proved and method == "symbolic" and "2*x*y" in detail


def test_symbolic_zero_rejects_a_nonzero_matrix_difference():
    n = sp.Symbol("n", integer=True, positive=True)
    a, b = sp.MatrixSymbol("a", 1, n), sp.MatrixSymbol("b", n, 1)
    c = sp.MatrixSymbol("c", n, 1)
    proved, _, _ = symbolic_zero(a * (b + c) - a * b, "missing term")
    assert not proved


def test_exhaustive_reports_the_first_counterexample():
    proved, _, detail = exhaustive(
        ((n,) for n in range(10)), lambda n: None if n < 7 else "too big", "n < 7"
    )
    assert not proved and "(7,)" in detail


def test_a_failing_identity_is_reported_not_raised():
    from relpos.spec import Identity

    def crash():
        raise RuntimeError("boom")

    proof = Identity("crash", "crashes", crash).prove()
    assert not proof.proved and proof.method == "error" and "boom" in proof.detail


def test_relpos_spec_prove_prints_a_table_and_exits_zero(capsys):
    assert main(["spec", "prove"]) == 0
    out = capsys.readouterr().out
    assert "(c) rel-shifts" in out and "proved" in out and "FAILED" not in out
    assert f"all {len(IDENTITIES)} identities proved" in out
