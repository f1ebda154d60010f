"""The documentation pages that the code knows, written at build time (an mkdocs hook).

Nothing here is copied by hand: each page is generated from the objects it documents, so the
site cannot drift from the code.

- ``encodings/<name>.md``: an encoding's formula sheet (its arguments, options, formulas
  rendered as MathML from the spec's SymPy expressions, variants, glossary, conventions, how
  other code differs, citation), its golden cases and the identities ``relpos spec prove``
  proves;
- ``reference/profiles.md``: every convention axis and named profile (``relpos profiles``);
- ``reference/properties.md``: every property, its dtypes and what it needs;
- ``reference/bad-inputs.md``: the bad-input table the oracle and every implementation meet
  with the same error text (``tests/bad_inputs.py``);
- ``reference/cli.md``: the help of every ``relpos`` command;
- ``index.md``: the README, its links made the site's;
- ``reference/benchmarks.md`` and ``reference/studies.md``: the committed results of
  ``relpos bench`` and ``relpos study run`` (tables and figures, read from
  ``benchmarks/results`` and ``studies/results``).

Run by ``mkdocs build`` (``hooks:`` in mkdocs.yml); ``python docs/hooks/generate.py DIR``
writes the same pages to DIR, to read them without building.
"""

from __future__ import annotations

import argparse
import io
import re
import sys
from collections.abc import Callable, Iterator
from contextlib import redirect_stdout
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]

#: The generated pages' folder for the encodings, and the reference pages.
ENCODINGS = "encodings"
REFERENCE = "reference"


def _math(latex: str) -> str:
    """A display formula as MathML (rendered by the browser, no script), with its LaTeX as
    the annotation a reader can copy."""
    from latex2mathml.converter import convert

    return convert(latex, display="block")


def _cell(text: object) -> str:
    return str(text).replace("|", "\\|").replace("\n", " ")


def _shape(layouts: tuple[tuple[str | int, ...], ...]) -> str:
    return " or ".join("(" + ", ".join(str(d) for d in lay) + ")" for lay in layouts)


def encoding_page(name: str) -> str:
    """The formula sheet of encoding ``name``, as a page."""
    import sympy as sp

    from relpos.spec import get_encoding
    from relpos.spec._conventions import CONVENTIONS
    from relpos.spec._signature import DIMENSIONS

    enc = get_encoding(name)
    out = [f"# {enc.title}", "", enc.summary, ""]
    out += [
        "This page is generated from the specification (`relpos.spec`); "
        f"`relpos spec show {name}` prints the same sheet in a terminal.",
        "",
        "## Arguments",
        "",
        "| argument | shape | kind | |",
        "|---|---|---|---|",
    ]
    for t in enc.tensors:
        need = "required" if t.required else "optional"
        out.append(
            f"| `{t.name}` | {_cell(_shape(t.layouts))} | {t.kind}, {need} | {_cell(t.doc)} |"
        )
    out += ["", "| option | default | |", "|---|---|---|"]
    for o in enc.options:
        out.append(f"| `{o.name}` | `{o.default!r}` | {_cell(o.doc)} |")
    out += ["", "## Formulas", ""]
    for label, formula in enc.formulas().items():
        latex = sp.latex(formula)
        out += [f"**{label}**", "", _math(latex), ""]
        out += ['??? note "LaTeX"', "", "    ```latex", f"    {latex}", "    ```", ""]
    variants = enc.variants()
    if variants:
        out += ["## Variants", ""] + [f"- {v}" for v in variants] + [""]
    out += ["## Glossary", "", "| symbol | meaning |", "|---|---|"]
    out += [f"| `{s}` | {_cell(m)} |" for s, m in enc.glossary]
    out += [f"| `{d}` | {_cell(m)} |" for d, m in DIMENSIONS.items()]
    out += ["", "## Conventions", "", "Shared by every encoding:", ""]
    out += [f"- {c}" for c in CONVENTIONS]
    out += ["", f"Of `{name}`:", ""] + [f"- {c}" for c in enc.conventions]
    out += ["", "## How other code differs", ""] + [f"- {d}" for d in enc.differences]
    out += ["", "See the [convention profiles](../reference/profiles.md) for the named ones."]
    cases = [*enc.cases(), *enc.large_cases()]
    out += ["", "## Golden cases", ""]
    out += [
        f"{len(cases)} golden cases (`relpos vectors export` writes each as JSON, and the "
        "`golden` property checks every implementation on every one):",
        "",
        ", ".join(f"`{c.name}`" for c in cases),
        "",
        "## Identities proved",
        "",
        "`relpos spec prove` proves each of these; it exits non-zero if one fails.",
        "",
    ]
    out += [f"- **{i.name}**: {_cell(i.statement)}" for i in enc.identities()]
    out += ["", "## Citation", ""] + [f"- {r}" for r in enc.references]
    return "\n".join(out) + "\n"


