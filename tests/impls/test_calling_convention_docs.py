"""The documentation lists every argument of every encoding in its calling-convention table
(docs/implementations.md)."""

from __future__ import annotations

from pathlib import Path

from relpos.spec import all_encodings

PAGE = (Path(__file__).resolve().parents[2] / "docs" / "implementations.md").read_text()


def test_every_argument_is_in_the_calling_convention_table():
    table = PAGE.split("## The calling convention", 1)[1].split("\n## ", 1)[0]
    for enc in all_encodings():
        for name in [t.name for t in enc.tensors] + [o.name for o in enc.options]:
            assert f"`{name}`" in table, (enc.name, name)
