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
