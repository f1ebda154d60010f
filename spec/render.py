"""Human-readable forms of the spec: the formula sheet of an encoding and the proof table."""

from __future__ import annotations

from collections.abc import Iterable

import sympy as sp

from relpos.spec._conventions import CONVENTIONS
from relpos.spec._encoding import Encoding, Proof
from relpos.spec._signature import DIMENSIONS
from relpos.spec.encodings import all_encodings, get

__all__ = ["proof_table", "prove", "show"]


def _shape(layouts: tuple[tuple[str | int, ...], ...]) -> str:
    return " or ".join("(" + ", ".join(str(d) for d in lay) + ")" for lay in layouts)


def show(name: str, *, latex: bool = False) -> str:
    """The formula sheet: title, arguments, formulas, glossary, conventions, differences from
    other code, citation. ``latex`` renders formulas as LaTeX instead of Unicode art."""
    enc = get(name)
    lines = [enc.title, "=" * len(enc.title), "", enc.summary, "", "Arguments", "---------"]
    for t in enc.tensors:
        need = "required" if t.required else "optional"
        lines.append(f"  {t.name:<10} {_shape(t.layouts)}  {t.kind}, {need}")
        lines.append(f"  {'':<10} {t.doc}")
    for o in enc.options:
        lines.append(f"  {o.name:<10} option, default {o.default!r}")
        lines.append(f"  {'':<10} {o.doc}")
    lines += ["", "Formulas", "--------"]
    for label, formula in enc.formulas().items():
        text = sp.latex(formula) if latex else sp.pretty(formula, use_unicode=True)
        lines.append(f"{label}:")
        lines.extend("    " + row for row in text.splitlines())
        lines.append("")
    variants = enc.variants()
    if variants:
        lines += ["Variants", "--------"]
        lines += [*variants, ""]
    lines += ["Glossary", "--------"]
    lines += [f"  {sym:<16} {meaning}" for sym, meaning in enc.glossary]
    lines += [f"  {dim:<16} {meaning}" for dim, meaning in DIMENSIONS.items()]
    lines += ["", "Conventions (every encoding)", "----------------------------"]
    lines += [f"  - {c}" for c in CONVENTIONS]
    lines += ["", f"Conventions ({enc.name})", "-" * (14 + len(enc.name))]
    lines += [f"  - {c}" for c in enc.conventions]
    lines += ["", "How other code differs", "----------------------"]
    lines += [f"  - {d}" for d in enc.differences]
    lines += ["", "Citation", "--------"]
    lines += [f"  {ref}" for ref in enc.references]
    return "\n".join(lines) + "\n"


def prove(encodings: Iterable[Encoding] | None = None) -> list[tuple[str, str, Proof]]:
    """Prove every identity of the chosen encodings (all by default)."""
    chosen = all_encodings() if encodings is None else list(encodings)
    return [
        (enc.name, identity.name, identity.prove())
        for enc in chosen
        for identity in enc.identities()
    ]


def proof_table(results: list[tuple[str, str, Proof]], *, verbose: bool = False) -> str:
    """A plain-text table: encoding, identity, method, result, seconds (and the detail)."""
    header = ("encoding", "identity", "method", "result", "seconds")
    rows = [
        (enc, name, p.method, "proved" if p.proved else "FAILED", f"{p.seconds:.2f}")
        for enc, name, p in results
    ]
    widths = [max(len(r[c]) for r in [header, *rows]) for c in range(len(header))]
    fmt = "  ".join(f"{{:<{w}}}" for w in widths)
    lines = [fmt.format(*header), fmt.format(*("-" * w for w in widths))]
    for row, (_, _, proof) in zip(rows, results, strict=True):
        lines.append(fmt.format(*row))
        if verbose or not proof.proved:
            lines.append(f"    {proof.detail}")
    return "\n".join(lines) + "\n"