def profiles_page() -> str:
    from relpos.equivalence.targets import conventions
    from relpos.spec import all_encodings

    out = [
        "# Convention profiles",
        "",
        "Generated from `relpos.spec`; `relpos profiles` prints the same. A profile names the "
        "conventions a library chose on each axis, and what inputs it accepts; "
        "`relpos check --target ... --profile NAME` checks a target under it. "
        "See [checking third-party code](../third-party.md) and [adapters](../adapters.md).",
        "",
    ]
    for enc in all_encodings():
        out += [f"## {enc.name}", "", "### Axes", "", "| axis | value | |", "|---|---|---|"]
        for axis in enc.all_axes():
            for value in axis.values:
                mark = " (the spec's)" if value.name == axis.spec_value else ""
                out.append(f"| `{axis.name}` | `{value.name}`{mark} | {_cell(value.doc)} |")
        out += ["", "### Profiles", "", "| profile | library | conventions | source | notes |"]
        out.append("|---|---|---|---|---|")
        for p in enc.all_profiles():
            own = conventions(enc, p)
            differs = {a: v for a, v in own.items() if p.conventions.get(a)}
            said = ", ".join(f"{a} `{v}`" for a, v in differs.items()) or "the spec's"
            out.append(
                f"| `{p.name}` | {_cell(p.title)} | {_cell(said)} | {_cell(p.source)} | "
                f"{_cell('; '.join(p.all_notes))} |"
            )
        out.append("")
    return "\n".join(out) + "\n"


def properties_page() -> str:
    from relpos.equivalence.properties import PROPERTIES

    out = [
        "# Properties",
        "",
        "Generated from `relpos.equivalence.properties`. `relpos check --property NAME` runs "
        "one; every property runs in each dtype listed, on every implementation it applies to.",
        "",
        "| property | what holds | dtypes | drawn or fixed | needs |",
        "|---|---|---|---|---|",
    ]
    for p in PROPERTIES.values():
        needs = [
            what
            for what, flag in (
                ("the other backend", p.needs_partner),
                ("memory", p.needs_memory),
                ("position ids", p.needs_positions),
            )
            if flag
        ]
        kind = "fixed cases" if p.cases is not None else "drawn (Hypothesis)"
        if p.metamorphic:
            kind += ", metamorphic"
        out.append(
            f"| `{p.name}` | {_cell(p.doc)} | {', '.join(p.dtypes)} | {kind} | "
            f"{', '.join(needs) or '-'} |"
        )
    return "\n".join(out) + "\n"


def adapter_inputs() -> str:
    """What an adapter receives under each named profile: the tables and optional tensors
    always and never given, fixed layouts, memory, position ids and required multiples."""
    from relpos.equivalence.targets import restriction
    from relpos.spec import all_encodings

    rows = [
        "| encoding | profile | always given | never given | layouts | memory | position ids "
        "| multiples |",
        "|---|---|---|---|---|---|---|---|",
    ]
    for enc in all_encodings():
        names = {t.name: t for t in enc.tensors}
        for p in enc.all_profiles():
            r = restriction(enc, p)
            layouts = ", ".join(
                f"`{n}` {_shape((names[n].layouts[i],))}" for n, i in r.layouts.items()
            )
            rows.append(
                f"| {enc.name} | `{p.name}` | {_names(r.include)} | {_names(r.exclude)} | "
                f"{layouts or 'either'} | {'yes' if p.memory else 'no (qlen = klen)'} | "
                f"{'yes' if r.positions else 'no'} | "
                f"{', '.join(f'{n} of {k}' for n, k in r.multiple_of.items()) or '-'} |"
            )
    return "\n".join(rows)


def _names(names: tuple[str, ...]) -> str:
    return ", ".join(f"`{n}`" for n in dict.fromkeys(names)) or "-"


#: Tables generated into hand-written pages, where ``<!-- generated: NAME -->`` stands.
SNIPPETS: dict[str, Callable[[], str]] = {"adapter-inputs": adapter_inputs}

_MARKER = re.compile(r"<!-- generated: ([a-z-]+) -->")


def fill(markdown: str) -> str:
    """``markdown`` with every generated-table marker replaced by its table."""
    return _MARKER.sub(lambda m: SNIPPETS[m.group(1)](), markdown)


def bad_inputs_page() -> str:
    if str(ROOT) not in sys.path:
        sys.path.insert(0, str(ROOT))
    from tests.bad_inputs import BAD_INPUTS

    out = [
        "# Bad inputs",
        "",
        "Generated from `tests/bad_inputs.py`: each entry breaks one argument of a golden case. "
        "The oracle and every implementation refuse it with `relpos.spec.ArgumentError` and "
        "exactly this text (the test suite checks every entry on every side).",
        "",
        "| encoding | case | what is broken | error |",
        "|---|---|---|---|",
    ]
    out += [f"| {b.encoding} | `{b.case}` | `{b.id}` | {_cell(b.message)} |" for b in BAD_INPUTS]
    return "\n".join(out) + "\n"


