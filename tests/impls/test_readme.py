"""The README documents every argument of every encoding in its calling-convention table."""

from __future__ import annotations

from pathlib import Path

from relpos.spec import all_encodings

README = (Path(__file__).resolve().parents[2] / "README.md").read_text()


def test_every_argument_is_in_the_calling_convention_table():
    table = README.split("### The calling convention", 1)[1].split("\n## ", 1)[0]
    for enc in all_encodings():
        for name in [t.name for t in enc.tensors] + [o.name for o in enc.options]:
            assert f"`{name}`" in table, (enc.name, name)
