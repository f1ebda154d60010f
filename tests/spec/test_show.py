"""``relpos spec show`` prints formulas, glossary, conventions and citation."""

from __future__ import annotations

import pytest

from relpos.equivalence.cli import main
from relpos.spec import ENCODINGS, get_encoding


@pytest.mark.parametrize("name", list(ENCODINGS))
def test_show_has_every_section(name, capsys):
    assert main(["spec", "show", name]) == 0
    out = capsys.readouterr().out
    enc = get_encoding(name)
    for section in (
        "Arguments",
        "Formulas",
        "Glossary",
        "Conventions (every encoding)",
        "How other code differs",
        "Citation",
    ):
        assert section in out
    for t in enc.tensors:
        assert f"  {t.name} " in out
    for ref in enc.references:
        assert f"arXiv:{ref.arxiv}" in out
    assert "mlen + i" in out


def test_show_latex_renders_formulas(capsys):
    assert main(["spec", "show", "shaw", "--latex"]) == 0
    out = capsys.readouterr().out
    assert r"\operatorname{scale}" in out or r"scale" in out
    assert r"\min\left(" in out and r"^{T}" in out


def test_shaw_and_xl_state_their_distance_sign(capsys):
    main(["spec", "show", "shaw"])
    shaw = capsys.readouterr().out
    main(["spec", "show", "xl"])
    xl = capsys.readouterr().out
    assert "pos_j - pos_i (key minus query)" in shaw
    assert "pos_i - pos_j (query minus key)" in xl