def cli_page() -> str:
    from relpos.equivalence.cli import _parser

    parser = _parser()
    out = [
        "# Command line",
        "",
        "Generated from the `relpos` argument parser: each command's `--help`.",
        "",
    ]
    for prefix, sub in _commands(parser, "relpos"):
        out += [f"## `{prefix}`", "", "```text", sub.format_help().rstrip(), "```", ""]
    return "\n".join(out) + "\n"


def _commands(
    parser: argparse.ArgumentParser, prefix: str
) -> Iterator[tuple[str, argparse.ArgumentParser]]:
    yield prefix, parser
    for action in parser._actions:
        if isinstance(action, argparse._SubParsersAction):
            for name, sub in action.choices.items():
                yield from _commands(sub, f"{prefix} {name}")


def benchmarks_page() -> str:
    out = [
        "# Benchmark results",
        "",
        "The committed results of `relpos bench` (read from `benchmarks/results`; see "
        "[benchmarks](../benchmarks.md) for how they are measured).",
        "",
    ]
    folder = ROOT / "benchmarks" / "results"
    for latest in sorted(folder.rglob("latest.md")):
        where = latest.parent.relative_to(folder)
        title = "default run" if str(where) == "." else str(where)
        out += [f"## {title}", "", _demoted(latest.read_text(), 2), ""]
    return "\n".join(out) + "\n"


def studies_page() -> str:
    out = [
        "# Study results",
        "",
        "The committed results of `relpos study run` (read from `studies/results`; see "
        "[studies](../studies.md) for what each study asks and how to read it).",
        "",
    ]
    for results in sorted((ROOT / "studies" / "results").glob("*/results.md")):
        out += [f"## {results.parent.name}", "", _demoted(results.read_text(), 2), ""]
        for figure in sorted(results.parent.glob("*.png")):
            out += [f"![{results.parent.name}: {figure.stem}](../{_figure(figure)})", ""]
    return "\n".join(out) + "\n"


def _figure(path: Path) -> str:
    """Where a committed figure lies in the site."""
    return path.relative_to(ROOT).as_posix()


def _demoted(markdown: str, levels: int) -> str:
    """``markdown`` with each heading ``levels`` deeper (its title dropped to a section)."""
    lines = []
    for line in markdown.splitlines():
        if line.startswith("#"):
            line = "#" * levels + line
        lines.append(line)
    return "\n".join(lines)


def index_page() -> str:
    """The site's home page: the README, its links into ``docs/`` made the site's own, and
    its links to other files of the repository written as paths."""
    text = (ROOT / "README.md").read_text()
    text = re.sub(r"\]\(docs/([^)]+)\)", r"](\1)", text)
    return re.sub(r"\]\((?!https?:|#|[a-z-]+\.md)([^)]+)\)", r"] (`\1`)", text)


def pages() -> dict[str, Callable[[], str]]:
    """Every generated page: its path in the site's sources, and how to write it."""
    from relpos.spec import ENCODINGS as NAMES

    found: dict[str, Callable[[], str]] = {"index.md": index_page}
    found.update({f"{ENCODINGS}/{name}.md": (lambda n=name: encoding_page(n)) for name in NAMES})
    found.update(
        {
            f"{REFERENCE}/profiles.md": profiles_page,
            f"{REFERENCE}/properties.md": properties_page,
            f"{REFERENCE}/bad-inputs.md": bad_inputs_page,
            f"{REFERENCE}/cli.md": cli_page,
            f"{REFERENCE}/benchmarks.md": benchmarks_page,
            f"{REFERENCE}/studies.md": studies_page,
        }
    )
    return found


def figures() -> list[Path]:
    """The committed figures the generated pages show (copied into the site as they are)."""
    return sorted((ROOT / "studies" / "results").glob("*/*.png"))


# -- the mkdocs hook ----------------------------------------------------------------------


def on_files(files, config):  # type: ignore[no-untyped-def]
    """Add every generated page and figure to the site's files."""
    from mkdocs.structure.files import File

    for path, write in pages().items():
        files.append(File.generated(config, path, content=write()))
    for figure in figures():
        files.append(File.generated(config, _figure(figure), abs_src_path=str(figure)))
    return files


def on_page_markdown(markdown, page, config, files):  # type: ignore[no-untyped-def]
    """Fill the generated tables of a hand-written page."""
    return fill(markdown)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description="write the generated pages to a folder")
    parser.add_argument("out", type=Path)
    args = parser.parse_args(argv)
    for path, write in pages().items():
        target = args.out / path
        target.parent.mkdir(parents=True, exist_ok=True)
        with redirect_stdout(io.StringIO()):
            target.write_text(write())
        print(target)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
