"""The conformance matrix fits the terminal it prints to; the JSON keeps every detail."""

from __future__ import annotations

import pytest

from relpos.equivalence.properties import PROPERTIES
from relpos.equivalence.report import matrix
from relpos.equivalence.runner import Result
from relpos.impls import registry


def _results() -> list[Result]:
    """Every registered implementation under every property, with wide cells."""
    statuses = ("pass", "fail", "error", "skip")
    return [
        Result(
            impl.encoding,
            impl.backend,
            impl.variant,
            prop,
            "float64",
            statuses[(n + m) % len(statuses)],
            examples=100 + n,
            worst_ratio=0.123456 * (n + 1),
        )
        for n, impl in enumerate(registry())
        for m, prop in enumerate(PROPERTIES)
    ]


@pytest.mark.parametrize("width", [100, 80, 160])
def test_the_matrix_fits_the_width_and_keeps_every_cell(width):
    results = _results()
    text = matrix(results, width=width)
    lines = text.splitlines()
    assert max(len(line) for line in lines) <= width, max(lines, key=len)
    panels = text.split("\n\n")
    assert len(panels) > 1  # every property on one line would need far more than 160 columns
    headers = [panel.splitlines()[0].split() for panel in panels]
    assert all(h[0] == "implementation" for h in headers)
    assert [p for h in headers for p in h[1:]] == list(PROPERTIES)  # each column once, in order
    for panel in panels:  # each panel repeats every implementation's row
        rows = {line.split()[0] for line in panel.splitlines()[2:] if line[:1].strip()}
        assert {impl.id for impl in registry()} <= rows


def test_the_default_width_is_the_terminals(monkeypatch):
    monkeypatch.setenv("COLUMNS", "100")
    text = matrix(_results())
    assert max(len(line) for line in text.splitlines()) <= 100
    assert text == matrix(_results(), width=100)


def test_coverage_accumulates_what_the_draws_reached():
    from relpos.equivalence.coverage import Coverage, summary
    from relpos.equivalence.draws import Draw

    def draw(qlen, mlen, n_head, clip):
        dims = {"bsz": 1, "n_head": n_head, "qlen": qlen, "mlen": mlen, "d_head": 4}
        return Draw("shaw", dims, {"clip": clip, "key_query": False, "scale": None})

    c = Coverage()
    c.add(draw(3, 0, 1, (-8, 8)))
    c.add(draw(5, 9, 3, (-1, 1)))
    doc = c.to_json()
    assert doc["examples"] == 2 and doc["qlen_max"] == 5 and doc["klen_max"] == 14
    assert doc["position_max"] == 13 and doc["n_head"] == [1, 3] and doc["d_head_max"] == 4
    assert doc["options"]["clip"] == ["(-1, 1)", "(-8, 8)"]
    assert doc["regions"] == ["clipped above", "clipped below", "inside the clip"]
    line = summary({"shaw": c})
    assert line.startswith("coverage: 2 examples; qlen <= 5, klen <= 14, positions <= 13")
    assert "n_head 1-3 (2 distinct)" in line and "shaw: clipped above" in line
    assert summary({}) == "coverage: no example ran"


def test_a_result_records_the_coverage_of_its_examples():
    pytest.importorskip("torch")
    from relpos.equivalence.report import to_json
    from relpos.equivalence.runner import run_property

    result = run_property("oracle", next(iter(registry())), "float64", profile="ci")
    assert result.status == "pass"
    assert result.coverage.examples == result.examples > 0
    doc = to_json([result], budget="ci")
    assert doc["results"][0]["coverage"]["examples"] == result.examples
    assert doc["coverage"]["shaw"]["qlen_max"] == result.coverage.qlen
    assert "coverage: " in matrix([result], width=100)
